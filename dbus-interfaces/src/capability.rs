//! The capability vocabulary: what an agent can be granted, and what kind of scope each takes.

/// What a capability's scope names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// An absolute folder; the grant covers everything beneath it.
    Folder,
    /// A host name (or IP literal); the grant covers exactly that host.
    Domain,
    /// An agent id.
    Agent,
}

/// One capability: `resource.action`, with the kind of scope it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    pub name: &'static str,
    pub scope: ScopeKind,
    /// What granting it allows, in words shown to the user.
    pub description: &'static str,
}

/// Every capability the kernel knows. Anything else is refused as an invalid argument.
pub const CAPABILITIES: &[Capability] = &[
    Capability {
        name: "files.read",
        scope: ScopeKind::Folder,
        description: "read files in",
    },
    Capability {
        name: "files.list",
        scope: ScopeKind::Folder,
        description: "list files in",
    },
    Capability {
        name: "web.fetch",
        scope: ScopeKind::Domain,
        description: "fetch web pages from",
    },
    Capability {
        name: "agent.delegate",
        scope: ScopeKind::Agent,
        description: "hand tasks to the agent",
    },
    Capability {
        name: "agent.call",
        scope: ScopeKind::Agent,
        description: "call the agent",
    },
];

impl Capability {
    /// Look a capability up by name.
    pub fn lookup(name: &str) -> Option<&'static Capability> {
        CAPABILITIES.iter().find(|c| c.name == name)
    }

    /// Check and normalize a scope for this capability. Returns the canonical spelling or a
    /// message saying what is wrong with it.
    pub fn normalize_scope(&self, scope: &str) -> Result<String, String> {
        if scope.len() > crate::names::MAX_NAME_LEN {
            return Err(format!(
                "the scope is longer than {} bytes",
                crate::names::MAX_NAME_LEN
            ));
        }
        if scope.contains('\0') {
            return Err("the scope contains a NUL character".into());
        }
        match self.scope {
            ScopeKind::Folder => normalize_folder(scope),
            ScopeKind::Domain => normalize_domain(scope),
            ScopeKind::Agent => {
                if crate::names::is_valid_agent_id(scope) {
                    Ok(scope.to_string())
                } else {
                    Err(format!("{scope:?} is not a valid agent id"))
                }
            }
        }
    }
}

/// A folder scope: absolute, no `.`/`..` components, no empty components, no trailing slash.
fn normalize_folder(scope: &str) -> Result<String, String> {
    if !scope.starts_with('/') {
        return Err(format!("the folder {scope:?} is not an absolute path"));
    }
    let mut out = String::new();
    for part in scope.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(format!("the folder {scope:?} contains '.' or '..'"));
        }
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// A domain scope: a lowercase host name or an IP literal.
fn normalize_domain(scope: &str) -> Result<String, String> {
    let host = scope.trim_end_matches('.').to_ascii_lowercase();
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
        && !host.starts_with('.')
        && !host.contains("..");
    if ok {
        Ok(host)
    } else {
        Err(format!("{scope:?} is not a host name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_normalize() {
        let c = Capability::lookup("files.read").unwrap();
        assert_eq!(c.normalize_scope("/home/u//Docs/").unwrap(), "/home/u/Docs");
        assert_eq!(c.normalize_scope("/").unwrap(), "/");
        assert!(c.normalize_scope("home").is_err());
        assert!(c.normalize_scope("/a/../b").is_err());
        assert!(c.normalize_scope("/a/./b").is_err());
    }

    #[test]
    fn domains_and_agents_normalize() {
        let web = Capability::lookup("web.fetch").unwrap();
        assert_eq!(web.normalize_scope("Example.COM.").unwrap(), "example.com");
        assert!(web.normalize_scope("a b").is_err());
        assert!(web.normalize_scope("").is_err());
        let del = Capability::lookup("agent.delegate").unwrap();
        assert!(del.normalize_scope("web").is_ok());
        assert!(del.normalize_scope("../x").is_err());
        assert!(Capability::lookup("root.everything").is_none());
    }
}

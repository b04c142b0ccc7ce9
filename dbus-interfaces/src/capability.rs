//! The capability vocabulary: what an agent can be granted, and what kind of scope each takes.
//! The platform's own capabilities are compiled in; tools that come later (an MCP server's, a
//! desktop service's) register theirs at run time, and from then on they are looked up alike.

use std::sync::RwLock;

/// What a capability's scope names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// An absolute folder; the grant covers everything beneath it.
    Folder,
    /// A host name (or IP literal); the grant covers exactly that host.
    Domain,
    /// An agent id.
    Agent,
    /// A name the tool defines (an account, a calendar, a server); the grant covers exactly it.
    Name,
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
    Capability {
        name: "model.use",
        scope: ScopeKind::Name,
        description: "ask questions of the AI models served by",
    },
    Capability {
        name: "model.remote",
        scope: ScopeKind::Name,
        description: "send its questions and their data to the remote model provider",
    },
];

/// Capabilities registered at run time (never removed: a grant may name one).
static REGISTERED: RwLock<Vec<&'static Capability>> = RwLock::new(Vec::new());

/// Most capabilities that may be registered at run time.
pub const MAX_REGISTERED: usize = 4096;

impl Capability {
    /// Look a capability up by name, compiled in or registered.
    pub fn lookup(name: &str) -> Option<&'static Capability> {
        CAPABILITIES.iter().find(|c| c.name == name).or_else(|| {
            let registered = REGISTERED.read().unwrap_or_else(|p| p.into_inner());
            registered.iter().copied().find(|c| c.name == name)
        })
    }

    /// Every capability known now: the compiled-in ones, then those registered.
    pub fn all() -> Vec<&'static Capability> {
        let registered = REGISTERED.read().unwrap_or_else(|p| p.into_inner());
        CAPABILITIES
            .iter()
            .chain(registered.iter().copied())
            .collect()
    }

    /// Register a capability at run time (for a tool that is not compiled in). Registering the
    /// same capability again returns the one registered; a name already taken by a different
    /// capability, or one that is not `resource.action` in lowercase, is refused with a reason.
    pub fn register(
        name: &str,
        scope: ScopeKind,
        description: &str,
    ) -> Result<&'static Capability, String> {
        if !is_valid_name(name) {
            return Err(format!(
                "{name:?} is not a capability name (lowercase `resource.action`, letters, digits, `-` and `_`)"
            ));
        }
        if description.is_empty()
            || description.len() > 256
            || description.chars().any(char::is_control)
        {
            return Err(format!(
                "the description of {name} must be one line of words"
            ));
        }
        let mut registered = REGISTERED.write().unwrap_or_else(|p| p.into_inner());
        let known = CAPABILITIES
            .iter()
            .chain(registered.iter().copied())
            .find(|c| c.name == name);
        if let Some(c) = known {
            return if c.scope == scope && c.description == description {
                Ok(c)
            } else {
                Err(format!(
                    "the capability {name} is already defined differently"
                ))
            };
        }
        if registered.len() >= MAX_REGISTERED {
            return Err(format!(
                "no more than {MAX_REGISTERED} capabilities can be registered"
            ));
        }
        // Leaked once per capability, bounded above: capabilities live as long as the process.
        let capability: &'static Capability = Box::leak(Box::new(Capability {
            name: Box::leak(name.to_string().into_boxed_str()),
            scope,
            description: Box::leak(description.to_string().into_boxed_str()),
        }));
        registered.push(capability);
        Ok(capability)
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
            ScopeKind::Name => {
                if !scope.is_empty() && scope.len() <= 256 && !scope.chars().any(char::is_control) {
                    Ok(scope.to_string())
                } else {
                    Err(format!("{scope:?} is not a valid name"))
                }
            }
        }
    }
}

/// `resource.action[.more]`: lowercase ASCII letters, digits, `-` and `_`, at least one dot.
fn is_valid_name(name: &str) -> bool {
    name.len() <= 128
        && name.contains('.')
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
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

    #[test]
    fn capabilities_can_be_registered_at_run_time() {
        assert!(Capability::lookup("calendar.read").is_none());
        let c =
            Capability::register("calendar.read", ScopeKind::Name, "read the calendar").unwrap();
        assert_eq!(Capability::lookup("calendar.read"), Some(c));
        assert!(Capability::all().contains(&c));
        // The same again is the same capability; a different one under that name is refused.
        let again = Capability::register("calendar.read", ScopeKind::Name, "read the calendar");
        assert!(std::ptr::eq(again.unwrap(), c));
        assert!(Capability::register("calendar.read", ScopeKind::Domain, "x").is_err());
        assert!(Capability::register("files.read", ScopeKind::Name, "x").is_err());
        for bad in [
            "Calendar.read",
            "calendar",
            "calendar..read",
            "cal endar.read",
            "",
        ] {
            assert!(
                Capability::register(bad, ScopeKind::Name, "x").is_err(),
                "{bad}"
            );
        }
        assert_eq!(c.normalize_scope("work").unwrap(), "work");
        assert!(c.normalize_scope("").is_err());
    }
}

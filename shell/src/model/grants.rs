//! The Permissions page's content: every grant, live or suspended, grouped by who holds it (an
//! agent, a Flatpak app, a host app), with its lifetime in words.

use std::collections::BTreeMap;

use agentos_dbus_interfaces::GrantInfo;

/// Who holds a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HolderKind {
    /// An agent (its id).
    Agent,
    /// An app on the host in its own unit (`host:<app id>`).
    HostApp,
    /// A sandboxed (Flatpak) app, or anything else named by an app id.
    App,
}

/// One grant as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub principal: String,
    pub capability: String,
    pub scope: String,
    pub lifetime: String,
    pub granted_at: u64,
    /// Kept but not honoured: the agent changed since it was given.
    pub suspended: bool,
}

impl GrantRow {
    /// The lifetime in words.
    pub fn lifetime_label(&self) -> &'static str {
        lifetime_label(&self.lifetime)
    }

    /// The scope in words ("everywhere" for an empty scope).
    pub fn scope_label(&self) -> String {
        if self.scope.is_empty() {
            "any scope".to_string()
        } else {
            crate::model::format::line(&self.scope, 120)
        }
    }
}

/// The grants of one holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub principal: String,
    pub kind: HolderKind,
    pub grants: Vec<GrantRow>,
}

/// "once", "session", "always" in words; an unknown lifetime is "unknown lifetime".
pub fn lifetime_label(lifetime: &str) -> &'static str {
    match lifetime {
        "once" => "this time only",
        "session" => "until logout",
        "always" => "always",
        _ => "unknown lifetime",
    }
}

/// What kind of holder `principal` names, given the agents the kernel knows.
pub fn kind_of(principal: &str, agents: &[String]) -> HolderKind {
    if principal.starts_with("host:") {
        HolderKind::HostApp
    } else if agents.iter().any(|a| a == principal) {
        HolderKind::Agent
    } else {
        HolderKind::App
    }
}

/// Group live and suspended grants by holder: agents first, then host apps, then apps, each
/// by name; a holder's grants by capability and scope.
pub fn group(live: Vec<GrantInfo>, suspended: Vec<GrantInfo>, agents: &[String]) -> Vec<Holder> {
    let mut by: BTreeMap<(HolderKind, String), Vec<GrantRow>> = BTreeMap::new();
    let rows = live
        .into_iter()
        .map(|g| (g, false))
        .chain(suspended.into_iter().map(|g| (g, true)));
    for (g, suspended) in rows {
        let kind = kind_of(&g.principal, agents);
        by.entry((kind, g.principal.clone()))
            .or_default()
            .push(GrantRow {
                principal: g.principal,
                capability: g.capability,
                scope: g.scope,
                lifetime: g.lifetime,
                granted_at: g.granted_at,
                suspended,
            });
    }
    by.into_iter()
        .map(|((kind, principal), mut grants)| {
            grants.sort_by(|a, b| {
                (&a.capability, &a.scope, a.suspended).cmp(&(&b.capability, &b.scope, b.suspended))
            });
            Holder {
                principal,
                kind,
                grants,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(principal: &str, capability: &str, scope: &str, lifetime: &str) -> GrantInfo {
        GrantInfo {
            principal: principal.into(),
            capability: capability.into(),
            scope: scope.into(),
            lifetime: lifetime.into(),
            granted_at: 1,
        }
    }

    #[test]
    fn grants_are_grouped_by_holder() {
        let agents = vec!["docs".to_string(), "web".to_string()];
        let holders = group(
            vec![
                g("web", "web.fetch", "example.org", "always"),
                g("org.example.App", "agent.delegate", "docs", "session"),
                g("docs", "files.read", "/home/u/Documents", "once"),
                g("host:org.gnome.Maps", "agent.call", "web", "always"),
                g("docs", "files.list", "/home/u/Documents", "always"),
            ],
            vec![g("docs", "files.read", "/home/u/Work", "always")],
            &agents,
        );
        let names: Vec<(&str, HolderKind, usize)> = holders
            .iter()
            .map(|h| (h.principal.as_str(), h.kind, h.grants.len()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("docs", HolderKind::Agent, 3),
                ("web", HolderKind::Agent, 1),
                ("host:org.gnome.Maps", HolderKind::HostApp, 1),
                ("org.example.App", HolderKind::App, 1),
            ]
        );
        let docs = &holders[0].grants;
        assert_eq!(docs[0].capability, "files.list");
        assert_eq!(
            (docs[2].scope.as_str(), docs[2].suspended),
            ("/home/u/Work", true)
        );
        assert_eq!(docs[1].lifetime_label(), "this time only");
        assert_eq!(lifetime_label("forever"), "unknown lifetime");
    }

    #[test]
    fn scopes_are_made_safe() {
        let row = GrantRow {
            principal: "docs".into(),
            capability: "files.read".into(),
            scope: "/home/u/\u{202e}txt.exe".into(),
            lifetime: "always".into(),
            granted_at: 0,
            suspended: false,
        };
        assert_eq!(row.scope_label(), "/home/u/txt.exe");
    }
}

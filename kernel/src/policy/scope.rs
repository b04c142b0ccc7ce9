//! Whether a granted scope covers a requested one.

use agentos_dbus_interfaces::ScopeKind;

/// Does a grant on `granted` cover a request on `requested`? Both are normalized scopes of `kind`
/// (see `Capability::normalize_scope`). Folders cover themselves and everything beneath them,
/// compared by whole path components; domains and agents match exactly.
pub fn covers(kind: ScopeKind, granted: &str, requested: &str) -> bool {
    match kind {
        ScopeKind::Folder => {
            granted == requested
                || granted == "/"
                || requested
                    .strip_prefix(granted)
                    .is_some_and(|rest| rest.starts_with('/'))
        }
        ScopeKind::Domain | ScopeKind::Agent | ScopeKind::Name => granted == requested,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_cover_by_component() {
        assert!(covers(ScopeKind::Folder, "/home/u/Docs", "/home/u/Docs"));
        assert!(covers(
            ScopeKind::Folder,
            "/home/u/Docs",
            "/home/u/Docs/a/b"
        ));
        assert!(!covers(ScopeKind::Folder, "/home/u/Docs", "/home/u/Docs2"));
        assert!(!covers(ScopeKind::Folder, "/home/u/Docs", "/home/u"));
        assert!(covers(ScopeKind::Folder, "/", "/etc"));
    }

    #[test]
    fn domains_match_exactly() {
        assert!(covers(ScopeKind::Domain, "example.com", "example.com"));
        assert!(!covers(
            ScopeKind::Domain,
            "example.com",
            "evil-example.com"
        ));
        assert!(!covers(ScopeKind::Domain, "example.com", "a.example.com"));
    }
}

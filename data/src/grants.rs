//! Stored grants: only those that live "always"; once/session grants stay in the daemon's memory.

use rusqlite::params;

use crate::{GrantInfo, Store, StoreError};
use agentos_dbus_interfaces::Lifetime;

impl Store {
    /// Stores a grant, replacing the lifetime and time of an existing grant with the same
    /// principal, capability and scope. Refuses a lifetime other than "always".
    pub fn insert_grant(&self, g: &GrantInfo) -> Result<(), StoreError> {
        if Lifetime::parse(&g.lifetime) != Some(Lifetime::Always) {
            return Err(StoreError::InvalidGrant(format!(
                "only \"always\" grants are stored, not {:?}",
                g.lifetime
            )));
        }
        self.conn.execute(
            "INSERT INTO grants (principal, capability, scope, lifetime, granted_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (principal, capability, scope)
             DO UPDATE SET lifetime = excluded.lifetime, granted_at = excluded.granted_at,
                           mirrored = 0",
            params![g.principal, g.capability, g.scope, g.lifetime, g.granted_at],
        )?;
        Ok(())
    }

    /// Deletes a principal's grants of a capability, for one scope or (`None`) every scope;
    /// returns how many were deleted.
    pub fn delete_grants(
        &self,
        principal: &str,
        capability: &str,
        scope: Option<&str>,
    ) -> Result<u64, StoreError> {
        let deleted = self.conn.execute(
            "DELETE FROM grants WHERE principal = ?1 AND capability = ?2
                                  AND (?3 IS NULL OR scope = ?3)",
            params![principal, capability, scope],
        )?;
        Ok(deleted as u64)
    }

    /// Records that a grant has been mirrored into the XDG permission store.
    pub fn mark_grant_mirrored(
        &self,
        principal: &str,
        capability: &str,
        scope: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE grants SET mirrored = 1 WHERE principal = ?1 AND capability = ?2 AND scope = ?3",
            params![principal, capability, scope],
        )?;
        Ok(())
    }

    /// Every stored grant, ordered by principal, capability and scope.
    pub fn list_grants(&self) -> Result<Vec<GrantInfo>, StoreError> {
        self.select_grants(false)
    }

    /// The stored grants that have been mirrored into the XDG permission store.
    pub fn list_mirrored_grants(&self) -> Result<Vec<GrantInfo>, StoreError> {
        self.select_grants(true)
    }

    fn select_grants(&self, mirrored_only: bool) -> Result<Vec<GrantInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT principal, capability, scope, lifetime, granted_at FROM grants
             WHERE ?1 = 0 OR mirrored = 1
             ORDER BY principal, capability, scope",
        )?;
        let grants = stmt
            .query_map([mirrored_only], |r| {
                Ok(GrantInfo {
                    principal: r.get(0)?,
                    capability: r.get(1)?,
                    scope: r.get(2)?,
                    lifetime: r.get(3)?,
                    granted_at: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(grants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn grant(principal: &str, capability: &str, scope: &str, at: u64) -> GrantInfo {
        GrantInfo {
            principal: principal.into(),
            capability: capability.into(),
            scope: scope.into(),
            lifetime: "always".into(),
            granted_at: at,
        }
    }

    #[test]
    fn insert_is_an_upsert() {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store
            .insert_grant(&grant("docs", "fs.read", "~/a", 1))
            .unwrap();
        store
            .insert_grant(&grant("docs", "fs.read", "~/a", 2))
            .unwrap();
        store
            .insert_grant(&grant("docs", "fs.read", "~/b", 3))
            .unwrap();
        assert_eq!(
            store.list_grants().unwrap(),
            vec![
                grant("docs", "fs.read", "~/a", 2),
                grant("docs", "fs.read", "~/b", 3)
            ]
        );
    }

    #[test]
    fn only_always_grants_are_stored() {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        for lifetime in ["once", "session", "forever"] {
            let g = GrantInfo {
                lifetime: lifetime.into(),
                ..grant("docs", "fs.read", "~/a", 1)
            };
            assert!(matches!(
                store.insert_grant(&g),
                Err(StoreError::InvalidGrant(_))
            ));
        }
        assert!(store.list_grants().unwrap().is_empty());
    }

    #[test]
    fn delete_one_scope_or_all() {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        for scope in ["~/a", "~/b", "~/c"] {
            store
                .insert_grant(&grant("docs", "fs.read", scope, 1))
                .unwrap();
        }
        store.insert_grant(&grant("docs", "net", "*", 1)).unwrap();
        store
            .insert_grant(&grant("web", "fs.read", "~/a", 1))
            .unwrap();

        assert_eq!(
            store.delete_grants("docs", "fs.read", Some("~/b")).unwrap(),
            1
        );
        assert_eq!(
            store.delete_grants("docs", "fs.read", Some("~/b")).unwrap(),
            0
        );
        assert_eq!(store.delete_grants("docs", "fs.read", None).unwrap(), 2);
        let left: Vec<(String, String)> = store
            .list_grants()
            .unwrap()
            .into_iter()
            .map(|g| (g.principal, g.capability))
            .collect();
        assert_eq!(
            left,
            vec![
                ("docs".into(), "net".into()),
                ("web".into(), "fs.read".into())
            ]
        );
    }
}

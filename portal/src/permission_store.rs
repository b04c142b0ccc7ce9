//! The XDG permission store (`org.freedesktop.impl.portal.PermissionStore`): its client proxy,
//! and how AgentOS names its entries there (table `agentos`, entry id `<capability>:<scope>`).
//! What the kernel does with it (mirroring grants, following revocations) is the kernel's.

use std::collections::HashMap;
use std::time::Duration;

use agentos_dbus_interfaces::Capability;
use zbus::zvariant::OwnedValue;

/// The table the kernel writes.
pub const TABLE: &str = "agentos";
/// The store's bus name.
pub const STORE_NAME: &str = "org.freedesktop.impl.portal.PermissionStore";
/// How long a call to the store may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[zbus::proxy(
    interface = "org.freedesktop.impl.portal.PermissionStore",
    default_service = "org.freedesktop.impl.portal.PermissionStore",
    default_path = "/org/freedesktop/impl/portal/PermissionStore"
)]
pub trait PermissionStore {
    fn lookup(
        &self,
        table: &str,
        id: &str,
    ) -> zbus::Result<(HashMap<String, Vec<String>>, OwnedValue)>;
    fn set_permission(
        &self,
        table: &str,
        create: bool,
        id: &str,
        app: &str,
        permissions: &[&str],
    ) -> zbus::Result<()>;
    fn delete_permission(&self, table: &str, id: &str, app: &str) -> zbus::Result<()>;
    fn list(&self, table: &str) -> zbus::Result<Vec<String>>;
    #[zbus(signal)]
    fn changed(
        &self,
        table: String,
        id: String,
        deleted: bool,
        data: OwnedValue,
        permissions: HashMap<String, Vec<String>>,
    ) -> zbus::Result<()>;
}

/// The entry id of a grant: `<capability>:<scope>`.
pub fn entry_id(capability: &str, scope: &str) -> String {
    format!("{capability}:{scope}")
}

/// The capability and scope of an entry id, if it is one of ours.
pub fn parse_entry_id(id: &str) -> Option<(&'static Capability, String)> {
    let (cap, scope) = id.split_once(':')?;
    let cap = Capability::lookup(cap)?;
    Some((cap, cap.normalize_scope(scope).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_round_trip() {
        let id = entry_id("files.read", "/home/u/a:b");
        let (cap, scope) = parse_entry_id(&id).unwrap();
        assert_eq!((cap.name, scope.as_str()), ("files.read", "/home/u/a:b"));
        assert!(parse_entry_id("root.all:/").is_none());
        assert!(parse_entry_id("files.read:relative").is_none());
        assert!(parse_entry_id("nocolon").is_none());
    }
}

//! The Documents portal (`org.freedesktop.portal.Documents`): exporting one file to one
//! sandboxed app, so it appears under `/run/flatpak/doc/<id>/` in that app's sandbox only.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::time::Duration;

use agentos_dbus_interfaces::Error;
use zbus::zvariant::{Fd, OwnedValue};

const NAME: &str = "org.freedesktop.portal.Documents";

#[zbus::proxy(
    interface = "org.freedesktop.portal.Documents",
    default_service = "org.freedesktop.portal.Documents",
    default_path = "/org/freedesktop/portal/documents"
)]
pub trait Documents {
    #[zbus(name = "AddFull")]
    fn add_full(
        &self,
        o_path_fds: &[Fd<'_>],
        flags: u32,
        app_id: &str,
        permissions: &[&str],
    ) -> zbus::Result<(Vec<String>, HashMap<String, OwnedValue>)>;
}

/// `AddFull` flag: reuse the document of an already exported file.
const REUSE_EXISTING: u32 = 1;
/// `AddFull` flag: keep the export across restarts.
const PERSISTENT: u32 = 2;

/// Export the file behind the `O_PATH` fd to `app_id` with read permission; returns the doc id.
pub async fn export(conn: &zbus::Connection, fd: OwnedFd, app_id: &str) -> Result<String, Error> {
    let unsupported = |e: &dyn std::fmt::Display| {
        Error::NotSupported(format!("the Documents portal is not available: {e}"))
    };
    let dbus = zbus::fdo::DBusProxy::new(conn)
        .await
        .map_err(|e| unsupported(&e))?;
    let name = zbus::names::BusName::try_from(NAME).map_err(|e| unsupported(&e))?;
    if !dbus.name_has_owner(name).await.unwrap_or(false) {
        return Err(Error::NotSupported(
            "the Documents portal is not running; use OpenFile".into(),
        ));
    }
    let portal = DocumentsProxy::new(conn)
        .await
        .map_err(|e| unsupported(&e))?;
    let fds = [Fd::from(&fd)];
    let add = portal.add_full(&fds, REUSE_EXISTING | PERSISTENT, app_id, &["read"]);
    let (ids, _) = tokio::time::timeout(Duration::from_secs(10), add)
        .await
        .map_err(|_| Error::Timeout("the Documents portal did not answer".into()))?
        .map_err(|e| Error::Failed(format!("the Documents portal refused the file: {e}")))?;
    ids.into_iter()
        .next()
        .ok_or_else(|| Error::Failed("the Documents portal returned no document".into()))
}

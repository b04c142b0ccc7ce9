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

    fn delete(&self, doc_id: &str) -> zbus::Result<()>;
}

/// `AddFull` flags: none. Not `reuse_existing` (1): the document is this export's own, not one
/// the user made with a file chooser, so taking it back takes nothing else. Not `persistent`
/// (2): the portal forgets it when it exits (at the session's end at the latest).
const FLAGS: u32 = 0;

/// Export the file behind the `O_PATH` fd to `app_id` with read permission; returns the doc id
/// (a new document, transient: see [`delete`]).
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
    let add = portal.add_full(&fds, FLAGS, app_id, &["read"]);
    let (ids, _) = tokio::time::timeout(Duration::from_secs(10), add)
        .await
        .map_err(|_| Error::Timeout("the Documents portal did not answer".into()))?
        .map_err(|e| Error::Failed(format!("the Documents portal refused the file: {e}")))?;
    ids.into_iter()
        .next()
        .ok_or_else(|| Error::Failed("the Documents portal returned no document".into()))
}

/// Take the document `doc_id` back: it is gone from every sandbox it was exported to.
pub async fn delete(conn: &zbus::Connection, doc_id: &str) -> Result<(), Error> {
    let portal = DocumentsProxy::new(conn)
        .await
        .map_err(|e| Error::Failed(format!("the Documents portal cannot be reached: {e}")))?;
    tokio::time::timeout(Duration::from_secs(10), portal.delete(doc_id))
        .await
        .map_err(|_| Error::Timeout("the Documents portal did not answer".into()))?
        .map_err(|e| Error::Failed(format!("the Documents portal kept the document: {e}")))
}

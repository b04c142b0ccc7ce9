//! Opening a file with the user's default app for its type: through the OpenURI portal
//! (`org.freedesktop.portal.OpenURI.OpenFile`, handed a read-only descriptor, so the desktop
//! decides and a sandboxed panel works too), else, where no portal answers, through GIO's
//! default handler (`mimeapps.list`, as `gio open` does). Runs off the main loop.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gtk::gio;
use gtk::prelude::*;
use zbus::zvariant::{Fd, OwnedObjectPath, Value};

/// The portal's bus name, object and interface.
const PORTAL: &str = "org.freedesktop.portal.Desktop";
const PORTAL_PATH: &str = "/org/freedesktop/portal/desktop";
const OPEN_URI: &str = "org.freedesktop.portal.OpenURI";
/// How long the portal may take to take the request (it asks the user later, on its own).
const PORTAL_TIMEOUT: Duration = Duration::from_secs(25);

/// Who opened the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The desktop's portal took it (and may ask which app to use).
    Portal,
    /// GIO started the default app, named here.
    App(String),
}

/// Why a file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}: {1}")]
    File(String, std::io::Error),
    #[error("no app opens files of type {0}")]
    NoApp(String),
    #[error("cannot start {0}: {1}")]
    Launch(String, String),
    #[error("{0}")]
    Failed(String),
}

/// Open `path` with the default app: the portal on `conn` first, GIO where the portal is not
/// there (or refuses the call).
pub async fn open(conn: &zbus::Connection, path: &Path) -> Result<Opened, OpenError> {
    match tokio::time::timeout(PORTAL_TIMEOUT, through_portal(conn, path)).await {
        Ok(Ok(())) => return Ok(Opened::Portal),
        Ok(Err(e)) => tracing::info!("the OpenURI portal did not take {}: {e}", path.display()),
        Err(_) => tracing::info!("the OpenURI portal did not answer in time"),
    }
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || with_gio(&path))
        .await
        .map_err(|e| OpenError::Failed(e.to_string()))?
}

/// `OpenURI.OpenFile("", fd, {handle_token})`: the portal takes a descriptor, never a path.
async fn through_portal(conn: &zbus::Connection, path: &Path) -> Result<(), OpenError> {
    let file =
        std::fs::File::open(path).map_err(|e| OpenError::File(path.display().to_string(), e))?;
    let mut options: HashMap<&str, Value<'_>> = HashMap::new();
    // A token of its own per request: the portal names the request object after it.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let token = format!(
        "agentos_panel_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    options.insert("handle_token", Value::from(token.as_str()));
    let reply = conn
        .call_method(
            Some(PORTAL),
            PORTAL_PATH,
            Some(OPEN_URI),
            "OpenFile",
            &("", Fd::from(file.as_fd()), options),
        )
        .await
        .map_err(|e| OpenError::Failed(agentos_client::describe_zbus(&e)))?;
    reply
        .body()
        .deserialize::<OwnedObjectPath>()
        .map(|_| ())
        .map_err(|e| OpenError::Failed(e.to_string()))
}

/// GIO's default handler for the file's type, started with the file's URI.
fn with_gio(path: &Path) -> Result<Opened, OpenError> {
    let file = gio::File::for_path(path);
    let app = file
        .query_default_handler(gio::Cancellable::NONE)
        .map_err(|_| OpenError::NoApp(content_type_of(&file)))?;
    let name = app.display_name().to_string();
    app.launch(&[file], gio::AppLaunchContext::NONE)
        .map_err(|e| OpenError::Launch(name.clone(), e.to_string()))?;
    Ok(Opened::App(name))
}

fn content_type_of(file: &gio::File) -> String {
    file.query_info(
        gio::FILE_ATTRIBUTE_STANDARD_CONTENT_TYPE,
        gio::FileQueryInfoFlags::NONE,
        gio::Cancellable::NONE,
    )
    .ok()
    .and_then(|i| i.content_type())
    .map(|t| t.to_string())
    .unwrap_or_else(|| "unknown".to_string())
}

/// What the page says after opening `name`.
pub fn said(name: &str, opened: &Result<Opened, OpenError>) -> String {
    let name = crate::model::format::line(name, 80);
    match opened {
        Ok(Opened::Portal) => format!("Asked the desktop to open {name}"),
        Ok(Opened::App(app)) => {
            format!("Opened {name} with {}", crate::model::format::line(app, 80))
        }
        Err(e) => format!("Cannot open {name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_says_who_opened_it() {
        assert_eq!(
            said("r.txt", &Ok(Opened::App("Text Editor".into()))),
            "Opened r.txt with Text Editor"
        );
        assert_eq!(
            said("r.txt", &Ok(Opened::Portal)),
            "Asked the desktop to open r.txt"
        );
        assert_eq!(
            said("x.bin", &Err(OpenError::NoApp("application/x-foo".into()))),
            "Cannot open x.bin: no app opens files of type application/x-foo"
        );
    }
}

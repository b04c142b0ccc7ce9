//! Opening a file with the user's default app for its type: through the OpenURI portal
//! (`org.freedesktop.portal.OpenURI.OpenFile`, handed a read-only descriptor, so the desktop
//! decides and a sandboxed panel works too), else, only where there is no portal at all,
//! through GIO's default handler (`mimeapps.list`, as `gio open` does). A portal that refuses
//! (its policy, an error reply) is the answer: nothing else opens the file. GIO is not handed
//! a type that may run as a program (the file's name and bytes come from an agent). Runs off
//! the main loop.

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
    #[error("the desktop did not open it: {0}")]
    Refused(String),
    #[error("the desktop's portal did not answer in time (it may still ask which app to use)")]
    PortalTimedOut,
    #[error("files of type {0} can run as programs, so they are not opened from here; save a copy instead")]
    MayRun(String),
}

/// The D-Bus errors that say the portal is not there at all (no such name, or nothing there
/// serves `OpenURI`): only then is GIO asked instead.
const NO_PORTAL: [&str; 5] = [
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.UnknownMethod",
    "org.freedesktop.DBus.Error.UnknownInterface",
    "org.freedesktop.DBus.Error.UnknownObject",
];

/// How a call to the portal ended, where it did not take the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalMiss<'a> {
    /// An error reply, by its D-Bus name (`None`: not an error reply, e.g. the connection or
    /// a malformed answer).
    Error(Option<&'a str>),
    /// No answer within [`PORTAL_TIMEOUT`].
    TimedOut,
}

/// Whether GIO's default handler is asked after the portal did not take the file: only when
/// the portal is not there. A refusal (the portal's policy, the user, any other error reply)
/// is the answer. A portal that did not answer in time is not asked around either: it may be
/// there and slow, and still show its app chooser later, so GIO would open the file twice.
pub fn falls_back_to_gio(miss: PortalMiss<'_>) -> bool {
    match miss {
        PortalMiss::Error(Some(name)) => NO_PORTAL.contains(&name),
        PortalMiss::Error(None) | PortalMiss::TimedOut => false,
    }
}

/// Open `path` with the default app: the portal on `conn` first, GIO only where there is no
/// portal ([`falls_back_to_gio`]).
pub async fn open(conn: &zbus::Connection, path: &Path) -> Result<Opened, OpenError> {
    let miss = match tokio::time::timeout(PORTAL_TIMEOUT, through_portal(conn, path)).await {
        Ok(Ok(())) => return Ok(Opened::Portal),
        Ok(Err(PortalError::Local(e))) => return Err(e),
        Ok(Err(PortalError::Bus(e))) => e,
        Err(_) => {
            tracing::info!("the OpenURI portal did not answer in time");
            return Err(OpenError::PortalTimedOut);
        }
    };
    let name = crate::bus_error::error_name(&miss);
    if !falls_back_to_gio(PortalMiss::Error(name.as_deref())) {
        tracing::info!("the OpenURI portal refused {}: {miss}", path.display());
        return Err(OpenError::Refused(agentos_client::describe_zbus(&miss)));
    }
    tracing::info!("no OpenURI portal ({miss}): asking GIO");
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || with_gio(&path))
        .await
        .map_err(|e| OpenError::Failed(e.to_string()))?
}

/// Why the portal did not take a file: this side could not ask it, or the bus's answer.
enum PortalError {
    Local(OpenError),
    Bus(zbus::Error),
}

/// `OpenURI.OpenFile("", fd, {handle_token})`: the portal takes a descriptor, never a path.
async fn through_portal(conn: &zbus::Connection, path: &Path) -> Result<(), PortalError> {
    let file = std::fs::File::open(path)
        .map_err(|e| PortalError::Local(OpenError::File(path.display().to_string(), e)))?;
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
        .map_err(PortalError::Bus)?;
    reply
        .body()
        .deserialize::<OwnedObjectPath>()
        .map(|_| ())
        .map_err(|e| PortalError::Local(OpenError::Failed(e.to_string())))
}

/// Content types named as programs (or installers, or what runs one) that
/// `content_type_can_be_executable` does not count: Windows programs (run by Wine), Java
/// archives and launch files, shared objects (how a position-independent program is typed).
const RUNNABLE: [&str; 12] = [
    "application/x-ms-dos-executable",
    "application/x-msdownload",
    "application/vnd.microsoft.portable-executable",
    "application/x-ms-ne-executable",
    "application/x-msi",
    "application/x-ms-shortcut",
    "application/x-bat",
    "application/x-sharedlib",
    "application/x-pie-executable",
    "application/x-java-archive",
    "application/x-java-jnlp-file",
    "application/x-java",
];

/// Whether GIO is not to hand a file of `content_type` to its default app: a type that can
/// be a program (`content_type_can_be_executable`), unless it is plain text or a kind of it
/// (the default app for those is an editor), and the program types of [`RUNNABLE`].
pub fn refused_type(content_type: &str) -> bool {
    let runnable = RUNNABLE
        .iter()
        .any(|t| gio::content_type_is_a(content_type, t));
    runnable
        || (gio::content_type_can_be_executable(content_type)
            && !gio::content_type_is_a(content_type, "text/plain"))
}

/// GIO's default handler for the file's type, started with the file's URI.
fn with_gio(path: &Path) -> Result<Opened, OpenError> {
    let file = gio::File::for_path(path);
    // The same type GIO chooses the default app by (from the name, and the bytes where the
    // name does not tell).
    let content_type = content_type_of(&file);
    if refused_type(&content_type) {
        return Err(OpenError::MayRun(content_type));
    }
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
        assert_eq!(
            said(
                "setup.exe",
                &Err(OpenError::MayRun("application/x-ms-dos-executable".into()))
            ),
            "Cannot open setup.exe: files of type application/x-ms-dos-executable can run as \
             programs, so they are not opened from here; save a copy instead"
        );
    }

    #[test]
    fn only_a_missing_portal_falls_back_to_gio() {
        for name in NO_PORTAL {
            assert!(falls_back_to_gio(PortalMiss::Error(Some(name))), "{name}");
        }
        for refusal in [
            "org.freedesktop.portal.Error.NotAllowed",
            "org.freedesktop.portal.Error.Cancelled",
            "org.freedesktop.portal.Error.Failed",
            "org.freedesktop.DBus.Error.AccessDenied",
            "org.freedesktop.DBus.Error.Failed",
            "org.freedesktop.DBus.Error.InvalidArgs",
            "org.freedesktop.DBus.Error.NoReply",
        ] {
            assert!(
                !falls_back_to_gio(PortalMiss::Error(Some(refusal))),
                "{refusal}"
            );
        }
        assert!(!falls_back_to_gio(PortalMiss::Error(None)));
        assert!(
            !falls_back_to_gio(PortalMiss::TimedOut),
            "a slow portal may still ask: GIO would open it twice"
        );
    }

    #[test]
    fn types_that_may_run_are_not_handed_to_gio() {
        for t in [
            "application/x-executable",
            "application/x-ms-dos-executable",
            "application/x-msi",
            "application/x-sharedlib",
            "application/x-java-archive",
        ] {
            assert!(refused_type(t), "{t}");
        }
        for t in [
            "text/plain",
            "image/png",
            "application/pdf",
            "text/markdown",
        ] {
            assert!(!refused_type(t), "{t}");
        }
        // With shared-mime-info: types below these are known.
        if std::path::Path::new("/usr/share/mime/subclasses").exists() {
            assert!(refused_type("application/vnd.appimage"));
            // Scripts are text: their default app is an editor.
            assert!(!refused_type("application/x-shellscript"));
            assert!(!refused_type("text/x-python"));
            assert!(!refused_type("application/vnd.oasis.opendocument.text"));
        }
    }
}

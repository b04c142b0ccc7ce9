//! Reading artifacts from the kernel (`Task1.OpenArtifact`, the bytes read off the main loop),
//! for the Tasks and Artifacts pages alike: what to show of one, a copy saved where the user
//! chose, and a private copy for another program to open.

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use agentos_client::Client;
use agentos_dbus_interfaces::ArtifactInfo;

use crate::model::artifacts::{self, Preview, Viewer};

/// Private copies older than this are removed when the next one is made.
const COPIES_KEPT: Duration = Duration::from_secs(24 * 3600);

/// What to show of an artifact in `viewer`: the text of a small text one, the bytes of an
/// image; read off the main loop.
pub async fn read_preview(
    task: &agentos_dbus_interfaces::proxies::Task1Proxy<'static>,
    a: &ArtifactInfo,
    viewer: Viewer,
) -> Preview {
    let limit = match viewer {
        Viewer::Other => return Preview::None,
        Viewer::Image => artifacts::IMAGE_BYTES,
        Viewer::Text | Viewer::Markdown => artifacts::PREVIEW_BYTES,
    };
    let Ok(fd) = task.open_artifact(&a.name).await else {
        return Preview::None;
    };
    let file = std::fs::File::from(std::os::fd::OwnedFd::from(fd));
    tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        if file.take(limit).read_to_end(&mut bytes).is_err() {
            return Preview::None;
        }
        match viewer {
            Viewer::Image => Preview::Image(bytes),
            _ => artifacts::text_preview(&bytes).map_or(Preview::None, Preview::Text),
        }
    })
    .await
    .unwrap_or(Preview::None)
}

/// The artifact `name` of task `id` as a file read from the kernel.
async fn open(client: &Client, id: u64, name: &str) -> Result<std::fs::File, String> {
    let task = client.task(id).await.map_err(|e| e.to_string())?;
    let fd = task
        .open_artifact(name)
        .await
        .map_err(|e| super::describe(&e))?;
    Ok(std::fs::File::from(std::os::fd::OwnedFd::from(fd)))
}

/// Copy artifact `name` of task `id` from the kernel to `path` (the user chose it).
pub async fn save_copy(
    client: &Client,
    id: u64,
    name: String,
    path: PathBuf,
) -> Result<(String, PathBuf, u64), String> {
    let mut src = open(client, id, &name).await?;
    tokio::task::spawn_blocking(move || {
        let mut dst =
            std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bytes = std::io::copy(&mut src, &mut dst).map_err(|e| e.to_string())?;
        dst.sync_all().map_err(|e| e.to_string())?;
        Ok((name, path, bytes))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// A private copy of artifact `name` of task `id`, for another program to open: the kernel
/// hands over a descriptor of its content store (no file name, and no path to give away), so
/// the copy is a file only the user may read (0600), under the artifact's name made plain, in a
/// folder of its own (0700) below `$XDG_RUNTIME_DIR/agentos-panel/open`. Copies older than a
/// day are removed first.
pub async fn private_copy(client: &Client, id: u64, name: &str) -> Result<PathBuf, String> {
    let mut src = open(client, id, name).await?;
    let base = gtk::glib::user_runtime_dir().join("agentos-panel/open");
    let file_name = artifacts::file_name(name);
    tokio::task::spawn_blocking(move || {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&base)
            .map_err(|e| format!("{}: {e}", base.display()))?;
        remove_old(&base);
        let dir = new_private_dir(&base)?;
        let path = dir.join(file_name);
        let mut dst = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        std::io::copy(&mut src, &mut dst).map_err(|e| e.to_string())?;
        Ok(path)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// A new folder (0700) below `base`, named by the time and this process.
fn new_private_dir(base: &Path) -> Result<PathBuf, String> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    for n in 0..100u32 {
        let dir = base.join(format!("{nanos}-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
    }
    Err(format!("no new folder in {}", base.display()))
}

/// Remove the copies below `base` made more than [`COPIES_KEPT`] ago.
fn remove_old(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > COPIES_KEPT);
        if old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

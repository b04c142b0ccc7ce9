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
use crate::model::image;

/// Private copies older than this are removed when the next one is made.
const COPIES_KEPT: Duration = Duration::from_secs(24 * 3600);

/// What to show of an artifact in `viewer`: the text of a small text one, the decoded picture
/// of an image; read and decoded off the main loop.
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
    let (mime, _) = artifacts::content_type(&a.name);
    tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        if file.take(limit).read_to_end(&mut bytes).is_err() {
            return Preview::None;
        }
        match viewer {
            // Decoded here, off the main loop, within the size the panel shows.
            Viewer::Image => Preview::Image(image::decode(&mime, &bytes)),
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

/// A private copy of artifact `a` of task `id`, for another program to open: the kernel
/// hands over a descriptor of its content store (no file name, and no path to give away), so
/// the copy is a file only the user may read (0600), under the artifact's name made plain, in a
/// folder (0700) named by its content's sha256 below `$XDG_RUNTIME_DIR/agentos-panel/open`
/// (memory, on most systems): opened again, the copy there is used again. Artifacts larger than
/// [`OPEN_BYTES`] are not copied there. Copies older than a day are removed first.
pub async fn private_copy(client: &Client, id: u64, a: &ArtifactInfo) -> Result<PathBuf, String> {
    openable(a)?;
    let base = gtk::glib::user_runtime_dir().join("agentos-panel/open");
    let a = a.clone();
    if let Some(path) = tokio::task::spawn_blocking({
        let (base, a) = (base.clone(), a.clone());
        move || existing_copy(&base, &a)
    })
    .await
    .map_err(|e| e.to_string())?
    {
        return Ok(path);
    }
    let src = open(client, id, &a.name).await?;
    tokio::task::spawn_blocking(move || {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&base)
            .map_err(|e| format!("{}: {e}", base.display()))?;
        remove_old(&base);
        place_copy(&base, &a, src)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Largest artifact copied to be opened (the copies are in memory, on most systems).
pub const OPEN_BYTES: u64 = 64 * 1024 * 1024;

/// Whether artifact `a` may be copied to be opened: not larger than [`OPEN_BYTES`].
pub fn openable(a: &ArtifactInfo) -> Result<(), String> {
    if a.size > OPEN_BYTES {
        Err(format!(
            "{} is too large to open from here; save a copy instead",
            artifacts::file_name(&a.name)
        ))
    } else {
        Ok(())
    }
}

/// The folder of the copies of content `sha256` below `base`, if that is a sha256 (64 hex
/// digits, as the kernel lists them).
fn copy_dir(base: &Path, sha256: &str) -> Option<PathBuf> {
    let hex = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then(|| base.join(sha256.to_ascii_lowercase()))
}

/// The copy of `a` already below `base`: a plain file (not a link) of its size, under its
/// name in its content's folder, which only the user may enter. Its folder is marked as used now,
/// so that it is kept another day.
fn existing_copy(base: &Path, a: &ArtifactInfo) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dir = copy_dir(base, &a.sha256)?;
    let d = std::fs::symlink_metadata(&dir).ok()?;
    if !d.is_dir() || d.mode() & 0o077 != 0 {
        return None;
    }
    let path = dir.join(artifacts::file_name(&a.name));
    let f = std::fs::symlink_metadata(&path).ok()?;
    if !f.is_file() || f.len() != a.size || f.mode() & 0o077 != 0 {
        return None;
    }
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.set_modified(SystemTime::now());
    }
    Some(path)
}

/// The copy of `a` below `base`: the one there ([`existing_copy`]), else `src` written to a new
/// file (0600, never one that exists) in its content's folder (0700) and then put in place under
/// its name. At most [`OPEN_BYTES`] are written.
fn place_copy(base: &Path, a: &ArtifactInfo, src: impl Read) -> Result<PathBuf, String> {
    openable(a)?;
    if let Some(path) = existing_copy(base, a) {
        return Ok(path);
    }
    let dir = copy_dir(base, &a.sha256)
        .ok_or_else(|| format!("the kernel listed no content hash for {}", a.name))?;
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let private = std::fs::symlink_metadata(&dir).is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt;
                m.is_dir() && m.mode() & 0o077 == 0
            });
            if !private {
                return Err(format!("{}: not a private folder", dir.display()));
            }
        }
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    }
    let path = dir.join(artifacts::file_name(&a.name));
    let (part, mut dst) = new_part(&dir)?;
    let written = std::io::copy(&mut src.take(OPEN_BYTES + 1), &mut dst);
    let placed = match written {
        Ok(n) if n > OPEN_BYTES => Err(format!(
            "{} is too large to open from here; save a copy instead",
            artifacts::file_name(&a.name)
        )),
        Ok(_) => std::fs::rename(&part, &path).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) => Err(e.to_string()),
    };
    if placed.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    placed.map(|()| path)
}

/// A new file (0600) in `dir` to write a copy into before it is put in place.
fn new_part(dir: &Path) -> Result<(PathBuf, std::fs::File), String> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    for n in 0..100u32 {
        let part = dir.join(format!(".{nanos}-{}-{n}.part", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&part)
        {
            Ok(file) => return Ok((part, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", part.display())),
        }
    }
    Err(format!("no new file in {}", dir.display()))
}

/// Remove the copies below `base` not used for more than [`COPIES_KEPT`].
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn info(name: &str, size: u64) -> ArtifactInfo {
        ArtifactInfo {
            name: name.into(),
            sha256: HASH.into(),
            size,
        }
    }

    fn base() -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base =
            std::env::temp_dir().join(format!("agentos-panel-copies-{}-{n}", std::process::id()));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&base)
            .unwrap();
        base
    }

    /// A reader that fails the test when read: the copy there is used.
    struct Unread;
    impl Read for Unread {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            panic!("the artifact was read again");
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn one_private_copy_per_content() {
        let base = base();
        let a = info("../r\u{202e}eport.txt", 4);
        let path = place_copy(&base, &a, &b"test"[..]).unwrap();
        assert_eq!(path, base.join(HASH).join("report.txt"));
        assert_eq!(std::fs::read(&path).unwrap(), b"test");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&base.join(HASH)), 0o700);
        // Opened again: the same file, not read again.
        assert_eq!(place_copy(&base, &a, Unread).unwrap(), path);
        // Under another name: a file of its own in the same folder.
        let other = place_copy(&base, &info("copy.txt", 4), &b"test"[..]).unwrap();
        assert_eq!(other, base.join(HASH).join("copy.txt"));
        // Nothing else is left there.
        let mut names: Vec<String> = std::fs::read_dir(base.join(HASH))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["copy.txt", "report.txt"]);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_copy_of_the_wrong_size_is_made_again() {
        let base = base();
        let a = info("r.txt", 4);
        let path = place_copy(&base, &a, &b"te"[..]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"te", "a short read");
        let again = place_copy(&base, &a, &b"test"[..]).unwrap();
        assert_eq!(again, path);
        assert_eq!(std::fs::read(&path).unwrap(), b"test");
        // A link put there is not followed or used.
        let linked = info("l.txt", 4);
        std::os::unix::fs::symlink(&path, base.join(HASH).join("l.txt")).unwrap();
        let copy = place_copy(&base, &linked, &b"test"[..]).unwrap();
        assert!(std::fs::symlink_metadata(&copy).unwrap().is_file());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn large_artifacts_and_bad_hashes_are_not_copied() {
        let base = base();
        let big = info("big.iso", OPEN_BYTES + 1);
        let e = place_copy(&base, &big, Unread).unwrap_err();
        assert_eq!(
            e,
            "big.iso is too large to open from here; save a copy instead"
        );
        assert_eq!(openable(&big), Err(e));
        assert!(openable(&info("ok", OPEN_BYTES)).is_ok());
        let mut bad = info("r.txt", 4);
        bad.sha256 = "../../etc".into();
        assert!(place_copy(&base, &bad, &b"test"[..]).is_err());
        assert!(copy_dir(&base, "").is_none());
        assert_eq!(std::fs::read_dir(&base).unwrap().count(), 0);
        // A folder others may read is not used.
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(base.join(HASH))
            .unwrap();
        std::fs::set_permissions(base.join(HASH), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(place_copy(&base, &info("r.txt", 4), &b"test"[..]).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}

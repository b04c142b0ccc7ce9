//! Artifacts: content-addressed files under `artifacts/sha256/<2 hex>/<62 hex>`, named per task.

use std::fs::{self, File, Permissions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::{make_private_dir, ArtifactInfo, Store, StoreError};

/// Where uploads are written before they are renamed into place.
const TEMP_DIR: &str = "tmp";

/// Removes uploads a crash left half-written. Only safe while no other `Store` uses the directory.
pub(crate) fn clear_temp(artifacts: &Path) -> Result<(), StoreError> {
    let tmp = artifacts.join(TEMP_DIR);
    match fs::remove_dir_all(&tmp) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    make_private_dir(&tmp)
}

/// 1 to 255 bytes, no '/', no NUL, not "." or "..".
fn validate_name(name: &str) -> Result<(), StoreError> {
    let ok = (1..=255).contains(&name.len())
        && !name.contains(['/', '\0'])
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.to_owned()))
    }
}

/// Copies at most `max_size` bytes from `reader` to `out`; returns the SHA-256 (hex) and size.
fn copy_hashing(
    reader: &mut dyn Read,
    out: &mut File,
    max_size: u64,
) -> Result<(String, u64), StoreError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        size += n as u64;
        if size > max_size {
            return Err(StoreError::TooLarge { max_size });
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

impl Store {
    /// Stores the content of `reader` (at most `max_size` bytes) as the artifact `name` of task
    /// `task_id`. The data goes to a temporary file, is hashed on the way, fsynced, and renamed to
    /// its content address; if that file already exists the existing one is kept. Then
    /// (task, name, sha256, size) is recorded.
    ///
    /// Errors: [`StoreError::InvalidName`], [`StoreError::NoSuchTask`], [`StoreError::Duplicate`]
    /// (an artifact is never replaced), [`StoreError::TooLarge`] (nothing is recorded and the
    /// temporary file is removed).
    pub fn put_artifact(
        &self,
        task_id: u64,
        name: &str,
        reader: &mut dyn Read,
        max_size: u64,
    ) -> Result<ArtifactInfo, StoreError> {
        validate_name(name)?;
        let task_exists = self
            .conn
            .query_row("SELECT 1 FROM tasks WHERE id = ?1", [task_id], |_| Ok(()))
            .optional()?
            .is_some();
        if !task_exists {
            return Err(StoreError::NoSuchTask(task_id));
        }
        let duplicate = || StoreError::Duplicate {
            task_id,
            name: name.to_owned(),
        };
        if self.artifact_hash(task_id, name)?.is_some() {
            return Err(duplicate());
        }
        let (sha256, size) = self.store_blob(reader, max_size)?;
        let inserted = self.conn.execute(
            "INSERT INTO artifacts (task_id, name, sha256, size) VALUES (?1, ?2, ?3, ?4)",
            params![task_id, name, sha256, size],
        );
        match inserted {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                Err(duplicate())
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(ArtifactInfo {
                name: name.to_owned(),
                sha256,
                size,
            }),
        }
    }

    /// The artifacts of a task, in the order they were stored.
    pub fn list_artifacts(&self, task_id: u64) -> Result<Vec<ArtifactInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, sha256, size FROM artifacts WHERE task_id = ?1 ORDER BY rowid",
        )?;
        let list = stmt
            .query_map([task_id], |r| {
                Ok(ArtifactInfo {
                    name: r.get(0)?,
                    sha256: r.get(1)?,
                    size: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(list)
    }

    /// Opens the stored file of an artifact read-only; `Ok(None)` if there is no such artifact.
    pub fn open_artifact(&self, task_id: u64, name: &str) -> Result<Option<File>, StoreError> {
        match self.artifact_hash(task_id, name)? {
            Some(hash) => Ok(Some(File::open(self.blob_path(&hash)?)?)),
            None => Ok(None),
        }
    }

    fn artifact_hash(&self, task_id: u64, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT sha256 FROM artifacts WHERE task_id = ?1 AND name = ?2",
                params![task_id, name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The content address of a hash; refuses anything but 64 lowercase hex digits.
    fn blob_path(&self, hash: &str) -> Result<PathBuf, StoreError> {
        let valid =
            hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return Err(StoreError::Corrupt(format!("artifact hash {hash:?}")));
        }
        Ok(self
            .artifacts
            .join("sha256")
            .join(&hash[..2])
            .join(&hash[2..]))
    }

    /// Writes the data to its content address (keeping an existing copy); returns hash and size.
    fn store_blob(
        &self,
        reader: &mut dyn Read,
        max_size: u64,
    ) -> Result<(String, u64), StoreError> {
        let mut tmp = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(self.artifacts.join(TEMP_DIR))?;
        let (hash, size) = copy_hashing(reader, tmp.as_file_mut(), max_size)?;
        tmp.as_file()
            .set_permissions(Permissions::from_mode(0o400))?;
        tmp.as_file().sync_all()?;
        let path = self.blob_path(&hash)?;
        let dir = path
            .parent()
            .ok_or_else(|| StoreError::Corrupt("artifact path has no parent".into()))?;
        make_private_dir(dir)?;
        match tmp.persist_noclobber(&path) {
            Ok(_) => File::open(dir)?.sync_all()?,
            // Same content is already stored; the temporary file is removed on drop.
            Err(e) if e.error.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.error.into()),
        }
        Ok((hash, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewTask, TaskState};
    use tempfile::TempDir;

    fn setup() -> (TempDir, Store, u64) {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let id = store
            .insert_task(&NewTask {
                parent: 0,
                agent: "docs".into(),
                caller: "cli".into(),
                goal: "g".into(),
                state: TaskState::Working,
                created: 1,
                deadline: 0,
            })
            .unwrap();
        (tmp, store, id)
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    #[test]
    fn same_content_is_stored_once() {
        let (tmp, store, id) = setup();
        let a = store
            .put_artifact(id, "a.txt", &mut &b"same"[..], 100)
            .unwrap();
        let b = store
            .put_artifact(id, "b.txt", &mut &b"same"[..], 100)
            .unwrap();
        assert_eq!(a.sha256, b.sha256);
        assert_eq!(a.size, 4);
        assert_eq!(a.sha256, hex::encode(Sha256::digest(b"same")));
        let files = files_under(&tmp.path().join("artifacts/sha256"));
        assert_eq!(files.len(), 1);
        assert!(files[0].ends_with(format!("{}/{}", &a.sha256[..2], &a.sha256[2..])));
        assert!(files_under(&tmp.path().join("artifacts/tmp")).is_empty());
        assert_eq!(store.list_artifacts(id).unwrap(), vec![a, b]);

        let mut text = String::new();
        let mut f = store.open_artifact(id, "b.txt").unwrap().unwrap();
        f.read_to_string(&mut text).unwrap();
        assert_eq!(text, "same");
        assert!(f.write_all(b"x").is_err(), "opened read-only");
        assert!(store.open_artifact(id, "c.txt").unwrap().is_none());
    }

    #[test]
    fn too_large_leaves_nothing() {
        let (tmp, store, id) = setup();
        let err = store.put_artifact(id, "big", &mut &[7u8; 101][..], 100);
        assert!(matches!(err, Err(StoreError::TooLarge { max_size: 100 })));
        assert!(store.list_artifacts(id).unwrap().is_empty());
        assert!(files_under(&tmp.path().join("artifacts")).is_empty());
        // Exactly at the limit is fine.
        store
            .put_artifact(id, "big", &mut &[7u8; 100][..], 100)
            .unwrap();
    }

    #[test]
    fn bad_names_and_duplicates_are_refused() {
        let (_tmp, store, id) = setup();
        let long = "x".repeat(256);
        for name in ["../x", "", ".", "..", "a/b", "nul\0", long.as_str()] {
            let err = store.put_artifact(id, name, &mut &b"d"[..], 10);
            assert!(matches!(err, Err(StoreError::InvalidName(_))), "{name:?}");
        }
        store
            .put_artifact(id, &"x".repeat(255), &mut &b"d"[..], 10)
            .unwrap();
        store.put_artifact(id, "r", &mut &b"one"[..], 10).unwrap();
        let err = store.put_artifact(id, "r", &mut &b"two"[..], 10);
        assert!(matches!(err, Err(StoreError::Duplicate { .. })));
        let err = store.put_artifact(id + 1, "r", &mut &b"two"[..], 10);
        assert!(matches!(err, Err(StoreError::NoSuchTask(_))));
    }
}

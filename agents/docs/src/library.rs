//! The folders this agent may read, behind a small trait (the kernel's `files.list` and
//! `files.read` in production, files in memory in tests), and the bounded walk over one.

use std::future::Future;

use agentos_sdk::{FileEntry, Task};

/// Deepest folder level walked, most folders listed, and most files looked at.
const MAX_DEPTH: usize = 4;
const MAX_DIRS: usize = 500;
pub const MAX_FILES: usize = 2000;

/// Listing and reading files beneath a granted folder.
pub trait Library: Sync {
    /// Entries of `dir` (relative, "" for the top) beneath `folder`.
    fn list(
        &self,
        folder: &str,
        dir: &str,
    ) -> impl Future<Output = Result<Vec<FileEntry>, String>> + Send;
    /// At most `max` bytes of the file `path` beneath `folder`.
    fn read(
        &self,
        folder: &str,
        path: &str,
        max: u64,
    ) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
    /// A status line for the user; errors are ignored.
    fn progress(&self, fraction: f64, message: &str) -> impl Future<Output = ()> + Send;
}

impl Library for Task {
    async fn list(&self, folder: &str, dir: &str) -> Result<Vec<FileEntry>, String> {
        self.list_files(folder, dir).await.map_err(|e| e.message())
    }

    async fn read(&self, folder: &str, path: &str, max: u64) -> Result<Vec<u8>, String> {
        self.read_file(folder, path, max)
            .await
            .map_err(|e| e.message())
    }

    async fn progress(&self, fraction: f64, message: &str) {
        let _ = Task::progress(self, fraction, message).await;
    }
}

/// A file found by [`walk`]: its path relative to the folder, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: String,
    pub name: String,
    pub size: u64,
}

/// Every file beneath `folder`, at most [`MAX_DEPTH`] levels down, [`MAX_DIRS`] folders listed
/// and [`MAX_FILES`] files in all. Only a `folder` that cannot be listed is an error: a
/// subfolder that cannot be (no permission, gone meanwhile) is left out.
pub async fn walk(library: &impl Library, folder: &str) -> Result<Vec<Found>, String> {
    let mut found = Vec::new();
    let mut pending = vec![(String::new(), 0usize)];
    let mut listed = 0;
    while let Some((dir, depth)) = pending.pop() {
        if listed == MAX_DIRS {
            break;
        }
        listed += 1;
        let entries = match library.list(folder, &dir).await {
            Ok(entries) => entries,
            Err(e) if dir.is_empty() => return Err(e),
            Err(_) => continue,
        };
        for e in entries {
            let path = if dir.is_empty() {
                e.name.clone()
            } else {
                format!("{dir}/{}", e.name)
            };
            if e.is_dir {
                if depth < MAX_DEPTH {
                    pending.push((path, depth + 1));
                }
                continue;
            }
            if found.len() == MAX_FILES {
                return Ok(found);
            }
            found.push(Found {
                path,
                name: e.name,
                size: e.size,
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
pub mod memory {
    //! A library of files in memory, for tests.

    use super::*;
    use std::sync::Mutex;

    /// Files by path ("a/b.txt"), and every read asked of it.
    #[derive(Default)]
    pub struct Memory {
        pub files: Vec<(String, String)>,
        pub reads: Mutex<Vec<String>>,
        /// Folders whose listing fails, as one without permission does.
        pub unlistable: Vec<String>,
        /// Every folder listed.
        pub lists: Mutex<Vec<String>>,
    }

    impl Memory {
        pub fn new(files: &[(&str, &str)]) -> Memory {
            Memory {
                files: files
                    .iter()
                    .map(|(p, t)| (p.to_string(), t.to_string()))
                    .collect(),
                ..Memory::default()
            }
        }
    }

    impl Library for Memory {
        async fn list(&self, _folder: &str, dir: &str) -> Result<Vec<FileEntry>, String> {
            self.lists.lock().unwrap().push(dir.to_string());
            if self.unlistable.iter().any(|d| d == dir) {
                return Err(format!("{dir} cannot be listed: permission denied"));
            }
            let prefix = if dir.is_empty() {
                String::new()
            } else {
                format!("{dir}/")
            };
            let mut out: Vec<FileEntry> = Vec::new();
            for (path, text) in &self.files {
                let Some(rest) = path.strip_prefix(&prefix) else {
                    continue;
                };
                let entry = match rest.split_once('/') {
                    Some((sub, _)) => FileEntry {
                        name: sub.to_string(),
                        is_dir: true,
                        size: 0,
                    },
                    None => FileEntry {
                        name: rest.to_string(),
                        is_dir: false,
                        size: text.len() as u64,
                    },
                };
                if !out.contains(&entry) {
                    out.push(entry);
                }
            }
            Ok(out)
        }

        async fn read(&self, _folder: &str, path: &str, max: u64) -> Result<Vec<u8>, String> {
            self.reads.lock().unwrap().push(path.to_string());
            let text = self
                .files
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, t)| t.as_bytes())
                .ok_or_else(|| format!("no file {path}"))?;
            Ok(text[..text.len().min(max as usize)].to_vec())
        }

        async fn progress(&self, _fraction: f64, _message: &str) {}
    }
}

#[cfg(test)]
mod tests {
    use super::memory::Memory;
    use super::*;

    #[tokio::test]
    async fn walks_nested_folders() {
        let lib = Memory::new(&[("a.txt", "x"), ("sub/b.txt", "yy"), ("sub/deep/c.md", "")]);
        let mut paths: Vec<_> = walk(&lib, "/d")
            .await
            .unwrap()
            .into_iter()
            .map(|f| (f.path, f.size))
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                ("a.txt".to_string(), 1),
                ("sub/b.txt".to_string(), 2),
                ("sub/deep/c.md".to_string(), 0)
            ]
        );
    }

    #[tokio::test]
    async fn a_subfolder_that_cannot_be_listed_is_left_out() {
        let mut lib = Memory::new(&[("a.txt", "x"), ("locked/b.txt", "y"), ("open/c.txt", "z")]);
        lib.unlistable = vec!["locked".into()];
        let mut paths: Vec<_> = walk(&lib, "/d")
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        paths.sort();
        assert_eq!(paths, ["a.txt", "open/c.txt"]);
        // The top folder itself is another matter: its error is the walk's.
        lib.unlistable = vec![String::new()];
        let err = walk(&lib, "/d").await.unwrap_err();
        assert!(err.contains("permission denied"), "{err}");
    }

    #[tokio::test]
    async fn the_folders_listed_are_bounded() {
        let files: Vec<(String, String)> = (0..MAX_DIRS + 100)
            .map(|i| (format!("d{i}/f.txt"), "x".to_string()))
            .collect();
        let lib = Memory {
            files,
            ..Memory::default()
        };
        let found = walk(&lib, "/d").await.unwrap();
        assert_eq!(lib.lists.lock().unwrap().len(), MAX_DIRS);
        assert_eq!(found.len(), MAX_DIRS - 1, "the top and 499 subfolders");
    }
}

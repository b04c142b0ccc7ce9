//! The folders this agent may read, behind a small trait (the kernel's `files.list` and
//! `files.read` in production, files in memory in tests), and the bounded walk over one.

use std::future::Future;

use agentos_sdk::{FileEntry, Task};

/// Deepest folder level walked, and most files looked at.
const MAX_DEPTH: usize = 4;
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

/// Every file beneath `folder`, at most [`MAX_DEPTH`] levels down and [`MAX_FILES`] in all.
pub async fn walk(library: &impl Library, folder: &str) -> Result<Vec<Found>, String> {
    let mut found = Vec::new();
    let mut pending = vec![(String::new(), 0usize)];
    while let Some((dir, depth)) = pending.pop() {
        for e in library.list(folder, &dir).await? {
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
    }

    impl Memory {
        pub fn new(files: &[(&str, &str)]) -> Memory {
            Memory {
                files: files
                    .iter()
                    .map(|(p, t)| (p.to_string(), t.to_string()))
                    .collect(),
                reads: Mutex::new(Vec::new()),
            }
        }
    }

    impl Library for Memory {
        async fn list(&self, _folder: &str, dir: &str) -> Result<Vec<FileEntry>, String> {
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
}

//! `files.list` and `files.read`: everything is resolved beneath the granted folder with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so `..`, absolute paths and symlinks that
//! lead out of it fail in the kernel of the OS, not in string checks.

use std::os::fd::OwnedFd;
use std::path::Path;

use agentos_dbus_interfaces::{Capability, FileEntry};
use rustix::fs::{openat2, statat, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;
use serde_json::{json, Value};

use crate::tool::{string_arg, string_arg_or};
use crate::{ScopeCheck, Tool, ToolError, ToolOutput};

/// Most entries returned by one listing.
pub const MAX_ENTRIES: usize = 10_000;

fn check_rel(rel: &str) -> Result<&str, ToolError> {
    if rel.len() > 4096 || rel.contains('\0') {
        return Err(ToolError::Invalid(
            "the path is too long or contains a NUL character".into(),
        ));
    }
    Ok(if rel.is_empty() { "." } else { rel })
}

fn map_errno(e: Errno, rel: &str) -> ToolError {
    match e {
        Errno::XDEV | Errno::LOOP => {
            ToolError::Escapes(format!("{rel:?} leads outside the granted folder"))
        }
        Errno::NOENT => ToolError::Invalid(format!("{rel:?} does not exist")),
        Errno::NOTDIR => ToolError::Invalid(format!("{rel:?} is not a folder")),
        Errno::ACCESS | Errno::PERM => {
            ToolError::Failed(format!("{rel:?}: permission denied by the system"))
        }
        other => ToolError::Failed(format!("{rel:?}: {other}")),
    }
}

/// Open `rel` beneath `root` with the given flags.
fn open_beneath(root: &Path, rel: &str, flags: OFlags) -> Result<OwnedFd, ToolError> {
    let rel = check_rel(rel)?;
    // The granted folder is canonical: opening it without following any symlink closes the race
    // of a path component being swapped for a symlink after the check.
    let root_fd = openat2(
        CWD,
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS,
    )
    .map_err(|e| {
        ToolError::Failed(format!(
            "cannot open the granted folder {}: {e}",
            root.display()
        ))
    })?;
    openat2(
        &root_fd,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| map_errno(e, rel))
}

/// List the folder `rel` beneath `root`: name, is-directory, size; sorted by name.
pub fn list(root: &Path, rel: &str) -> Result<Vec<FileEntry>, ToolError> {
    let dir_fd = open_beneath(root, rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
    let mut dir = Dir::read_from(&dir_fd).map_err(|e| map_errno(e, rel))?;
    let mut out = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(|e| map_errno(e, rel))?;
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let Ok(name_str) = std::str::from_utf8(bytes) else {
            continue;
        };
        let Ok(stat) = statat(&dir_fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = FileType::from_raw_mode(stat.st_mode);
        out.push(FileEntry {
            name: name_str.to_string(),
            is_dir: kind == FileType::Directory,
            size: if kind == FileType::RegularFile {
                stat.st_size as u64
            } else {
                0
            },
        });
        if out.len() >= MAX_ENTRIES {
            break;
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Open the regular file `rel` beneath `root` read-only.
pub fn open_file(root: &Path, rel: &str) -> Result<OwnedFd, ToolError> {
    let fd = open_beneath(
        root,
        rel,
        OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK,
    )?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| map_errno(e, rel))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(ToolError::Invalid(format!("{rel:?} is not a regular file")));
    }
    // Reads should block normally from here on.
    rustix::fs::fcntl_setfl(&fd, OFlags::RDONLY).map_err(|e| map_errno(e, rel))?;
    Ok(fd)
}

/// An `O_PATH` fd on the regular file `rel` beneath `root` (for handing to the Documents portal).
pub fn open_path(root: &Path, rel: &str) -> Result<OwnedFd, ToolError> {
    let fd = open_beneath(root, rel, OFlags::PATH)?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| map_errno(e, rel))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(ToolError::Invalid(format!("{rel:?} is not a regular file")));
    }
    Ok(fd)
}

/// A folder scope as the user means it: normalized for `capability`, then resolved to its real
/// path (the grant names the folder itself, not a link to it).
pub fn resolve_folder(capability: &Capability, folder: &str) -> Result<String, ToolError> {
    let normalized = capability
        .normalize_scope(folder)
        .map_err(ToolError::Invalid)?;
    let real = std::fs::canonicalize(&normalized).map_err(|e| {
        ToolError::Invalid(format!("the folder {normalized:?} cannot be opened: {e}"))
    })?;
    real.to_str()
        .map(str::to_string)
        .ok_or_else(|| ToolError::Invalid("the folder's path is not valid UTF-8".into()))
}

fn capability(name: &str) -> &'static Capability {
    Capability::lookup(name).expect("files.list and files.read are compiled into the vocabulary")
}

fn folder_parameters(path_doc: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "folder": {"type": "string", "description": "The granted folder, an absolute path"},
            "path": {"type": "string", "description": path_doc},
        },
        "required": ["folder"],
        "additionalProperties": false,
    })
}

/// Run blocking file-system work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ToolError> + Send + 'static,
) -> Result<T, ToolError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ToolError::Failed(format!("internal error: {e}")))?
}

/// `files.list`: the entries of a folder beneath a granted folder.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListTool;

#[async_trait::async_trait]
impl Tool for ListTool {
    fn name(&self) -> &str {
        "files.list"
    }
    fn capability(&self) -> &'static Capability {
        capability("files.list")
    }
    fn description(&self) -> &str {
        "List the entries (name, whether a folder, size) of a folder beneath a granted folder."
    }
    fn parameters(&self) -> Value {
        folder_parameters("The folder to list, relative to `folder` (default: `folder` itself)")
    }
    fn scope(&self, args: &Value) -> Result<String, ToolError> {
        resolve_folder(self.capability(), string_arg(args, "folder")?)
    }
    async fn run(
        &self,
        args: Value,
        scope: String,
        _check: &dyn ScopeCheck,
    ) -> Result<ToolOutput, ToolError> {
        let path = string_arg_or(&args, "path", "")?.to_string();
        let entries = blocking(move || list(Path::new(&scope), &path)).await?;
        let entries: Vec<Value> = entries
            .into_iter()
            .map(|e| json!({"name": e.name, "is_dir": e.is_dir, "size": e.size}))
            .collect();
        Ok(ToolOutput::value(Value::Array(entries)))
    }
}

/// `files.read`: a regular file beneath a granted folder, opened read-only and handed over as
/// a file descriptor.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadTool;

#[async_trait::async_trait]
impl Tool for ReadTool {
    fn name(&self) -> &str {
        "files.read"
    }
    fn capability(&self) -> &'static Capability {
        capability("files.read")
    }
    fn description(&self) -> &str {
        "Open a file beneath a granted folder for reading; the file comes as a file descriptor."
    }
    fn parameters(&self) -> Value {
        let mut p = folder_parameters("The file to read, relative to `folder`");
        p["required"] = json!(["folder", "path"]);
        p
    }
    fn scope(&self, args: &Value) -> Result<String, ToolError> {
        resolve_folder(self.capability(), string_arg(args, "folder")?)
    }
    async fn run(
        &self,
        args: Value,
        scope: String,
        _check: &dyn ScopeCheck,
    ) -> Result<ToolOutput, ToolError> {
        let path = string_arg(&args, "path")?.to_string();
        let rel = path.clone();
        let fd = blocking(move || open_file(Path::new(&scope), &rel)).await?;
        Ok(ToolOutput {
            value: json!({"path": path, "fd": 0}),
            data: Vec::new(),
            fds: vec![fd],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("granted");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.txt"), "hello").unwrap();
        std::fs::write(root.join("sub/b.txt"), "inner").unwrap();
        std::fs::write(t.path().join("secret.txt"), "nope").unwrap();
        std::os::unix::fs::symlink("../secret.txt", root.join("out-link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs-link")).unwrap();
        std::os::unix::fs::symlink("sub/b.txt", root.join("in-link")).unwrap();
        t
    }

    #[test]
    fn lists_and_reads_inside() {
        let t = tree();
        let root = t.path().join("granted");
        let names: Vec<String> = list(&root, "")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a.txt", "abs-link", "in-link", "out-link", "sub"]);
        let mut s = String::new();
        std::fs::File::from(open_file(&root, "sub/b.txt").unwrap())
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "inner");
        s.clear();
        std::fs::File::from(open_file(&root, "in-link").unwrap())
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "inner");
    }

    #[test]
    fn escapes_fail() {
        let t = tree();
        let root = t.path().join("granted");
        for rel in [
            "../secret.txt",
            "out-link",
            "abs-link",
            "/etc/passwd",
            "sub/../../secret.txt",
        ] {
            assert!(
                matches!(open_file(&root, rel), Err(ToolError::Escapes(_))),
                "{rel} escaped"
            );
        }
        assert!(matches!(list(&root, ".."), Err(ToolError::Escapes(_))));
        assert!(matches!(
            open_file(&root, "sub"),
            Err(ToolError::Invalid(_))
        ));
        assert!(matches!(
            open_file(&root, "missing"),
            Err(ToolError::Invalid(_))
        ));
        assert!(matches!(
            open_file(&root, "a\0b"),
            Err(ToolError::Invalid(_))
        ));
        assert!(matches!(
            open_path(&root, "out-link"),
            Err(ToolError::Escapes(_))
        ));
        assert!(matches!(
            open_path(&root, "sub"),
            Err(ToolError::Invalid(_))
        ));
        assert!(open_path(&root, "sub/b.txt").is_ok());
    }
}

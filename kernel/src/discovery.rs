//! Finding agent manifests: `--agents-dir`, then `$XDG_DATA_HOME/agentos/agents`, then each of
//! `$XDG_DATA_DIRS` `/agentos/agents`. The first manifest with a given id wins; a bad manifest is
//! logged and skipped, never fatal. Also how far a manifest is trusted (`sandbox = false` counts
//! only where the user cannot write: [`user_can_change`]) and which programs may run
//! ([`resolve_exec`], [`check_exec`]).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use agentos_portal::xdg::BaseDirs;

use crate::manifest::Manifest;
use crate::policy::location::{self, User};

/// The directories searched, in order of precedence: `extra`, then `agentos/agents` under the
/// XDG data home and each XDG data dir.
pub fn agent_dirs(extra: &[PathBuf], dirs: &BaseDirs) -> Vec<PathBuf> {
    extra
        .iter()
        .cloned()
        .chain(
            dirs.data_search_path()
                .into_iter()
                .map(|d| d.join("agentos/agents")),
        )
        .collect()
}

/// Load every valid manifest from `dirs`; returns them and the problems found.
pub fn discover(dirs: &[PathBuf]) -> (Vec<(Manifest, PathBuf)>, Vec<String>) {
    let mut found: Vec<(Manifest, PathBuf)> = Vec::new();
    let mut problems = Vec::new();
    for dir in dirs {
        let mut files = match manifest_files(dir) {
            Ok(files) => files,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                problems.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        files.sort();
        for file in files {
            match Manifest::load(&file) {
                Ok(m) if found.iter().any(|(f, _)| f.id == m.id) => {
                    tracing::debug!(id = %m.id, file = %file.display(), "manifest shadowed by an earlier one");
                }
                Ok(m) => found.push((m, file)),
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
    (found, problems)
}

fn manifest_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect())
}

/// Resolve a manifest's `exec` and check the program: an absolute path as it is, a bare name
/// only in `search` (the kernel's exec dirs); see [`check_exec`]. The error says why in words.
pub fn resolve_exec(exec: &str, search: &[PathBuf], sandboxed: bool) -> Result<PathBuf, String> {
    let path = Path::new(exec);
    let found = if path.is_absolute() {
        path.to_path_buf()
    } else if exec.contains('/') {
        return Err(format!(
            "exec {exec:?} is neither an absolute path nor a bare program name"
        ));
    } else {
        search
            .iter()
            .map(|d| d.join(exec))
            .find(|p| std::fs::symlink_metadata(p).is_ok())
            .ok_or_else(|| {
                let dirs: Vec<String> = search.iter().map(|d| d.display().to_string()).collect();
                format!(
                    "no program named {exec:?} in the kernel's exec dirs ({})",
                    dirs.join(", ")
                )
            })?
    };
    // Always an absolute, real path: it is handed to bubblewrap as a value.
    let real = std::fs::canonicalize(&found)
        .map_err(|e| format!("program {} cannot be found: {e}", found.display()))?;
    check_exec(&real, sandboxed)?;
    Ok(real)
}

/// Check a program before it runs: a regular, executable file, and for an agent that runs
/// unsandboxed, writable by nobody but its owner.
pub fn check_exec(path: &Path, sandboxed: bool) -> Result<(), String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("program {} cannot be read: {e}", path.display()))?;
    let mode = meta.permissions().mode();
    if !meta.is_file() {
        Err(format!("program {} is not a regular file", path.display()))
    } else if mode & 0o111 == 0 {
        Err(format!("program {} is not executable", path.display()))
    } else if !sandboxed && mode & 0o022 != 0 {
        Err(format!(
            "program {} is writable by others than its owner (mode {:o}): it is not run unsandboxed",
            path.display(),
            mode & 0o7777
        ))
    } else {
        Ok(())
    }
}

/// Why the user could change the manifest at `file` (or what it resolves to), or `None` when
/// it is out of the user's reach: the file and every folder above it owned by root or another
/// user and not writable by the user (`policy::location`). A folder in `trusted` (the kernel's
/// `--trust-agents-dir`, for tests and development) counts as out of reach.
pub fn user_can_change(file: &Path, trusted: &[PathBuf]) -> Option<String> {
    if let Some(dir) = file.parent() {
        let real = std::fs::canonicalize(dir).ok();
        if trusted.iter().any(|t| {
            t == dir
                || std::fs::canonicalize(t)
                    .ok()
                    .is_some_and(|t| Some(t) == real)
        }) {
            return None;
        }
    }
    let user = current_user();
    let real = match std::fs::canonicalize(file) {
        Ok(r) => r,
        Err(e) => return Some(format!("{}: {e}", file.display())),
    };
    // The path as found (a symlink on it lives in a folder that must be out of reach too),
    // then the path it resolves to.
    for path in [file, real.as_path()] {
        if let Some(why) = reachable(path, &user) {
            return Some(why);
        }
    }
    None
}

/// The first component of `path` (from the root down) that `user` can change, and why.
fn reachable(path: &Path, user: &User) -> Option<String> {
    let mut prefix = PathBuf::new();
    for part in path.components() {
        match part {
            Component::RootDir | Component::Normal(_) => prefix.push(part),
            Component::CurDir => continue,
            // Not a plain path: treat it as within reach.
            _ => return Some(format!("{}: not a plain path", path.display())),
        }
        let meta = match std::fs::symlink_metadata(&prefix) {
            Ok(m) => m,
            Err(e) => return Some(format!("{}: {e}", prefix.display())),
        };
        let component = location::Component {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            is_dir: meta.is_dir(),
        };
        if let Some(why) = user.can_write(&component) {
            return Some(format!("{} is {why}", prefix.display()));
        }
    }
    None
}

/// The kernel's effective uid and its groups.
fn current_user() -> User {
    let uid = rustix::process::geteuid().as_raw();
    let mut groups = vec![rustix::process::getegid().as_raw()];
    if let Ok(more) = rustix::process::getgroups() {
        groups.extend(more.into_iter().map(|g| g.as_raw()));
    }
    User { uid, groups }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_wins_and_bad_ones_are_reported() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let m = |name: &str| format!("id = \"docs\"\nname = \"{name}\"\nexec = \"/bin/true\"\n");
        std::fs::write(a.path().join("docs.toml"), m("First")).unwrap();
        std::fs::write(b.path().join("docs.toml"), m("Second")).unwrap();
        std::fs::write(b.path().join("bad.toml"), "id = 3").unwrap();
        std::fs::write(b.path().join("notes.txt"), "ignored").unwrap();
        let (found, problems) =
            discover(&[a.path().into(), b.path().into(), "/nonexistent".into()]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.name, "First");
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn extra_dirs_first_then_the_xdg_data_dirs() {
        let env = [
            ("HOME", "/home/u"),
            ("XDG_DATA_DIRS", "/usr/share:relative"),
        ];
        let dirs =
            BaseDirs::from_env(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).into()));
        assert_eq!(
            agent_dirs(&["/extra".into()], &dirs),
            [
                PathBuf::from("/extra"),
                "/home/u/.local/share/agentos/agents".into(),
                "/usr/share/agentos/agents".into(),
            ]
        );
    }

    #[test]
    fn exec_resolution() {
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        assert_eq!(resolve_exec("/bin/sh", &[], false), Ok(sh.clone()));
        assert_eq!(resolve_exec("sh", &["/bin".into()], false), Ok(sh));
        let err = resolve_exec("../sh", &["/bin".into()], true).unwrap_err();
        assert!(err.contains("neither an absolute path"), "{err}");
        let err = resolve_exec("nope-nope", &["/bin".into()], true).unwrap_err();
        assert!(err.contains("no program named \"nope-nope\""), "{err}");
        // A bare name is looked up in the exec dirs only, never in $PATH.
        assert!(resolve_exec("sh", &[], true).is_err());
        let err = resolve_exec("/nonexistent/agent", &[], true).unwrap_err();
        assert!(err.contains("cannot be found"), "{err}");
    }

    #[test]
    fn programs_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("agent");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        let mode = |m| std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(m)).unwrap();
        mode(0o644);
        assert!(check_exec(&prog, true)
            .unwrap_err()
            .contains("not executable"));
        mode(0o775);
        assert!(check_exec(&prog, true).is_ok());
        let err = check_exec(&prog, false).unwrap_err();
        assert!(
            err.contains("writable by others than its owner (mode 775)"),
            "{err}"
        );
        mode(0o755);
        assert!(check_exec(&prog, false).is_ok());
        assert!(check_exec(dir.path(), true)
            .unwrap_err()
            .contains("not a regular file"));
    }

    #[test]
    fn a_folder_everyone_can_write_is_in_reach_and_a_trusted_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let agents = dir.path().join("agents");
        std::fs::create_dir(&agents).unwrap();
        let file = agents.join("a.toml");
        std::fs::write(&file, "").unwrap();
        std::fs::set_permissions(&agents, std::fs::Permissions::from_mode(0o777)).unwrap();
        let why = user_can_change(&file, &[]).expect("in reach");
        assert!(why.contains("writable by everyone"), "{why}");
        assert_eq!(user_can_change(&file, std::slice::from_ref(&agents)), None);
        // Whoever runs the tests owns the temp dir: as root it is root's, out of reach once
        // nobody else may write it; as anyone else it is the user's.
        std::fs::set_permissions(&agents, std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = rustix::process::geteuid().is_root();
        assert_eq!(user_can_change(&file, &[]).is_none(), root);
        assert!(user_can_change(&dir.path().join("missing.toml"), &[]).is_some());
    }
}

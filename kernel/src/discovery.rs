//! Finding agent manifests: `--agents-dir`, then `$XDG_DATA_HOME/agentos/agents`, then each of
//! `$XDG_DATA_DIRS` `/agentos/agents`. The first manifest with a given id wins; a bad manifest is
//! logged and skipped, never fatal.

use std::path::{Path, PathBuf};

use agentos_portal::xdg::BaseDirs;

use crate::manifest::Manifest;

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

/// Resolve a manifest's `exec`: absolute paths as they are; bare names in `search` dirs.
pub fn resolve_exec(exec: &str, search: &[PathBuf]) -> Option<PathBuf> {
    let path = Path::new(exec);
    let found = if path.is_absolute() {
        path.is_file().then(|| path.to_path_buf())
    } else if exec.contains('/') {
        None
    } else {
        search.iter().map(|d| d.join(exec)).find(|p| p.is_file())
    };
    // Always an absolute, real path: it is handed to bubblewrap as a value.
    found.and_then(|p| std::fs::canonicalize(p).ok())
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
        assert_eq!(resolve_exec("/bin/sh", &[]), Some(sh.clone()));
        assert_eq!(resolve_exec("sh", &["/bin".into()]), Some(sh));
        assert_eq!(resolve_exec("../sh", &["/bin".into()]), None);
        assert_eq!(resolve_exec("nope-nope", &["/bin".into()]), None);
    }
}

//! Where the user's files are, in one place: the XDG Base Directory spec (data, config, state,
//! cache, runtime; the data and config search paths) and xdg-user-dirs (`user-dirs.dirs`), read
//! from an environment the caller gives, so tests need no process-wide changes.
//!
//! Rules (basedir spec 0.8): a variable that is unset or empty takes its default; a relative path
//! is invalid and ignored (the default is used for a home, the entry is dropped from a list);
//! `XDG_RUNTIME_DIR` has no default. Defaults under `$HOME` need `HOME` to be absolute.
//!
//! `user-dirs.dirs` is a shell fragment, not a key file (no groups, values shell-quoted), so it
//! has its own small reader here, following xdg-user-dirs' `xdg-user-dir-lookup.c`: only
//! `XDG_<NAME>_DIR="$HOME/…"` or `"/absolute"` values count; anything else is ignored.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The XDG base directories of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseDirs {
    home: Option<PathBuf>,
    data_home: Option<PathBuf>,
    config_home: Option<PathBuf>,
    state_home: Option<PathBuf>,
    cache_home: Option<PathBuf>,
    runtime_dir: Option<PathBuf>,
    data_dirs: Vec<PathBuf>,
    config_dirs: Vec<PathBuf>,
}

impl BaseDirs {
    /// Read the directories from `var` (e.g. `|k| std::env::var_os(k)`).
    pub fn from_env(var: impl Fn(&str) -> Option<OsString>) -> Self {
        let absolute = |k: &str| var(k).map(PathBuf::from).filter(|p| p.is_absolute());
        let home = absolute("HOME");
        let under_home =
            |k: &str, default: &str| absolute(k).or_else(|| home.as_ref().map(|h| h.join(default)));
        let list = |k: &str, default: &[&str]| -> Vec<PathBuf> {
            match var(k).filter(|v| !v.is_empty()) {
                Some(v) => std::env::split_paths(&v)
                    .filter(|p| p.is_absolute())
                    .collect(),
                None => default.iter().map(PathBuf::from).collect(),
            }
        };
        BaseDirs {
            data_home: under_home("XDG_DATA_HOME", ".local/share"),
            config_home: under_home("XDG_CONFIG_HOME", ".config"),
            state_home: under_home("XDG_STATE_HOME", ".local/state"),
            cache_home: under_home("XDG_CACHE_HOME", ".cache"),
            runtime_dir: absolute("XDG_RUNTIME_DIR"),
            data_dirs: list("XDG_DATA_DIRS", &["/usr/local/share", "/usr/share"]),
            config_dirs: list("XDG_CONFIG_DIRS", &["/etc/xdg"]),
            home,
        }
    }

    /// Read the directories from this process's environment.
    pub fn from_process_env() -> Self {
        Self::from_env(|k| std::env::var_os(k))
    }

    /// `$HOME`, when it is an absolute path.
    pub fn home(&self) -> Option<&Path> {
        self.home.as_deref()
    }

    /// `$XDG_DATA_HOME`, default `~/.local/share`.
    pub fn data_home(&self) -> Option<&Path> {
        self.data_home.as_deref()
    }

    /// `$XDG_CONFIG_HOME`, default `~/.config`.
    pub fn config_home(&self) -> Option<&Path> {
        self.config_home.as_deref()
    }

    /// `$XDG_STATE_HOME`, default `~/.local/state`.
    pub fn state_home(&self) -> Option<&Path> {
        self.state_home.as_deref()
    }

    /// `$XDG_CACHE_HOME`, default `~/.cache`.
    pub fn cache_home(&self) -> Option<&Path> {
        self.cache_home.as_deref()
    }

    /// `$XDG_RUNTIME_DIR`; no default.
    pub fn runtime_dir(&self) -> Option<&Path> {
        self.runtime_dir.as_deref()
    }

    /// `$XDG_DATA_DIRS`, default `/usr/local/share:/usr/share`, in order of preference.
    pub fn data_dirs(&self) -> &[PathBuf] {
        &self.data_dirs
    }

    /// `$XDG_CONFIG_DIRS`, default `/etc/xdg`, in order of preference.
    pub fn config_dirs(&self) -> &[PathBuf] {
        &self.config_dirs
    }

    /// Where to look for data files, most important first: the data home, then the data dirs.
    pub fn data_search_path(&self) -> Vec<PathBuf> {
        self.data_home
            .iter()
            .chain(&self.data_dirs)
            .cloned()
            .collect()
    }

    /// Where to look for config files, most important first: the config home, then the config dirs.
    pub fn config_search_path(&self) -> Vec<PathBuf> {
        self.config_home
            .iter()
            .chain(&self.config_dirs)
            .cloned()
            .collect()
    }

    /// A user directory (`name` as in `XDG_<name>_DIR`: `DOCUMENTS`, `DOWNLOAD`, `DESKTOP`…) from
    /// `$XDG_CONFIG_HOME/user-dirs.dirs`; `None` when the file does not say.
    pub fn user_dir(&self, name: &str) -> Option<PathBuf> {
        let text = std::fs::read_to_string(self.config_home()?.join("user-dirs.dirs")).ok()?;
        user_dir_from(&text, name, self.home())
    }

    /// The user's documents folder: `XDG_DOCUMENTS_DIR`, else `~/Documents`.
    pub fn documents_dir(&self) -> Option<PathBuf> {
        self.user_dir("DOCUMENTS")
            .or_else(|| self.home().map(|h| h.join("Documents")))
    }
}

/// `XDG_<name>_DIR` from the text of a `user-dirs.dirs` (the last valid line wins, as in
/// xdg-user-dirs). Values are double-quoted; `\` escapes the next character; a value must be
/// `$HOME`, start with `$HOME/`, or be absolute.
pub fn user_dir_from(text: &str, name: &str, home: Option<&Path>) -> Option<PathBuf> {
    let var = format!("XDG_{name}_DIR");
    let mut found = None;
    for line in text.lines() {
        let line = line.trim_start_matches([' ', '\t']);
        let Some(rest) = line.strip_prefix(var.as_str()) else {
            continue;
        };
        let Some(rest) = rest.trim_start_matches([' ', '\t']).strip_prefix('=') else {
            continue;
        };
        let Some(quoted) = rest.trim_start_matches([' ', '\t']).strip_prefix('"') else {
            continue;
        };
        let Some(value) = unquote(quoted) else {
            continue;
        };
        let path = if value == "$HOME" {
            home.map(Path::to_path_buf)
        } else if let Some(relative) = value.strip_prefix("$HOME/") {
            home.map(|h| h.join(relative))
        } else if value.starts_with('/') {
            Some(PathBuf::from(value))
        } else {
            None
        };
        if path.is_some() {
            found = path;
        }
    }
    found
}

/// The text up to the closing `"`, with `\x` read as `x`; `None` if the quote is never closed.
fn unquote(quoted: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = quoted.chars();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn dirs(vars: &[(&str, &str)]) -> BaseDirs {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        BaseDirs::from_env(|k| vars.get(k).cloned())
    }

    fn p(s: &str) -> Option<&Path> {
        Some(Path::new(s))
    }

    #[test]
    fn defaults_under_home() {
        let d = dirs(&[("HOME", "/home/u")]);
        assert_eq!(d.home(), p("/home/u"));
        assert_eq!(d.data_home(), p("/home/u/.local/share"));
        assert_eq!(d.config_home(), p("/home/u/.config"));
        assert_eq!(d.state_home(), p("/home/u/.local/state"));
        assert_eq!(d.cache_home(), p("/home/u/.cache"));
        assert_eq!(d.runtime_dir(), None);
        assert_eq!(
            d.data_dirs(),
            [PathBuf::from("/usr/local/share"), "/usr/share".into()]
        );
        assert_eq!(d.config_dirs(), [PathBuf::from("/etc/xdg")]);
    }

    #[test]
    fn variables_override_the_defaults() {
        let d = dirs(&[
            ("HOME", "/home/u"),
            ("XDG_DATA_HOME", "/d"),
            ("XDG_CONFIG_HOME", "/c"),
            ("XDG_STATE_HOME", "/s"),
            ("XDG_CACHE_HOME", "/k"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("XDG_DATA_DIRS", "/a:/b"),
            ("XDG_CONFIG_DIRS", "/e"),
        ]);
        assert_eq!(d.data_home(), p("/d"));
        assert_eq!(d.config_home(), p("/c"));
        assert_eq!(d.state_home(), p("/s"));
        assert_eq!(d.cache_home(), p("/k"));
        assert_eq!(d.runtime_dir(), p("/run/user/1000"));
        assert_eq!(
            d.data_search_path(),
            [PathBuf::from("/d"), "/a".into(), "/b".into()]
        );
        assert_eq!(d.config_search_path(), [PathBuf::from("/c"), "/e".into()]);
    }

    #[test]
    fn relative_or_empty_values_are_ignored() {
        let d = dirs(&[
            ("HOME", "/home/u"),
            ("XDG_DATA_HOME", "relative"),
            ("XDG_CONFIG_HOME", ""),
            ("XDG_RUNTIME_DIR", "run"),
            ("XDG_DATA_DIRS", "rel:/b::also/rel"),
            ("XDG_CONFIG_DIRS", ""),
        ]);
        assert_eq!(d.data_home(), p("/home/u/.local/share"));
        assert_eq!(d.config_home(), p("/home/u/.config"));
        assert_eq!(d.runtime_dir(), None);
        assert_eq!(d.data_dirs(), [PathBuf::from("/b")]);
        assert_eq!(d.config_dirs(), [PathBuf::from("/etc/xdg")]);
    }

    #[test]
    fn without_an_absolute_home_only_explicit_homes() {
        let d = dirs(&[("HOME", "home/u"), ("XDG_CACHE_HOME", "/k")]);
        assert_eq!(d.home(), None);
        assert_eq!(d.data_home(), None);
        assert_eq!(d.cache_home(), p("/k"));
        assert_eq!(
            d.data_search_path(),
            [PathBuf::from("/usr/local/share"), "/usr/share".into()]
        );
        assert_eq!(d.documents_dir(), None);
    }

    #[test]
    fn user_dirs_lines() {
        let home = Some(Path::new("/home/u"));
        let text = "# written by xdg-user-dirs-update\nXDG_DESKTOP_DIR=\"$HOME/Desktop\"\nXDG_DOCUMENTS_DIR=\"$HOME/My \\\"Docs\\\"\"\n  XDG_MUSIC_DIR = \"/srv/music\"  # trailing\nXDG_VIDEOS_DIR=\"$HOME\"\n";
        let get = |name| user_dir_from(text, name, home);
        assert_eq!(get("DESKTOP"), Some("/home/u/Desktop".into()));
        assert_eq!(get("DOCUMENTS"), Some("/home/u/My \"Docs\"".into()));
        assert_eq!(get("MUSIC"), Some("/srv/music".into()));
        assert_eq!(get("VIDEOS"), Some("/home/u".into()));
        assert_eq!(get("DOWNLOAD"), None);
    }

    #[test]
    fn user_dirs_values_that_do_not_count() {
        let home = Some(Path::new("/home/u"));
        for line in [
            "XDG_DOCUMENTS_DIR=relative/Docs",
            "XDG_DOCUMENTS_DIR=\"relative/Docs\"",
            "XDG_DOCUMENTS_DIR=\"$HOMEDocs\"",
            "XDG_DOCUMENTS_DIR=\"${HOME}/Docs\"",
            "XDG_DOCUMENTS_DIR=\"$USER/Docs\"",
            "XDG_DOCUMENTS_DIR=\"/unclosed",
            "XDG_DOCUMENTS_DIRX=\"/x\"",
            "# XDG_DOCUMENTS_DIR=\"/commented\"",
        ] {
            assert_eq!(user_dir_from(line, "DOCUMENTS", home), None, "{line}");
        }
        assert_eq!(
            user_dir_from("XDG_DOCUMENTS_DIR=\"$HOME/D\"", "DOCUMENTS", None),
            None
        );
        // The last valid line wins; invalid ones after it change nothing.
        let text = "XDG_DOCUMENTS_DIR=\"/first\"\nXDG_DOCUMENTS_DIR=\"/second\"\nXDG_DOCUMENTS_DIR=\"bad\"\n";
        assert_eq!(
            user_dir_from(text, "DOCUMENTS", home),
            Some("/second".into())
        );
    }

    #[test]
    fn documents_dir_reads_user_dirs_in_config_home_else_falls_back() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().to_str().unwrap();
        let config = tmp.path().join("cfg");
        std::fs::create_dir(&config).unwrap();
        let d = dirs(&[
            ("HOME", home),
            ("XDG_CONFIG_HOME", config.to_str().unwrap()),
        ]);
        assert_eq!(d.documents_dir(), Some(tmp.path().join("Documents")));
        std::fs::write(
            config.join("user-dirs.dirs"),
            "XDG_DOCUMENTS_DIR=\"$HOME/Dokumente\"\n",
        )
        .unwrap();
        assert_eq!(d.documents_dir(), Some(tmp.path().join("Dokumente")));
        assert_eq!(d.user_dir("DOWNLOAD"), None);
    }
}

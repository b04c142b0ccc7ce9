//! Finding the desktop's own portal backend for the Access dialog, as xdg-desktop-portal does:
//! the first `portals.conf` found (`<desktop>-portals.conf` before `portals.conf` in each
//! directory; user config, config dirs, `/etc`, user data, data dirs) and its `[preferred]`
//! group, else the `.portal` files' `UseIn` for `XDG_CURRENT_DESKTOP`. Every file is read as a
//! key file ([`crate::keyfile`]), as xdg-desktop-portal reads them with GKeyFile.

use std::path::{Path, PathBuf};

use crate::keyfile::KeyFile;
use crate::xdg::BaseDirs;

/// The interface the kernel needs from a backend.
pub const ACCESS: &str = "org.freedesktop.impl.portal.Access";

/// The preferences of a `portals.conf`: `None` when the file is not a key file or has no
/// `[preferred]` keys (xdg-desktop-portal then looks for the next file); else the backend names it
/// prefers for Access (its own key, else `default`; `None` inside: it says nothing about Access).
fn conf_preferences(text: &str) -> Option<Option<Vec<String>>> {
    let file = KeyFile::parse(text).ok()?;
    file.keys("preferred").next()?;
    let list = |key| file.string_list("preferred", key).ok();
    Some(list(ACCESS).or_else(|| list("default")))
}

/// The backend names a `portals.conf` prefers for the Access interface (`None`: it says nothing).
pub fn preferred_from_conf(text: &str) -> Option<Vec<String>> {
    conf_preferences(text).flatten()
}

/// A `.portal` file: its bus name, whether it implements Access, and the desktops it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalFile {
    pub name: String,
    pub bus_name: String,
    pub has_access: bool,
    pub use_in: Vec<String>,
}

/// Read a `.portal` file's `[portal]` group (keys in other groups do not count). `None` when it is
/// not a key file or names no `DBusName`/`Interfaces`, as xdg-desktop-portal skips such files.
pub fn parse_portal_file(name: &str, text: &str) -> Option<PortalFile> {
    const GROUP: &str = "portal";
    let file = KeyFile::parse(text).ok()?;
    let bus_name = file.string(GROUP, "DBusName").ok()?;
    let interfaces = file.string_list(GROUP, "Interfaces").ok()?;
    let use_in = file.string_list(GROUP, "UseIn").unwrap_or_default();
    Some(PortalFile {
        name: name.to_string(),
        bus_name,
        has_access: interfaces.iter().any(|i| i == ACCESS),
        use_in: use_in.iter().map(|d| d.to_ascii_lowercase()).collect(),
    })
}

/// Choose the backend bus name for Access among `portals`, given the desktops (lowercase, in
/// order) and what a `portals.conf` prefers.
pub fn choose(
    portals: &[PortalFile],
    desktops: &[String],
    preferred: Option<&[String]>,
) -> Option<String> {
    let with_access = |p: &&PortalFile| p.has_access;
    if let Some(preferred) = preferred {
        for want in preferred {
            if want == "none" {
                return None;
            }
            if let Some(p) = portals
                .iter()
                .filter(with_access)
                .find(|p| want == "*" || &p.name == want)
            {
                return Some(p.bus_name.clone());
            }
        }
        return None;
    }
    desktops.iter().find_map(|d| {
        portals
            .iter()
            .filter(with_access)
            .find(|p| p.use_in.contains(d))
            .map(|p| p.bus_name.clone())
    })
}

/// xdg-desktop-portal's own configuration directory (its build's `sysconfdir`).
const SYSCONFDIR: &str = "/etc";

/// The directories xdg-desktop-portal reads `portals.conf` from, in order.
fn conf_dirs(dirs: &BaseDirs, sysconfdir: &Path) -> Vec<PathBuf> {
    let mut out = dirs.config_search_path();
    out.push(sysconfdir.to_path_buf());
    out.extend(dirs.data_search_path());
    out.into_iter()
        .map(|d| d.join("xdg-desktop-portal"))
        .collect()
}

/// The Access preference of the first `portals.conf` found, per directory the desktop's own file
/// first (`None`: no file, or it says nothing about Access).
fn preferred_in(dirs: &[PathBuf], desktops: &[String]) -> Option<Vec<String>> {
    let names: Vec<String> = desktops
        .iter()
        .map(|d| format!("{d}-portals.conf"))
        .chain(std::iter::once("portals.conf".into()))
        .collect();
    dirs.iter()
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find_map(|path| conf_preferences(&std::fs::read_to_string(path).ok()?))
        .flatten()
}

/// The `.portal` files in `<data dir>/xdg-desktop-portal/portals`, a name found earlier shadowing
/// later ones, sorted by name within a directory.
fn portal_files(dirs: &BaseDirs) -> Vec<PortalFile> {
    let mut portals: Vec<PortalFile> = Vec::new();
    for dir in dirs.data_search_path() {
        let Ok(entries) = std::fs::read_dir(dir.join("xdg-desktop-portal/portals")) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|x| x == "portal"))
        {
            let name = portal_name(f);
            if portals.iter().any(|p| p.name == name) {
                continue;
            }
            if let Some(p) = std::fs::read_to_string(f)
                .ok()
                .and_then(|t| parse_portal_file(&name, &t))
            {
                portals.push(p);
            }
        }
    }
    portals
}

fn portal_name(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The desktops of `XDG_CURRENT_DESKTOP` (`:`-separated), lowercase, in order.
pub fn current_desktops(value: &str) -> Vec<String> {
    value
        .split(':')
        .filter(|d| !d.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The bus name of the Access backend for `desktops` with the files under `dirs`.
pub fn find_access_backend_in(dirs: &BaseDirs, desktops: &[String]) -> Option<String> {
    find_with_sysconfdir(dirs, Path::new(SYSCONFDIR), desktops)
}

fn find_with_sysconfdir(dirs: &BaseDirs, sysconfdir: &Path, desktops: &[String]) -> Option<String> {
    let preferred = preferred_in(&conf_dirs(dirs, sysconfdir), desktops);
    choose(&portal_files(dirs), desktops, preferred.as_deref())
}

/// The bus name of this session's desktop's Access backend, if it has one.
pub fn find_access_backend() -> Option<String> {
    let desktop = std::env::var("XDG_CURRENT_DESKTOP").unwrap_or_default();
    find_access_backend_in(&BaseDirs::from_process_env(), &current_desktops(&desktop))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GTK: &str = "[portal]\nDBusName=org.freedesktop.impl.portal.desktop.gtk\nInterfaces=org.freedesktop.impl.portal.FileChooser;org.freedesktop.impl.portal.Access;\nUseIn=gnome\n";
    const GNOME: &str = "[portal]\nDBusName=org.freedesktop.impl.portal.desktop.gnome\nInterfaces=org.freedesktop.impl.portal.Screenshot;\nUseIn=gnome\n";
    const KDE: &str = "[portal]\nDBusName=org.freedesktop.impl.portal.desktop.kde\nInterfaces=org.freedesktop.impl.portal.Access;\nUseIn=KDE\n";

    fn portals() -> Vec<PortalFile> {
        vec![
            parse_portal_file("gnome", GNOME).unwrap(),
            parse_portal_file("gtk", GTK).unwrap(),
            parse_portal_file("kde", KDE).unwrap(),
        ]
    }

    #[test]
    fn use_in_picks_a_backend_with_access() {
        // GNOME 43's own backend has no Access: the gtk one is used.
        assert_eq!(
            choose(&portals(), &["gnome".into()], None).as_deref(),
            Some("org.freedesktop.impl.portal.desktop.gtk")
        );
        assert_eq!(
            choose(&portals(), &["kde".into()], None).as_deref(),
            Some("org.freedesktop.impl.portal.desktop.kde")
        );
        assert_eq!(choose(&portals(), &["sway".into()], None), None);
    }

    #[test]
    fn portals_conf_preferences_win() {
        let conf = "[preferred]\ndefault=gnome;gtk;\norg.freedesktop.impl.portal.Access=kde;\n";
        let preferred = preferred_from_conf(conf).unwrap();
        assert_eq!(
            choose(&portals(), &["gnome".into()], Some(&preferred)).as_deref(),
            Some("org.freedesktop.impl.portal.desktop.kde")
        );
        let default_only = preferred_from_conf("[preferred]\ndefault=gnome;gtk;\n").unwrap();
        assert_eq!(
            choose(&portals(), &[], Some(&default_only)).as_deref(),
            Some("org.freedesktop.impl.portal.desktop.gtk")
        );
        let none =
            preferred_from_conf("[preferred]\norg.freedesktop.impl.portal.Access=none\n").unwrap();
        assert_eq!(choose(&portals(), &["gnome".into()], Some(&none)), None);
        assert_eq!(preferred_from_conf("[other]\ndefault=gtk\n"), None);
    }

    #[test]
    fn only_the_portal_group_counts() {
        let other_group = "[portal]\nDBusName=org.example.Good\nInterfaces=org.freedesktop.impl.portal.Screenshot;\nUseIn=gnome\n\n[extra]\nDBusName=org.example.Evil\nInterfaces=org.freedesktop.impl.portal.Access;\nUseIn=gnome;kde\n";
        let p = parse_portal_file("x", other_group).unwrap();
        assert_eq!(p.bus_name, "org.example.Good");
        assert!(!p.has_access);
        assert_eq!(p.use_in, ["gnome"]);
        let outside =
            "[other]\nDBusName=org.example.Evil\nInterfaces=org.freedesktop.impl.portal.Access;\n";
        assert_eq!(parse_portal_file("x", outside), None);
        assert_eq!(
            parse_portal_file("x", "DBusName=org.example.NoGroup\n"),
            None
        );
        assert_eq!(
            parse_portal_file("x", "[portal]\nDBusName=org.example.NoInterfaces\n"),
            None
        );
        // In portals.conf, only [preferred] counts.
        assert_eq!(
            preferred_from_conf("[other]\norg.freedesktop.impl.portal.Access=kde\n"),
            None
        );
    }

    #[test]
    fn use_in_is_case_insensitive_and_lists_are_read_as_glib_reads_them() {
        let p = parse_portal_file("k", "[portal]\nDBusName = org.x.K\nInterfaces=org.freedesktop.impl.portal.Access\nUseIn=KDE;GNOME;\n").unwrap();
        assert!(p.has_access);
        assert_eq!(p.use_in, ["kde", "gnome"]);
        assert_eq!(current_desktops("ubuntu:GNOME"), ["ubuntu", "gnome"]);
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn found_in_the_xdg_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let env = [
            ("HOME", root.join("home")),
            ("XDG_CONFIG_DIRS", root.join("etc-xdg")),
            ("XDG_DATA_DIRS", root.join("share")),
        ];
        let dirs = BaseDirs::from_env(|k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone().into_os_string())
        });
        let portals = root.join("share/xdg-desktop-portal/portals");
        write(&portals.join("gtk.portal"), GTK);
        write(&portals.join("kde.portal"), KDE);
        write(&portals.join("notes.txt"), "not a portal");
        let find = |desktops: &[String]| find_with_sysconfdir(&dirs, &root.join("etc"), desktops);
        let gnome = ["gnome".to_string()];
        let gtk = Some("org.freedesktop.impl.portal.desktop.gtk".to_string());
        let kde = Some("org.freedesktop.impl.portal.desktop.kde".to_string());
        assert_eq!(find(&gnome), gtk);

        // xdg-desktop-portal's own directory, a config dir before it, the user's config, the
        // user's desktop-specific config: each wins over the ones before.
        let access = |name: &str| format!("[preferred]\n{ACCESS}={name}\n");
        write(
            &root.join("etc/xdg-desktop-portal/portals.conf"),
            &access("gtk"),
        );
        assert_eq!(find(&["kde".into()]), gtk);
        write(
            &root.join("etc-xdg/xdg-desktop-portal/portals.conf"),
            &access("kde"),
        );
        assert_eq!(find(&gnome), kde);
        let user = root.join("home/.config/xdg-desktop-portal");
        write(&user.join("portals.conf"), &access("gtk"));
        assert_eq!(find(&gnome), gtk);
        write(&user.join("gnome-portals.conf"), &access("none"));
        assert_eq!(find(&gnome), None);
        assert_eq!(find(&["kde".into()]), gtk);
        // A file that is not a key file, or has no [preferred] keys, is passed over.
        write(&user.join("gnome-portals.conf"), "not a key file\n");
        assert_eq!(find(&gnome), gtk);
        write(&user.join("portals.conf"), "[preferred]\n");
        assert_eq!(find(&gnome), kde);
    }
}

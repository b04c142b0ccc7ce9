//! Finding the desktop's own portal backend for the Access dialog, as xdg-desktop-portal does:
//! `portals.conf` (`[preferred]`, per desktop first), else the `.portal` files' `UseIn`.

use std::path::{Path, PathBuf};

/// The interface the kernel needs from a backend.
pub const ACCESS: &str = "org.freedesktop.impl.portal.Access";

/// The backend names a `portals.conf` prefers for the Access interface (`None`: it says nothing).
pub fn preferred_from_conf(text: &str) -> Option<Vec<String>> {
    let mut in_preferred = false;
    let (mut specific, mut default) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_preferred = line == "[preferred]";
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !in_preferred {
            continue;
        }
        let names: Vec<String> = value
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        match key.trim() {
            k if k == ACCESS => specific = Some(names),
            "default" => default = Some(names),
            _ => {}
        }
    }
    specific.or(default)
}

/// A `.portal` file: its bus name, whether it implements Access, and the desktops it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalFile {
    pub name: String,
    pub bus_name: String,
    pub has_access: bool,
    pub use_in: Vec<String>,
}

pub fn parse_portal_file(name: &str, text: &str) -> Option<PortalFile> {
    let (mut bus_name, mut has_access, mut use_in) = (None, false, Vec::new());
    for line in text.lines().map(str::trim) {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let list = || value.split(';').map(str::trim).filter(|s| !s.is_empty());
        match key.trim() {
            "DBusName" => bus_name = Some(value.trim().to_string()),
            "Interfaces" => has_access = list().any(|i| i == ACCESS),
            "UseIn" => use_in = list().map(str::to_ascii_lowercase).collect(),
            _ => {}
        }
    }
    Some(PortalFile {
        name: name.to_string(),
        bus_name: bus_name?,
        has_access,
        use_in,
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

/// The config and data directories xdg-desktop-portal reads, in order.
fn search_dirs() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let env_path = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let home = env_path("HOME");
    let mut config = vec![];
    if let Some(c) =
        env_path("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")))
    {
        config.push(c.join("xdg-desktop-portal"));
    }
    let config_dirs = std::env::var("XDG_CONFIG_DIRS").unwrap_or_else(|_| "/etc/xdg".into());
    config.extend(
        config_dirs
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| Path::new(d).join("xdg-desktop-portal")),
    );
    config.push(PathBuf::from("/etc/xdg-desktop-portal"));
    let mut data = vec![];
    if let Some(d) = env_path("XDG_DATA_HOME").or_else(|| home.map(|h| h.join(".local/share"))) {
        data.push(d.join("xdg-desktop-portal"));
    }
    let data_dirs = std::env::var("XDG_DATA_DIRS")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/usr/local/share:/usr/share".into());
    data.extend(
        data_dirs
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| Path::new(d).join("xdg-desktop-portal")),
    );
    (config, data)
}

/// The bus name of the desktop's Access backend, if this desktop has one.
pub fn find_access_backend() -> Option<String> {
    let desktops: Vec<String> = std::env::var("XDG_CURRENT_DESKTOP")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let (config, data) = search_dirs();
    let conf_names: Vec<String> = desktops
        .iter()
        .map(|d| format!("{d}-portals.conf"))
        .chain(std::iter::once("portals.conf".into()))
        .collect();
    let preferred = conf_names.iter().find_map(|name| {
        config
            .iter()
            .chain(data.iter())
            .find_map(|dir| std::fs::read_to_string(dir.join(name)).ok())
            .and_then(|t| preferred_from_conf(&t))
    });
    let mut portals: Vec<PortalFile> = Vec::new();
    for dir in data.iter().map(|d| d.join("portals")) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files
            .into_iter()
            .filter(|f| f.extension().is_some_and(|x| x == "portal"))
        {
            let name = f
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if portals.iter().any(|p| p.name == name) {
                continue;
            }
            if let Some(p) = std::fs::read_to_string(&f)
                .ok()
                .and_then(|t| parse_portal_file(&name, &t))
            {
                portals.push(p);
            }
        }
    }
    choose(&portals, &desktops, preferred.as_deref())
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
}

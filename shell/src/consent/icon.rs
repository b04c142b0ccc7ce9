//! The requester's icon in the consent dialog: the icon its desktop file names (a Flatpak app,
//! or an agent installed with a desktop file under its id; a host app by the app id its scope
//! gives), else a generic one. The choice is pure; the lookup reads desktop files through GIO.

use gtk::gio;
use gtk::prelude::*;

/// Shown when the requester has no desktop file with an icon.
pub const GENERIC: &str = "application-x-executable-symbolic";

/// Longest desktop file id looked up.
const MAX_ID: usize = 255;

/// The desktop file ids that may describe `principal` (as the kernel names callers: an agent's
/// or a Flatpak app's id, `host:<app id>` for a host app, `host` when it has none).
pub fn desktop_ids(principal: &str) -> Vec<String> {
    let id = match principal.strip_prefix("host:") {
        Some(app) => app,
        None if principal == "host" => return Vec::new(),
        None => principal,
    };
    let plausible = !id.is_empty()
        && id.len() <= MAX_ID
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if plausible {
        vec![format!("{id}.desktop")]
    } else {
        Vec::new()
    }
}

/// The icon for `principal`: the first icon `lookup` finds for one of its desktop ids, else
/// [`GENERIC`].
pub fn choose(principal: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    desktop_ids(principal)
        .iter()
        .find_map(|id| lookup(id).filter(|icon| !icon.trim().is_empty()))
        .unwrap_or_else(|| GENERIC.to_string())
}

/// The icon (as `g_icon_to_string` writes it: a theme icon's name, or a file's path) of the
/// desktop file `id`, if it is installed and names one.
pub fn of_desktop_file(id: &str) -> Option<String> {
    // Every installed app, as GIO lists them (`DesktopAppInfo` is in `gio-unix`, which the
    // workspace does not use); found by its desktop id.
    let info = gio::AppInfo::all()
        .into_iter()
        .find(|a| a.id().is_some_and(|i| i == id))?;
    let icon = info.icon()?;
    if let Some(themed) = icon.downcast_ref::<gio::ThemedIcon>() {
        return themed.names().first().map(|n| n.to_string());
    }
    IconExt::to_string(&icon).map(|s| s.to_string())
}

/// The icon for `principal`, looked up in the installed desktop files.
pub fn for_principal(principal: &str) -> String {
    choose(principal, of_desktop_file)
}

/// The image of an icon chosen here: a theme icon by name, anything else through GIO.
pub fn image(icon: &str) -> gtk::Image {
    if icon.contains('/') || icon.contains(' ') {
        match gio::Icon::for_string(icon) {
            Ok(gicon) => gtk::Image::from_gicon(&gicon),
            Err(_) => gtk::Image::from_icon_name(GENERIC),
        }
    } else {
        gtk::Image::from_icon_name(icon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desktop_ids_from_principals() {
        assert_eq!(
            desktop_ids("org.example.Notes"),
            vec!["org.example.Notes.desktop"]
        );
        assert_eq!(desktop_ids("docs"), vec!["docs.desktop"]);
        assert_eq!(
            desktop_ids("host:org.gnome.Nautilus"),
            vec!["org.gnome.Nautilus.desktop"]
        );
        assert!(desktop_ids("host").is_empty());
        assert!(desktop_ids("host:").is_empty());
        assert!(desktop_ids("../../etc/x").is_empty());
        assert!(desktop_ids(".hidden").is_empty());
        assert!(desktop_ids("a b").is_empty());
        assert!(desktop_ids(&"a".repeat(300)).is_empty());
    }

    #[test]
    fn the_desktop_files_icon_else_a_generic_one() {
        let lookup = |id: &str| match id {
            "org.example.Notes.desktop" => Some("org.example.Notes".to_string()),
            "blank.desktop" => Some("  ".to_string()),
            _ => None,
        };
        assert_eq!(choose("org.example.Notes", lookup), "org.example.Notes");
        assert_eq!(
            choose("host:org.example.Notes", lookup),
            "org.example.Notes"
        );
        assert_eq!(choose("docs", lookup), GENERIC);
        assert_eq!(choose("blank", lookup), GENERIC);
        assert_eq!(choose("host", lookup), GENERIC);
        // Nothing installed under an unlikely id: the generic icon.
        assert_eq!(for_principal("org.agentos.NoSuchAgent.x9"), GENERIC);
    }
}

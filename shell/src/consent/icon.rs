//! The requester's icon in the consent dialog: the icon its desktop file names where its id is
//! vouched for (a Flatpak app's id, read by the kernel from the sandbox; a host app's, from its
//! systemd scope), else a generic one. An agent's id is whatever its manifest says, so an agent
//! named `org.mozilla.firefox` does not get Firefox's icon: agents get the generic one. The
//! choice is pure; the lookup reads desktop files through GIO.

use gtk::gio;
use gtk::prelude::*;

use super::request::Requester;

pub use super::request::GENERIC_ICON as GENERIC;

/// Longest desktop file id looked up.
const MAX_ID: usize = 255;

/// The desktop file ids that may describe `requester`: only an app's whose id is vouched for
/// (a Flatpak app, a host app); none for an agent, `host` or a requester not known.
pub fn desktop_ids(requester: &Requester) -> Vec<String> {
    let id = match requester {
        Requester::FlatpakApp(id) | Requester::HostApp(id) => id,
        Requester::Agent { .. } | Requester::Host | Requester::Unknown(_) => return Vec::new(),
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

/// The icon for `requester`: the first icon `lookup` finds for one of its desktop ids, else
/// [`GENERIC`].
pub fn choose(requester: &Requester, lookup: impl Fn(&str) -> Option<String>) -> String {
    desktop_ids(requester)
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

/// The icon for `requester`, looked up in the installed desktop files where its id is vouched
/// for.
pub fn for_requester(requester: &Requester) -> String {
    choose(requester, of_desktop_file)
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
    fn desktop_ids_only_where_the_id_is_vouched_for() {
        let app = |id: &str| Requester::FlatpakApp(id.into());
        assert_eq!(
            desktop_ids(&app("org.example.Notes")),
            vec!["org.example.Notes.desktop"]
        );
        assert_eq!(
            desktop_ids(&Requester::HostApp("org.gnome.Nautilus".into())),
            vec!["org.gnome.Nautilus.desktop"]
        );
        // An agent's id is its manifest's word: no desktop file is looked up for it.
        let agent = Requester::Agent {
            id: "org.mozilla.firefox".into(),
            name: "Firefox".into(),
            sandboxed: true,
        };
        assert!(desktop_ids(&agent).is_empty());
        assert!(desktop_ids(&Requester::Host).is_empty());
        assert!(desktop_ids(&Requester::Unknown("org.mozilla.firefox".into())).is_empty());
        assert!(desktop_ids(&Requester::HostApp(String::new())).is_empty());
        assert!(desktop_ids(&app("../../etc/x")).is_empty());
        assert!(desktop_ids(&app(".hidden")).is_empty());
        assert!(desktop_ids(&app("a b")).is_empty());
        assert!(desktop_ids(&app(&"a".repeat(300))).is_empty());
    }

    #[test]
    fn an_apps_desktop_file_icon_an_agents_generic_one() {
        let lookup = |id: &str| match id {
            "org.example.Notes.desktop" => Some("org.example.Notes".to_string()),
            "org.mozilla.firefox.desktop" => Some("org.mozilla.firefox".to_string()),
            "blank.desktop" => Some("  ".to_string()),
            _ => None,
        };
        assert_eq!(
            choose(&Requester::FlatpakApp("org.example.Notes".into()), lookup),
            "org.example.Notes"
        );
        assert_eq!(
            choose(&Requester::HostApp("org.example.Notes".into()), lookup),
            "org.example.Notes"
        );
        let spoof = Requester::Agent {
            id: "org.mozilla.firefox".into(),
            name: "Firefox".into(),
            sandboxed: false,
        };
        assert_eq!(choose(&spoof, lookup), GENERIC);
        assert_eq!(
            choose(&Requester::Unknown("org.mozilla.firefox".into()), lookup),
            GENERIC
        );
        assert_eq!(
            choose(&Requester::FlatpakApp("docs".into()), lookup),
            GENERIC
        );
        assert_eq!(
            choose(&Requester::FlatpakApp("blank".into()), lookup),
            GENERIC
        );
        assert_eq!(choose(&Requester::Host, lookup), GENERIC);
        // Nothing installed under an unlikely id: the generic icon.
        assert_eq!(
            for_requester(&Requester::FlatpakApp("org.agentos.NoSuchApp.x9".into())),
            GENERIC
        );
    }
}

//! The app id of a host process from its systemd unit, as desktops name them
//! (`app[-<launcher>]-<app id>-<random>.scope`, `app[-<launcher>]-<app id>[@<random>].service`),
//! read from `/proc/<pid>/cgroup` the way xdg-desktop-portal does.

use crate::flatpak_info::is_valid_app_id;

/// The app id in a process's cgroup listing, if it runs in an app unit.
pub fn app_id_from_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| {
            // "0::/path" (cgroup v2) or "1:name=systemd:/path" (hybrid).
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            (controllers.is_empty() || controllers == "name=systemd").then_some(path)
        })
        .find_map(|path| app_id_from_unit(path.rsplit('/').next()?))
}

/// The app id of one unit name.
pub fn app_id_from_unit(unit: &str) -> Option<String> {
    let rest = unit.strip_prefix("app-")?;
    let name = if let Some(scope) = rest.strip_suffix(".scope") {
        // The last dash-separated part is a random or numeric suffix.
        scope.rsplit_once('-')?.0
    } else if let Some(service) = rest.strip_suffix(".service") {
        service.split_once('@').map_or(service, |(n, _)| n)
    } else {
        return None;
    };
    // An optional launcher prefix ("gnome-", "kde-") has no dot in it; app ids do.
    let name = match name.split_once('-') {
        Some((launcher, id)) if !launcher.contains('.') => id,
        _ => name,
    };
    let id = unescape(name)?;
    is_valid_app_id(&id).then_some(id)
}

/// Undo systemd's `\xNN` escaping.
fn unescape(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let hex = s.get(i + 2..i + 4)?;
            if bytes.get(i + 1) != Some(&b'x') {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_units_name_their_app() {
        assert_eq!(
            app_id_from_unit("app-gnome-org.gnome.Terminal-1234.scope").as_deref(),
            Some("org.gnome.Terminal")
        );
        assert_eq!(
            app_id_from_unit("app-org.example.Foo-5d3f.scope").as_deref(),
            Some("org.example.Foo")
        );
        assert_eq!(
            app_id_from_unit("app-kde-org.kde.dolphin@12.service").as_deref(),
            Some("org.kde.dolphin")
        );
        assert_eq!(
            app_id_from_unit("app-gnome-org.example.My\\x2dApp-9.scope").as_deref(),
            Some("org.example.My-App")
        );
        assert_eq!(app_id_from_unit("vte-spawn-0a1b.scope"), None);
        assert_eq!(
            app_id_from_unit("app-gnome-firefox-12.scope"),
            None,
            "not an app id"
        );
        assert_eq!(app_id_from_unit("session-2.scope"), None);
    }

    #[test]
    fn cgroup_listings() {
        let v2 = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-org.gnome.Maps-77.scope\n";
        assert_eq!(app_id_from_cgroup(v2).as_deref(), Some("org.gnome.Maps"));
        let hybrid = "9:name=systemd:/app-org.example.Caller-42.scope\n4:memory:/x\n0::/\n";
        assert_eq!(
            app_id_from_cgroup(hybrid).as_deref(),
            Some("org.example.Caller")
        );
        assert_eq!(
            app_id_from_cgroup("4:memory:/app-org.example.Caller-42.scope\n0::/\n"),
            None
        );
        assert_eq!(app_id_from_cgroup("garbage"), None);
    }
}

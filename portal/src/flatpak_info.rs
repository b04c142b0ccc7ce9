//! Parsing of the `/.flatpak-info` keyfile that Flatpak (and our test sandboxes) put in a sandbox.

/// The fields of `/.flatpak-info` that identify an app instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatpakInfo {
    /// `[Application] name`, the app id.
    pub app_id: String,
    /// `[Instance] instance-id`, empty when absent.
    pub instance_id: String,
}

/// Parse the keyfile text. Returns `None` when it has no usable `[Application] name`.
pub fn parse(text: &str) -> Option<FlatpakInfo> {
    let mut section = "";
    let mut app_id = None;
    let mut instance_id = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match (section, key.trim()) {
            ("Application", "name") => app_id = Some(value.trim().to_string()),
            ("Instance", "instance-id") => instance_id = value.trim().to_string(),
            _ => {}
        }
    }
    let app_id = app_id?;
    is_valid_app_id(&app_id).then_some(FlatpakInfo {
        app_id,
        instance_id,
    })
}

/// A Flatpak app id: at least two dot-separated elements of `[A-Za-z0-9_-]`, not starting with a
/// digit, at most 255 bytes.
pub fn is_valid_app_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('.').collect();
    id.len() <= 255
        && parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.as_bytes()[0].is_ascii_digit()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_app_and_instance() {
        let info =
            parse("[Application]\nname=org.example.Agent\n\n[Instance]\ninstance-id=42\n").unwrap();
        assert_eq!(info.app_id, "org.example.Agent");
        assert_eq!(info.instance_id, "42");
    }

    #[test]
    fn rejects_missing_or_bad_names() {
        assert!(parse("[Instance]\ninstance-id=1\n").is_none());
        assert!(parse("[Application]\nname=host\n").is_none());
        assert!(parse("[Application]\nname=org.x/../y\n").is_none());
        assert!(parse("[Runtime]\nname=org.gnome.Platform\n").is_none());
    }
}

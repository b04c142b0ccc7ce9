//! Parsing of the `/.flatpak-info` keyfile that Flatpak (and our test sandboxes) put in a sandbox.

use crate::keyfile::KeyFile;

/// The fields of `/.flatpak-info` that identify an app instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatpakInfo {
    /// `[Application] name`, the app id.
    pub app_id: String,
    /// `[Instance] instance-id`, empty when absent.
    pub instance_id: String,
}

/// Parse the keyfile text as GKeyFile reads it (xdg-desktop-portal does). Returns `None` when it
/// is not a key file or has no usable `[Application] name`.
pub fn parse(text: &str) -> Option<FlatpakInfo> {
    let file = KeyFile::parse(text).ok()?;
    let app_id = file.string("Application", "name").ok()?;
    let instance_id = file.string("Instance", "instance-id").unwrap_or_default();
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
        // Not a key file at all: no identity, as GKeyFile would refuse it.
        assert!(parse("name=org.example.Agent\n[Application]\nname=org.example.Agent\n").is_none());
        assert!(parse("[Application]\nname=org.example.Agent\ngarbage\n").is_none());
        // The later key wins, as in GKeyFile.
        let info = parse("[Application]\nname=org.example.A\nname = org.example.B\n").unwrap();
        assert_eq!(info.app_id, "org.example.B");
    }
}

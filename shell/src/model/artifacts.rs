//! Artifacts as the Tasks page shows them: small text artifacts are read and shown inline (as
//! text made safe to show, Markdown formatted), images named as such are shown as pictures;
//! anything else is listed with its size and hash.

use agentos_dbus_interfaces::text::display_safe_block;
use agentos_dbus_interfaces::ArtifactInfo;

/// Largest artifact read for an inline preview.
pub const PREVIEW_BYTES: u64 = 64 * 1024;

/// Largest image shown.
pub const IMAGE_BYTES: u64 = 8 * 1024 * 1024;

/// What is shown of an artifact besides its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preview {
    None,
    /// Its text, made safe to show.
    Text(String),
    /// Its bytes, to be decoded as an image (by GTK's loaders, in the panel's process).
    Image(Vec<u8>),
}

/// What kind of preview to read for an artifact, by its size and its name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    None,
    Text,
    Image,
}

/// Image formats shown as pictures, by extension.
const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ppm"];

pub fn kind(a: &ArtifactInfo) -> Kind {
    let ext = a
        .name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        if a.size <= IMAGE_BYTES {
            Kind::Image
        } else {
            Kind::None
        }
    } else if a.size <= PREVIEW_BYTES {
        Kind::Text
    } else {
        Kind::None
    }
}

/// Whether an artifact is small enough to be read for a text preview.
pub fn worth_previewing(a: &ArtifactInfo) -> bool {
    a.size <= PREVIEW_BYTES
}

/// The text of an artifact's bytes, if they are text (UTF-8 without NUL bytes), made safe to
/// show.
pub fn text_preview(bytes: &[u8]) -> Option<String> {
    if bytes.contains(&0) {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    Some(display_safe_block(text, PREVIEW_BYTES as usize))
}

/// A file name for a copy of an artifact named `name` (the agent chose it): its last path
/// element, made safe to show, without leading dots; "artifact" when nothing is left.
pub fn file_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or_default();
    let safe = agentos_dbus_interfaces::text::display_safe(last, 200);
    let safe = safe.trim_start_matches('.').trim();
    if safe.is_empty() {
        "artifact".to_string()
    } else {
        safe.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_by_name_text_by_size() {
        let a = |name: &str, size| ArtifactInfo {
            name: name.into(),
            sha256: String::new(),
            size,
        };
        assert_eq!(kind(&a("chart.PNG", 100_000)), Kind::Image);
        assert_eq!(kind(&a("chart.svg", IMAGE_BYTES + 1)), Kind::None);
        assert_eq!(kind(&a("notes.md", 10)), Kind::Text);
        assert_eq!(kind(&a("dump.bin", PREVIEW_BYTES + 1)), Kind::None);
        assert_eq!(kind(&a("noext", 5)), Kind::Text);
    }

    #[test]
    fn copies_get_plain_file_names() {
        assert_eq!(file_name("report.txt"), "report.txt");
        assert_eq!(file_name("../../.bashrc"), "bashrc");
        assert_eq!(file_name("a/b/c\u{202e}gpj.exe"), "cgpj.exe");
        assert_eq!(file_name("/"), "artifact");
        assert_eq!(file_name("..."), "artifact");
    }

    #[test]
    fn only_small_text_is_previewed() {
        let a = |size| ArtifactInfo {
            name: "r.txt".into(),
            sha256: String::new(),
            size,
        };
        assert!(worth_previewing(&a(10)));
        assert!(!worth_previewing(&a(PREVIEW_BYTES + 1)));
        assert_eq!(text_preview(b"all good\n").as_deref(), Some("all good\n"));
        assert_eq!(
            text_preview("a\u{202e}b\r\x1b[2J".as_bytes()).as_deref(),
            Some("ab[2J")
        );
        assert_eq!(text_preview(b"\x89PNG\0\0"), None);
        assert_eq!(text_preview(&[0xff, 0xfe, 0x41]), None);
    }
}

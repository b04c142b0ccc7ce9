//! Artifacts as the panel shows them: which viewer for which content type (small text shown as
//! text made safe to show, Markdown formatted, PNG, JPEG, GIF and WebP pictures as pictures;
//! anything else, other pictures too, only opened with the default app or saved), and the plain
//! file name a copy of one gets.

use agentos_dbus_interfaces::text::display_safe_block;
use agentos_dbus_interfaces::ArtifactInfo;

/// Largest artifact read for an inline preview.
pub const PREVIEW_BYTES: u64 = 64 * 1024;

/// Largest image shown.
pub const IMAGE_BYTES: u64 = 8 * 1024 * 1024;

/// The content types of the pictures shown ([`super::image`] decodes them); SVG and the
/// other types GTK could read are opened or saved, not decoded in the panel.
pub const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// What is shown of an artifact besides its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preview {
    None,
    /// Its text, made safe to show.
    Text(String),
    /// Its picture, decoded off the main loop, or why it is not shown.
    Image(Result<super::image::Decoded, String>),
}

/// Which viewer shows an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Its text, made safe to show (when it is UTF-8 text).
    Text,
    /// Its text, formatted ([`crate::model::markdown`]).
    Markdown,
    /// A picture of one of [`IMAGE_TYPES`], decoded by [`super::image`].
    Image,
    /// Not shown: only opened with the default app or saved.
    Other,
}

/// Content types shown as text besides `text/*`.
const TEXT_TYPES: [&str; 8] = [
    "application/json",
    "application/xml",
    "application/x-yaml",
    "application/yaml",
    "application/toml",
    "application/x-shellscript",
    "application/javascript",
    "application/sql",
];

/// The viewer for an artifact named `name` of `size` bytes whose content type is `mime`
/// (`uncertain` when that is a guess from nothing: no known extension). Too large for its
/// viewer, it is [`Viewer::Other`]; an unknown small one is tried as text.
pub fn viewer(name: &str, mime: &str, uncertain: bool, size: u64) -> Viewer {
    let text_sized = size <= PREVIEW_BYTES;
    if mime.starts_with("image/") {
        return if IMAGE_TYPES.contains(&mime) && size <= IMAGE_BYTES {
            Viewer::Image
        } else {
            Viewer::Other
        };
    }
    if !text_sized {
        return Viewer::Other;
    }
    if matches!(mime, "text/markdown" | "text/x-markdown") || super::markdown::is_markdown(name) {
        Viewer::Markdown
    } else if mime.starts_with("text/")
        || TEXT_TYPES.contains(&mime)
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || uncertain
        || mime == "application/octet-stream"
    {
        Viewer::Text
    } else {
        Viewer::Other
    }
}

/// The content type of a file named `name`, as GIO guesses it from the name (shared-mime-info),
/// and whether that is a guess from nothing.
pub fn content_type(name: &str) -> (String, bool) {
    let (ty, uncertain) = gtk::gio::content_type_guess(Some(file_name(name)), None);
    let mime = gtk::gio::content_type_get_mime_type(&ty)
        .map(|m| m.to_string())
        .unwrap_or_else(|| ty.to_string());
    (mime, uncertain)
}

/// The viewer for an artifact, by its name and size.
pub fn viewer_of(a: &ArtifactInfo) -> Viewer {
    let (mime, uncertain) = content_type(&a.name);
    viewer(&a.name, &mime, uncertain, a.size)
}

/// An artifact as the Artifacts page lists it: with the task that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub task: u64,
    pub agent: String,
    pub goal: String,
    /// When the task finished (ms since the epoch).
    pub finished: u64,
    pub info: ArtifactInfo,
}

impl Listed {
    /// The row's name for its artifact: the name made safe to show, on one line.
    pub fn title(&self) -> String {
        super::format::line(&self.info.name, 120)
    }

    /// The row's second line: its size, the task, the agent and the task's goal.
    pub fn caption(&self) -> String {
        format!(
            "{} · task {} · {} · {}",
            super::format::size(self.info.size),
            self.task,
            super::format::line(&self.agent, 40),
            super::format::line(&self.goal, 80)
        )
    }

    /// Whether this is the artifact `name` of task `task`.
    pub fn is(&self, task: u64, name: &str) -> bool {
        self.task == task && self.info.name == name
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
    fn viewers_by_content_type_and_size() {
        use Viewer::{Image, Markdown, Other, Text};
        // (name, content type, type only guessed, size) → viewer
        let cases: &[(&str, &str, bool, u64, Viewer)] = &[
            ("chart.png", "image/png", false, 100_000, Image),
            ("photo.jpg", "image/jpeg", false, IMAGE_BYTES, Image),
            ("a.gif", "image/gif", false, 10, Image),
            ("a.webp", "image/webp", false, 10, Image),
            ("chart.png", "image/png", false, IMAGE_BYTES + 1, Other),
            // Other pictures are not decoded here, however small.
            ("chart.svg", "image/svg+xml", false, 100, Other),
            ("a.tiff", "image/tiff", false, 10, Other),
            ("a.ico", "image/vnd.microsoft.icon", false, 10, Other),
            ("notes.md", "text/markdown", false, 10, Markdown),
            ("notes.MD", "text/plain", false, 10, Markdown),
            ("r.txt", "text/plain", false, 10, Text),
            ("d.json", "application/json", false, 10, Text),
            ("a.atom", "application/atom+xml", false, 10, Text),
            ("r.txt", "text/plain", false, PREVIEW_BYTES + 1, Other),
            ("b.pdf", "application/pdf", false, 10, Other),
            (
                "s.ods",
                "application/vnd.oasis.opendocument.spreadsheet",
                false,
                10,
                Other,
            ),
            // No known extension: tried as text (shown only if it is text).
            ("noext", "application/octet-stream", true, 5, Text),
        ];
        for (name, mime, uncertain, size, want) in cases {
            assert_eq!(
                viewer(name, mime, *uncertain, *size),
                *want,
                "{name} ({mime}, {size} bytes)"
            );
        }
    }

    #[test]
    fn content_types_come_from_the_name() {
        // shared-mime-info is part of every desktop (and of GTK's dependencies).
        if !std::path::Path::new("/usr/share/mime/globs2").exists() {
            eprintln!("skipping: no shared-mime-info");
            return;
        }
        assert_eq!(content_type("chart.PNG").0, "image/png");
        assert_eq!(content_type("report.txt").0, "text/plain");
        assert_eq!(content_type("../x/notes.md").0, "text/markdown");
        let a = |name: &str, size| ArtifactInfo {
            name: name.into(),
            sha256: String::new(),
            size,
        };
        assert_eq!(viewer_of(&a("chart.png", 100)), Viewer::Image);
        assert_eq!(viewer_of(&a("photo.JPEG", 100)), Viewer::Image);
        assert_eq!(viewer_of(&a("chart.svg", 100)), Viewer::Other);
        assert_eq!(viewer_of(&a("report.txt", 8)), Viewer::Text);
        assert_eq!(viewer_of(&a("dump.bin", PREVIEW_BYTES + 1)), Viewer::Other);
    }

    #[test]
    fn listed_artifacts_name_their_task() {
        let l = Listed {
            task: 12,
            agent: "docs".into(),
            goal: "find\nthe budget".into(),
            finished: 0,
            info: ArtifactInfo {
                name: "budget\u{202e}.ods".into(),
                sha256: "ab".into(),
                size: 2048,
            },
        };
        assert_eq!(l.title(), "budget.ods");
        assert_eq!(l.caption(), "2.0 KiB · task 12 · docs · find the budget");
        assert!(l.is(12, "budget\u{202e}.ods") && !l.is(13, "budget\u{202e}.ods"));
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

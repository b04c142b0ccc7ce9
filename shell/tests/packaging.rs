//! The panel's packaging is tested code: its desktop file passes `desktop-file-validate`, its
//! AppStream metainfo passes `appstreamcli validate --no-net`, the icon and the D-Bus
//! activation file name the application id. The validators skip, saying why, where they are not
//! installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use agentos_panel::APP_ID;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/panel")
}

fn validate(tool: &str, args: &[&str], file: &str) {
    let path = dir().join(file);
    assert!(path.is_file(), "{} is missing", path.display());
    if !Path::new(&format!("/usr/bin/{tool}")).exists() {
        eprintln!("skipping {tool}: not installed (apt-get install desktop-file-utils appstream)");
        return;
    }
    let out = Command::new(tool).args(args).arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {}: {}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_desktop_file_is_valid() {
    validate("desktop-file-validate", &[], &format!("{APP_ID}.desktop"));
    let text = std::fs::read_to_string(dir().join(format!("{APP_ID}.desktop"))).unwrap();
    assert!(text.contains(&format!("Icon={APP_ID}\n")));
    assert!(text.contains("DBusActivatable=true\n"));
}

#[test]
fn the_metainfo_is_valid() {
    validate(
        "appstreamcli",
        &["validate", "--no-net"],
        &format!("{APP_ID}.metainfo.xml"),
    );
    let text = std::fs::read_to_string(dir().join(format!("{APP_ID}.metainfo.xml"))).unwrap();
    assert!(text.contains(&format!("<id>{APP_ID}</id>")));
    assert!(text.contains("<screenshot"));
}

/// Where the metainfo's screenshot URLs start; the file's path in the repository follows.
const SCREENSHOT_PREFIX: &str = "https://example.invalid/agentos/raw/main/";

/// Largest screenshot kept in the repository.
const SCREENSHOT_BYTES: u64 = 200 * 1024;

#[test]
fn the_metainfo_screenshots_are_kept_here() {
    let text = std::fs::read_to_string(dir().join(format!("{APP_ID}.metainfo.xml"))).unwrap();
    let images: Vec<&str> = text
        .split("<image>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</image>").map(|(url, _)| url.trim()))
        .collect();
    assert_eq!(images.len(), 3, "{images:?}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for url in images {
        let path = url
            .strip_prefix(SCREENSHOT_PREFIX)
            .unwrap_or_else(|| panic!("{url} does not start with {SCREENSHOT_PREFIX}"));
        assert!(
            path.starts_with("packaging/panel/screenshots/") && !path.contains(".."),
            "{url}"
        );
        let file = root.join(path);
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is no PNG",
            file.display()
        );
        assert!(
            (bytes.len() as u64) < SCREENSHOT_BYTES,
            "{} is {} bytes",
            file.display(),
            bytes.len()
        );
    }
}

#[test]
fn the_icon_and_the_activation_file_name_the_app() {
    let icon = std::fs::read_to_string(dir().join(format!("{APP_ID}.svg"))).unwrap();
    assert!(icon.starts_with("<svg"));
    let service = std::fs::read_to_string(dir().join(format!("{APP_ID}.service.in"))).unwrap();
    assert!(service.contains(&format!("Name={APP_ID}\n")));
    assert!(service.contains("Exec=@bindir@/agentos-panel --gapplication-service\n"));
}

//! The user's default app for text in a test's own dirs: a desktop file, indexed as an install
//! does, named the default for `text/plain` in `mimeapps.list`; its program writes down what
//! it was handed.

use std::path::Path;
use std::process::Command;

/// The user's default app for text, as a desktop would register one: a desktop file in
/// `$XDG_DATA_HOME/applications` named for `text/plain` in `$XDG_CONFIG_HOME/mimeapps.list`.
/// Its program writes what it was handed (mode and path) and the content into `<root>/opened`.
pub fn install_opener(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let out = root.join("opened");
    std::fs::create_dir_all(&out).unwrap();
    let script = root.join("opener.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nstat -c '%a %n' \"$1\" > {out}/handed.tmp\n\
             cp \"$1\" {out}/content.tmp\n\
             mv {out}/handed.tmp {out}/handed\nmv {out}/content.tmp {out}/content\n",
            out = out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let apps = root.join("xdg-data/applications");
    std::fs::create_dir_all(&apps).unwrap();
    std::fs::write(
        apps.join("agentos-test-opener.desktop"),
        format!(
            "[Desktop Entry]\nType=Application\nName=Test Opener\nExec={} %f\n\
             MimeType=text/plain;\n",
            script.display()
        ),
    )
    .unwrap();
    // Indexed as an install does it (mimeinfo.cache: what lists an app for a type).
    let indexed = Command::new("update-desktop-database").arg(&apps).status();
    assert!(
        indexed.is_ok_and(|s| s.success()),
        "update-desktop-database"
    );
    std::fs::write(
        root.join("config/mimeapps.list"),
        "[Default Applications]\ntext/plain=agentos-test-opener.desktop\n",
    )
    .unwrap();
}

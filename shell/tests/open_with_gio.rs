//! Opening a file where no OpenURI portal answers: the panel falls back to GIO's default
//! handler, and the user's default app for text (a real desktop file and program, registered in
//! the test's own `mimeapps.list`) is started with the file. On a private bus that has no
//! service files at all, so no portal can be activated. A program (`setup.exe`, with Wine's
//! type named the default for it) is not handed to any app.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentos_panel::open_with::{self, Opened};
use agentos_tests::bounded_for;

mod opener;

/// A bus with no activatable services (a session bus config without service dirs).
const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_portal_gio_starts_the_default_app() {
    if Command::new("update-desktop-database")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!(
            "skipping: update-desktop-database not installed (apt-get install desktop-file-utils)"
        );
        return;
    }
    let tmp = std::env::temp_dir().join(format!("agentos-open-with-{}", std::process::id()));
    for d in ["xdg-data", "config", "run"] {
        std::fs::create_dir_all(tmp.join(d)).unwrap();
    }
    // GIO reads these once, at its first use: this test is the only one in its binary.
    std::env::set_var("XDG_DATA_HOME", tmp.join("xdg-data"));
    std::env::set_var("XDG_CONFIG_HOME", tmp.join("config"));
    // No system apps, but the system's content types (shared-mime-info), where installed.
    let share = tmp.join("share");
    std::fs::create_dir_all(&share).unwrap();
    let mime_db = std::path::Path::new("/usr/share/mime");
    let with_types = mime_db.join("globs2").exists();
    if with_types {
        std::os::unix::fs::symlink(mime_db, share.join("mime")).unwrap();
    }
    std::env::set_var("XDG_DATA_DIRS", &share);
    opener::install_opener(&tmp);
    // The same app named the default for Windows programs, as Wine names itself.
    let mut list = std::fs::read_to_string(tmp.join("config/mimeapps.list")).unwrap();
    list.push_str("application/x-ms-dos-executable=agentos-test-opener.desktop\n");
    std::fs::write(tmp.join("config/mimeapps.list"), list).unwrap();
    std::fs::write(tmp.join("bus.conf"), BUS_CONFIG).unwrap();
    let mut bus = Stopped(
        Command::new("dbus-daemon")
            .arg(format!("--config-file={}", tmp.join("bus.conf").display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon"),
    );
    let result = bounded_for(Duration::from_secs(60), async {
        let mut line = String::new();
        BufReader::new(bus.0.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the bus address");
        let conn = zbus::connection::Builder::address(line.trim())
            .expect("address")
            .build()
            .await
            .expect("connect");
        if with_types {
            let exe = tmp.join("run/setup.exe");
            std::fs::write(&exe, b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff").unwrap();
            let opened = open_with::open(&conn, &exe).await;
            assert!(
                matches!(opened, Err(open_with::OpenError::MayRun(ref t)) if t == "application/x-ms-dos-executable"),
                "{opened:?}"
            );
            let said = open_with::said("setup.exe", &opened);
            assert!(said.contains("save a copy instead"), "{said}");
        } else {
            eprintln!("no shared-mime-info: the refusal of programs is not tried");
        }
        let file = tmp.join("run/report.txt");
        std::fs::write(&file, "all good").unwrap();
        let opened = open_with::open(&conn, &file).await;
        assert_eq!(
            opened.as_ref().ok(),
            Some(&Opened::App("Test Opener".to_string())),
            "{opened:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let content = std::fs::read_to_string(tmp.join("opened/content")).ok();
            if content.as_deref() == Some("all good") {
                break;
            }
            assert!(Instant::now() < deadline, "the default app was not started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let handed = std::fs::read_to_string(tmp.join("opened/handed")).unwrap();
        assert!(handed.trim().ends_with("/run/report.txt"), "{handed}");
    })
    .await;
    drop(bus);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// A child process stopped when the test ends, passed or failed.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

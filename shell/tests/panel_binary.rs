//! The `agentos-panel` program itself, started as a user would start it, under Xvfb against a
//! private kernel: it registers its application id, becomes the consent provider, opens its
//! window, and a consent request is answered in its dialog with the keyboard (Alt+O, allow
//! once) and applied by the kernel. Skips, saying why, where Xvfb or xdotool are missing.

use std::process::Command;
use std::time::{Duration, Instant};

use agentos_dbus_interfaces::TaskState;
use agentos_panel::consent::dialog::DIALOG_TITLE;
use agentos_tests::{bounded_for, Env, Services};

fn xdotool(display: &str, args: &[&str]) -> Option<String> {
    let out = Command::new("xdotool")
        .args(args)
        .env("DISPLAY", display)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The first visible window named `name` (a regular expression), waiting for it.
async fn window(display: &str, name: &str) -> String {
    let deadline = Instant::now() + agentos_tests::TIMEOUT;
    loop {
        if let Some(found) = xdotool(display, &["search", "--onlyvisible", "--name", name]) {
            return found.lines().next().unwrap_or_default().to_string();
        }
        assert!(Instant::now() < deadline, "no window named {name}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_program_answers_consent() {
    if agentos_tests::display::missing(&["/usr/bin/Xvfb", "/usr/bin/xdotool"], "xvfb xdotool") {
        return;
    }
    bounded_for(Duration::from_secs(90), async {
        let env = Env::start_with(Services {
            desktop_portal: true,
            ..Services::default()
        })
        .await;
        let display = env.display.clone().expect("a display");
        let docs = env.home().join("Documents");
        std::fs::write(docs.join("notes.txt"), "the notes").unwrap();

        let mut panel = env.service(
            Command::new(env!("CARGO_BIN_EXE_agentos-panel"))
                .arg("--address")
                .arg(&env.address)
                .envs(agentos_tests::display::gtk_env(&display))
                // GSettings schemas and icons, as a desktop session has them.
                .env("XDG_DATA_DIRS", "/usr/share"),
        );
        env.wait_for_name(agentos_panel::APP_ID).await;
        env.wait_for_name("org.agentos.Consent").await;
        window(&display, "^AgentOS$").await;

        let task = env
            .delegate(
                "tester",
                &format!("read {} notes.txt", docs.to_str().unwrap()),
            )
            .await;
        let dialog = window(&display, DIALOG_TITLE).await;
        xdotool(&display, &["windowfocus", "--sync", &dialog]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        xdotool(&display, &["key", "--window", &dialog, "alt+o"]);
        let info = env.wait_state(task, TaskState::is_terminal).await;
        assert_eq!(
            (info.state.as_str(), info.result.as_str()),
            ("completed", "the notes"),
            "{info:?}"
        );
        // Once: no lasting grant was made.
        let grants = env.kernel().await.list_grants().await.unwrap();
        assert!(
            !grants.iter().any(|g| g.capability == "files.read"),
            "{grants:?}"
        );

        // It ends on SIGTERM like any app.
        let _ = Command::new("kill").arg(panel.id().to_string()).status();
        let deadline = Instant::now() + agentos_tests::TIMEOUT;
        while panel.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the panel did not exit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

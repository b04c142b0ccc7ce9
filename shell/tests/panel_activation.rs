//! A notification's button reaches a panel started by the click, as GNOME Shell (and
//! xdg-desktop-portal-gtk's notifications) deliver it: `org.freedesktop.Application.ActivateAction`
//! on `org.agentos.Panel`, with no panel running, starts the program by D-Bus activation (the
//! packaged `org.agentos.Panel.service`, installed in the test bus's service dir) with
//! `--gapplication-service`; its `app.consent` action answers the request the kernel kept
//! pending when the panel that showed it was killed, and the kernel applies the answer (an
//! answer no notification offers, "always", as Deny). With
//! nothing left to answer, the activated panel ends by itself. Skips, saying why, where Xvfb or
//! xdotool are missing.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use agentos_dbus_interfaces::TaskState;
use agentos_panel::consent::dialog::DIALOG_TITLE;
use agentos_panel::consent::request::HANDLE_PREFIX;
use agentos_panel::APP_ID;
use agentos_tests::{bounded_for, Env, Services};
use zbus::zvariant::Value;

/// The panel's object and the interface GApplication serves on it.
const APP_PATH: &str = "/org/agentos/Panel";
const APPLICATION: &str = "org.freedesktop.Application";

/// What a desktop session gives the programs its bus starts (GNOME sets these with
/// `UpdateActivationEnvironment`): the display, and the system's data dirs for GSettings
/// schemas and icons.
fn session_env(display: &str) -> HashMap<&'static str, String> {
    let mut env: HashMap<_, _> = agentos_tests::display::gtk_env(display)
        .into_iter()
        .collect();
    env.insert("XDG_DATA_DIRS", "/usr/share".to_string());
    env
}

async fn has_owner(env: &Env, name: &str) -> bool {
    let dbus = zbus::fdo::DBusProxy::new(&env.conn).await.expect("dbus");
    let name = zbus::names::BusName::try_from(name).expect("name");
    dbus.name_has_owner(name).await.unwrap_or(false)
}

async fn until_gone(env: &Env, name: &str) {
    let deadline = Instant::now() + agentos_tests::TIMEOUT;
    while has_owner(env, name).await {
        assert!(Instant::now() < deadline, "{name} is still owned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn dialog_shown(display: &str) -> bool {
    Command::new("xdotool")
        .args(["search", "--onlyvisible", "--name", DIALOG_TITLE])
        .env("DISPLAY", display)
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_answer_starts_the_panel_and_reaches_the_kernel() {
    if agentos_tests::display::missing(&["/usr/bin/Xvfb", "/usr/bin/xdotool"], "xvfb xdotool") {
        return;
    }
    bounded_for(Duration::from_secs(150), async {
        let mut env = Env::start_with(Services {
            desktop_portal: true,
            ..Services::default()
        })
        .await;
        // The user has a minute to answer: time for a panel to be killed and another started.
        env.consent_timeout = 60;
        env.restart_kernel().await;
        let display = env.display.clone().expect("a display");

        // The panel's D-Bus activation file as packaged, installed where the session bus
        // looks ($XDG_DATA_HOME/dbus-1/services), @bindir@ replaced.
        let bin = Path::new(env!("CARGO_BIN_EXE_agentos-panel"));
        let template = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../packaging/panel")
            .join(format!("{APP_ID}.service.in"));
        let service = std::fs::read_to_string(template)
            .expect("the activation file")
            .replace("@bindir@", bin.parent().unwrap().to_str().unwrap());
        let dir = env.root().join("xdg-data/dbus-1/services");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{APP_ID}.service")), service).unwrap();
        let dbus = zbus::fdo::DBusProxy::new(&env.conn).await.expect("dbus");
        dbus.reload_config().await.expect("ReloadConfig");
        let session = session_env(&display);
        let session_ref: HashMap<&str, &str> =
            session.iter().map(|(k, v)| (*k, v.as_str())).collect();
        dbus.update_activation_environment(session_ref)
            .await
            .expect("UpdateActivationEnvironment");

        // A panel shows a request's dialog, and is killed with the dialog open.
        let docs = env.home().join("Documents");
        std::fs::write(docs.join("notes.txt"), "the notes").unwrap();
        let mut first = Command::new(bin);
        for (k, v) in &session {
            first.env(k, v);
        }
        let mut first = env.service(&mut first);
        env.wait_for_name("org.agentos.Consent").await;
        let task = env
            .delegate(
                "tester",
                &format!("read {} notes.txt", docs.to_str().unwrap()),
            )
            .await;
        let deadline = Instant::now() + agentos_tests::TIMEOUT;
        while !dialog_shown(&display) {
            assert!(Instant::now() < deadline, "no dialog was shown");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = first.kill();
        let _ = first.wait();
        until_gone(&env, APP_ID).await;
        until_gone(&env, "org.agentos.Consent").await;
        // The request stays pending for the panel's return.
        let pending = env
            .kernel()
            .await
            .list_consent_requests()
            .await
            .expect("ListConsentRequests");
        let request = pending
            .iter()
            .find(|r| r.task == task)
            .unwrap_or_else(|| panic!("the request is not pending: {pending:?}"));
        let handle = format!("{HANDLE_PREFIX}{}", request.id);

        // An activation as the desktop delivers a button's click: the panel is started for it.
        // It names "always", which no notification offers: any program on the bus can activate
        // the action, so it is taken as Deny, never as a lasting grant.
        let target = Value::new((handle.as_str(), "always"));
        env.conn
            .call_method(
                Some(APP_ID),
                APP_PATH,
                Some(APPLICATION),
                "ActivateAction",
                &("consent", vec![target], HashMap::<&str, Value>::new()),
            )
            .await
            .expect("ActivateAction");
        let info = env.wait_state(task, TaskState::is_terminal).await;
        assert_eq!(
            (info.state.as_str(), info.message.as_str()),
            (
                "failed",
                "org.agentos.Error.AccessDenied: the user denied it"
            ),
            "{info:?}"
        );
        assert!(
            !dialog_shown(&display),
            "the started panel showed a dialog for an answered request"
        );
        // Nothing left to answer and no window shown: the started panel ends.
        until_gone(&env, APP_ID).await;
    })
    .await;
}

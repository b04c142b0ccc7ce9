//! The panel under Xvfb against a private kernel (the harness in `tests/src`: a private
//! `dbus-daemon`, the real `agentosd` and its test agents). The panel's components run in this
//! process on its main thread, so the test reads the real widget tree: each page shows the
//! kernel's data, a consent request is answered in the dialog with the keyboard (real X key
//! events from `xdotool`) and the kernel applies the answer, a revoke from the Permissions page
//! takes the grant away, and the panel says when the kernel is gone and reconnects when it comes
//! back. Screenshots of each page go to `target/test-artifacts/`.
//!
//! Needs the workspace's binaries (`cargo build --workspace`), Xvfb, xdotool and imagemagick;
//! says why and skips where the tools are missing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use adw::prelude::*;
use agentos_panel::app::{App, Init};
use agentos_panel::model::artifacts::{Preview, Viewer};
use agentos_panel::model::image;
use agentos_panel::pages::artifact_view;
use agentos_tests::{Env, Services};
use relm4::prelude::*;

mod opener;
mod support;
use opener::install_opener;
use support::*;

/// The icon a desktop file named after the tester agent names (which an agent does not get).
const TESTER_ICON: &str = "accessories-text-editor";

/// The real notification server the test runs (Debian's notification-daemon).
const NOTIFICATION_DAEMON: &str = "/usr/lib/notification-daemon/notification-daemon";

fn main() {
    if agentos_tests::display::missing(
        &["/usr/bin/Xvfb", "/usr/bin/xdotool", "/usr/bin/import"],
        "xvfb xdotool imagemagick",
    ) {
        return;
    }
    // A hang anywhere fails the test instead of blocking the suite.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(240));
        eprintln!("panel_xvfb did not finish within 240 s");
        std::process::exit(1);
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // The desktop's own Access dialog (xdg-desktop-portal-gtk) on the test's display: the
    // kernel asks it while the panel is not running.
    let mut env = rt.block_on(Env::start_with(Services {
        desktop_portal: true,
        ..Services::default()
    }));
    // The simulated user (keys, clicks, a panel starting) answers well within the kernel's limit
    // for a consent answer, even on a loaded machine.
    rt.block_on(async {
        env.stop_kernel("TERM").await;
        env.consent_timeout = 30;
        env.start_kernel().await;
    });
    let display = env.display.clone().expect("the test's display");
    // This process is the panel: its display and its bus are the test's.
    for (key, value) in agentos_tests::display::gtk_env(&display) {
        std::env::set_var(key, value);
    }
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &env.address);
    // The user's home and dirs are the test's (where a copy of an artifact is saved, where
    // GIO finds the default app for text, where private copies for it are made).
    std::env::set_var("HOME", env.home());
    std::env::set_var("XDG_DATA_HOME", env.root().join("xdg-data"));
    std::env::set_var("XDG_CONFIG_HOME", env.root().join("config"));
    std::env::set_var("XDG_RUNTIME_DIR", env.root().join("run"));
    install_opener(env.root());
    // A desktop file under the tester agent's id, naming an icon: an agent's id is its
    // manifest's word, so the dialog does not take that icon for it.
    std::fs::write(
        env.root().join("xdg-data/applications/tester.desktop"),
        format!(
            "[Desktop Entry]\nType=Application\nName=Test tester\nExec=true\nIcon={TESTER_ICON}\n\
             NoDisplay=true\n"
        ),
    )
    .unwrap();
    gtk::init().expect("GTK on Xvfb");
    adw::init().expect("libadwaita");

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        gtk::glib::MainContext::default().block_on(run(&rt, &mut env, &display));
    }));
    drop(env);
    match result {
        Ok(()) => eprintln!("panel_xvfb: ok"),
        Err(_) => std::process::exit(1),
    }
}

async fn run(rt: &tokio::runtime::Runtime, env: &mut Env, display: &str) {
    let docs = env.home().join("Documents");
    std::fs::write(docs.join("notes.txt"), "the notes").unwrap();
    let docs_s = docs.to_str().unwrap().to_string();

    // History before the panel starts: a finished task with a child and an artifact, and grants.
    let k = rt.block_on(env.kernel());
    rt.block_on(k.grant("tester", "agent.delegate", "helper", "session"))
        .expect("grant");
    let parent = rt.block_on(env.delegate(
        "tester",
        "artifact report.txt all good ; artifact notes.md # Findings **all** good ; \
         artifact chart.svg <svg xmlns='http://www.w3.org/2000/svg' width='40' height='20'>\
         <rect width='40' height='20' fill='red'/></svg> ; \
         delegate helper echo child done ; echo parent done",
    ));
    let done = rt.block_on(env.wait_task(parent));
    assert_eq!(done.state, "completed", "{done:?}");
    rt.block_on(k.grant("web", "web.fetch", "example.org", "always"))
        .expect("grant");

    // A request asked while no panel runs (the desktop's dialog shows it) is listed by the
    // panel once it starts.
    let work = env.home().join("Work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("plan.txt"), "the plan").unwrap();
    let work_s = work.to_str().unwrap().to_string();
    let asked_early = rt.block_on(env.delegate("tester", &format!("read {work_s} plan.txt")));
    let deadline = Instant::now() + WAIT;
    while rt.block_on(k.list_consent_requests()).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the kernel did not ask");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The panel's application, registered on the test's bus (notifications need it), and a
    // real notification server, watched with dbus-monitor.
    let app = relm4::main_application();
    app.set_application_id(Some(agentos_panel::APP_ID));
    app.register(None::<&gtk::gio::Cancellable>)
        .expect("register the application");
    let notifications = Path::new(NOTIFICATION_DAEMON).exists();
    if !notifications {
        eprintln!("skipping the notifications: {NOTIFICATION_DAEMON} is not installed (apt-get install notification-daemon)");
    }

    let panel = App::builder()
        .launch(Init {
            address: Some(env.address.clone()),
        })
        .detach();
    let window: gtk::Window = panel.widget().clone().upcast();
    window.present();

    // Connected: the main view replaces "Connecting…".
    until("the panel connects", &window, |w| {
        find_named(w, "sidebar").is_some_and(|s| s.is_mapped())
    })
    .await;

    show_page(&window, "permissions");
    until(
        "the request asked before the panel is listed",
        &window,
        |w| {
            let t = texts(w);
            has(&t, "Waiting for your answer") && has(&t, &format!("files.read on {work_s}"))
        },
    )
    .await;
    shot(display, "panel-pending").await;
    // The desktop's dialog is left unanswered: the kernel's time limit denies it.
    let info = wait_finished(rt, env, asked_early).await;
    assert_eq!(info.state, "failed", "{info:?}");
    until("the request leaves the list", &window, |w| {
        !has(&texts(w), "Waiting for your answer")
    })
    .await;

    // Tasks: the tree, with the child below its parent, and the details of the parent.
    show_page(&window, "tasks");
    let parent_goal = "artifact report.txt all good";
    until("the Tasks page lists the tasks", &window, |w| {
        let t = texts(w);
        has(&t, parent_goal) && has(&t, "helper") && has(&t, "child done")
    })
    .await;
    let list = find_named(window.upcast_ref(), "tasks-list").expect("tasks list");
    let rows = named_prefix(&list, "task-");
    let parent_row = rows
        .iter()
        .position(|n| n == &format!("task-{parent}"))
        .expect("parent row");
    let child = rt.block_on(env.wait_child(parent)).id;
    let child_row = rows.iter().position(|n| n == &format!("task-{child}"));
    assert_eq!(child_row, Some(parent_row + 1), "rows: {rows:?}");
    let selection = list
        .downcast_ref::<gtk::ListView>()
        .and_then(|l| l.model())
        .and_then(|m| m.downcast::<gtk::SingleSelection>().ok())
        .expect("selection model");
    selection.set_selected(parent_row as u32);
    until("the task's result and artifact show", &window, |w| {
        let t = texts(w);
        // The artifact's text, read from the kernel and shown inline.
        has(&t, "parent done") && has(&t, "report.txt") && t.iter().any(|l| l == "all good")
    })
    .await;
    // The SVG artifact is listed, not decoded: only PNG, JPEG, GIF and WebP are shown.
    until("the SVG artifact is listed", &window, |w| {
        texts(w).iter().any(|t| t.starts_with("chart.svg ("))
    })
    .await;
    assert!(
        !all_of::<gtk::Picture>(window.upcast_ref())
            .iter()
            .any(|p| p.widget_name() == "artifact-image"),
        "an SVG is not shown as a picture"
    );
    // The Markdown artifact is shown as Markdown: a heading, its markers gone.
    until("the Markdown artifact is shown formatted", &window, |w| {
        all_of::<gtk::Label>(w)
            .iter()
            .any(|l| l.is_mapped() && l.uses_markup() && l.text() == "Findings all good")
    })
    .await;
    shot(display, "panel-tasks").await;

    // Save a copy of the artifact: the file chooser opens in the home folder with its name;
    // Return saves it there.
    button(window.upcast_ref(), "Save a Copy…")
        .expect("a save button")
        .emit_clicked();
    let chooser = until_found("the file chooser opens", || {
        gtk::Window::list_toplevels()
            .into_iter()
            .filter_map(|w| w.downcast::<gtk::Window>().ok())
            .find(|w| w.is_visible() && w.title().as_deref() == Some("Save a Copy"))
    })
    .await;
    settle(500).await;
    press_on(display, "Save a Copy", "Return").await;
    let copy = env.home().join("report.txt");
    until_found("the copy is saved", || {
        std::fs::read_to_string(&copy)
            .ok()
            .filter(|t| t == "all good")
    })
    .await;
    until("the page says it saved the copy", &window, |w| {
        has(&texts(w), "Saved a copy of report.txt (8 B)")
    })
    .await;
    assert!(!chooser.is_visible());

    // Artifacts: every artifact of the user's tasks; the text one in the text viewer, opened
    // with the default app for text (the test's opener, found by GIO through mimeapps.list).
    show_page(&window, "artifacts");
    let row_name = |name: &str| format!("artifact-{parent}:{name}");
    until(
        "the Artifacts page lists the task's artifacts",
        &window,
        |w| {
            let rows = named_prefix(w, "artifact-");
            ["report.txt", "notes.md", "chart.svg"]
                .iter()
                .all(|n| rows.contains(&row_name(n)))
        },
    )
    .await;
    let select = |name: &str| {
        let list = find_named(window.upcast_ref(), "artifacts-list")
            .and_downcast::<gtk::ListBox>()
            .expect("the artifacts list");
        let row = find_named(list.upcast_ref(), &row_name(name))
            .and_downcast::<gtk::ListBoxRow>()
            .expect("the artifact's row");
        list.select_row(Some(&row));
    };
    let viewer = || find_named(window.upcast_ref(), "artifacts-viewer").expect("the viewer");
    select("notes.md");
    until("the Markdown viewer shows it formatted", &window, |_| {
        all_of::<gtk::Label>(&viewer())
            .iter()
            .any(|l| l.is_mapped() && l.uses_markup() && l.text() == "Findings all good")
    })
    .await;
    select("chart.svg");
    until(
        "an SVG is offered to open or save, not shown",
        &window,
        |_| {
            has(
                &texts(&viewer()),
                "Not shown here: open it with the default app, or save a copy.",
            )
        },
    )
    .await;
    assert!(all_of::<gtk::Picture>(&viewer()).is_empty());
    // A PNG is shown as a picture: decoded (off the main loop in the panel), then shown from
    // its pixels.
    let png = {
        let p = gtk::gdk_pixbuf::Pixbuf::new(gtk::gdk_pixbuf::Colorspace::Rgb, true, 8, 40, 20)
            .expect("a pixbuf");
        p.fill(0xff0000ff);
        p.save_to_bufferv("png", &[]).expect("a PNG")
    };
    let shown = artifact_view::viewer(
        Viewer::Image,
        &Preview::Image(image::decode("image/png", &png)),
    )
    .and_downcast::<gtk::Picture>()
    .expect("a picture");
    assert_eq!(shown.widget_name(), "artifact-image");
    assert!(shown
        .paintable()
        .is_some_and(|t| t.intrinsic_width() == 40 && t.intrinsic_height() == 20));
    select("report.txt");
    until(
        "the text viewer shows the artifact's content",
        &window,
        |_| texts(&viewer()).iter().any(|t| t == "all good"),
    )
    .await;
    shot(display, "panel-artifacts").await;
    button(window.upcast_ref(), "_Open with Default App")
        .expect("an open button")
        .emit_clicked();
    // The desktop's OpenURI portal (xdg-desktop-portal, activated on the test's bus, with
    // xdg-desktop-portal-gtk) takes it, and starts the default app for text (should it ask
    // which app to use, Return takes its choice).
    let opened = env.root().join("opened");
    let deadline = Instant::now() + WAIT;
    let mut asked = false;
    loop {
        let content = std::fs::read_to_string(opened.join("content")).ok();
        if content.as_deref() == Some("all good") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the default app for text did not open the artifact"
        );
        if !asked {
            let chooser = Command::new("xdotool")
                .args([
                    "search",
                    "--onlyvisible",
                    "--class",
                    "xdg-desktop-portal-gtk",
                ])
                .env("DISPLAY", display)
                .output()
                .ok()
                .and_then(|o| {
                    let text = String::from_utf8_lossy(&o.stdout).to_string();
                    text.lines().next().map(str::to_string)
                });
            if let Some(chooser) = chooser {
                settle(800).await;
                shot(display, "panel-open-with").await;
                press_window(display, &chooser, "Return").await;
                asked = true;
            }
        }
        settle(100).await;
    }
    // What it was handed: a private copy (0600) under the artifact's name, in the folder of
    // its content's sha256 (one copy per content, used again when opened again).
    let handed = std::fs::read_to_string(opened.join("handed")).unwrap();
    let (mode, path) = handed.trim().split_once(' ').expect("mode and path");
    assert_eq!(mode, "600", "{handed}");
    let copies = env.root().join("run/agentos-panel/open");
    let report_sha = Path::new(path)
        .strip_prefix(&copies)
        .ok()
        .and_then(|p| p.parent())
        .and_then(|p| p.to_str())
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        path.ends_with("/report.txt")
            && report_sha.len() == 64
            && report_sha.bytes().all(|b| b.is_ascii_hexdigit()),
        "{handed}"
    );
    until("the page says which app opened it", &window, |w| {
        has(&texts(w), "Asked the desktop to open report.txt")
    })
    .await;
    show_page(&window, "tasks");

    // A live task appears without a reload, and is canceled from its details.
    let live = rt.block_on(env.delegate("tester", "sleep 20000 ; echo never"));
    until("a new task appears live", &window, |w| {
        named_prefix(w, "task-").contains(&format!("task-{live}"))
    })
    .await;
    let pos = named_prefix(list.upcast_ref(), "task-")
        .iter()
        .position(|n| n == &format!("task-{live}"))
        .unwrap();
    selection.set_selected(pos as u32);
    until("the running task can be canceled", &window, |w| {
        button(w, "_Cancel Task").is_some_and(|b| b.is_sensitive())
    })
    .await;
    button(window.upcast_ref(), "_Cancel Task")
        .unwrap()
        .emit_clicked();
    let info = wait_finished(rt, env, live).await;
    assert_eq!(info.state, "canceled", "{info:?}");
    until("the list shows it canceled", &window, |w| {
        has(&texts(w), "canceled")
    })
    .await;

    // Ask: no sidekick here, so the user picks the agent; the result is shown.
    show_page(&window, "ask");
    let dropdown = until_found("the agent picker", || {
        find_type::<gtk::DropDown>(window.upcast_ref())
    })
    .await;
    until("the agents are offered", &window, |_| {
        dropdown.model().is_some_and(|m| m.n_items() > 0)
    })
    .await;
    let model = dropdown.model().unwrap();
    let tester = (0..model.n_items())
        .find(|i| {
            model
                .item(*i)
                .and_downcast::<gtk::StringObject>()
                .is_some_and(|s| s.string() == "tester")
        })
        .expect("tester offered");
    dropdown.set_selected(tester);
    let prompt = find_named(window.upcast_ref(), "ask-prompt")
        .and_downcast::<gtk::TextView>()
        .expect("prompt");
    prompt
        .buffer()
        .set_text("sleep 2500 ; echo hello from the Ask page");
    button(window.upcast_ref(), "_Ask").unwrap().emit_clicked();
    // The task's progress message shows while it runs (where the sidekick streams its answer).
    until("the running task's message is shown", &window, |w| {
        find_named(w, "ask-answer")
            .and_downcast::<gtk::Label>()
            .is_some_and(|l| l.text() == "sleeping")
    })
    .await;
    until("the answer is shown", &window, |w| {
        let t = texts(w);
        has(&t, "hello from the Ask page") && t.iter().any(|l| l.ends_with("completed."))
    })
    .await;
    shot(display, "panel-ask").await;
    // A task that ends at once may end before the page reads the kernel's reply; its end is
    // still shown.
    prompt.buffer().set_text("echo done at once");
    button(window.upcast_ref(), "_Ask").unwrap().emit_clicked();
    until("an answer at once is shown", &window, |w| {
        let t = texts(w);
        has(&t, "done at once") && t.iter().any(|l| l.ends_with("completed."))
    })
    .await;

    // Agents.
    show_page(&window, "agents");
    until("the Agents page lists the agents", &window, |w| {
        let t = texts(w);
        has(&t, "Test tester")
            && has(&t, "A scripted test agent")
            && has(&t, "May request:")
            && has(&t, "agent.delegate")
            && has(
                &t,
                "tester · connected · not sandboxed · no model use recorded",
            )
            && has(&t, "Documents")
    })
    .await;
    shot(display, "panel-agents").await;

    // Activity: the verified log, with the grant given above.
    show_page(&window, "activity");
    until("the Activity page shows the verified log", &window, |w| {
        let t = texts(w);
        has(&t, "Verified:") && has(&t, "grant · web web.fetch example.org")
    })
    .await;
    shot(display, "panel-activity").await;
    let entries = all_of::<gtk::Entry>(window.upcast_ref());
    entries[0].set_text("web");
    until("the log is filtered by agent", &window, |w| {
        let rows: Vec<String> = texts(w)
            .into_iter()
            .filter(|t| t.starts_with('#'))
            .collect();
        !rows.is_empty() && rows.iter().all(|r| r.contains(" · web "))
    })
    .await;
    entries[0].set_text("");

    // Consent: the tester reads a file; the dialog asks; Alt+A (Allow Always) answers it.
    show_page(&window, "permissions");
    let read = rt.block_on(env.delegate("tester", &format!("read {docs_s} notes.txt")));
    let dialog = until_found("the consent dialog opens", consent_dialog).await;
    let t = texts(dialog.upcast_ref());
    assert!(
        has(&t, "tester") && has(&t, "files.read") && has(&t, &docs_s),
        "{t:?}"
    );
    assert!(has(&t, &format!("Task {read} (tester)")), "{t:?}");
    // The requester is an agent: the generic icon, not the one of a desktop file under its id.
    let icon = all_of::<gtk::Image>(dialog.upcast_ref())
        .into_iter()
        .find(|i| i.widget_name() == "consent-requester-icon")
        .expect("the requester's icon");
    assert_eq!(
        icon.icon_name().as_deref(),
        Some(agentos_panel::consent::icon::GENERIC)
    );
    assert_ne!(icon.icon_name().as_deref(), Some(TESTER_ICON));
    settle(300).await;
    shot(display, "panel-consent").await;
    press(display, "alt+a").await;
    let info = wait_finished(rt, env, read).await;
    assert_eq!(info.state, "completed", "{info:?}");
    assert_eq!(info.result, "the notes");
    let grants = rt.block_on(k.list_grants()).unwrap();
    assert!(
        grants.iter().any(|g| g.principal == "tester"
            && g.capability == "files.read"
            && g.lifetime == "always"),
        "{grants:?}"
    );

    // Permissions: the grant is listed (the page reloads when shown) and revoked with one click.
    show_page(&window, "agents");
    show_page(&window, "permissions");
    until("the Permissions page shows the new grant", &window, |w| {
        let t = texts(w);
        has(&t, &format!("files.read on {docs_s}")) && has(&t, "example.org")
    })
    .await;
    shot(display, "panel-permissions").await;
    let revoke = find_revoke(&window, &format!("files.read on {docs_s}")).expect("revoke button");
    revoke.emit_clicked();
    until("the revoke is shown", &window, |w| {
        has(&texts(w), "1 grant revoked.")
    })
    .await;
    let grants = rt.block_on(k.list_grants()).unwrap();
    assert!(
        !grants
            .iter()
            .any(|g| g.principal == "tester" && g.capability == "files.read"),
        "{grants:?}"
    );

    // The agent's next call is asked again; Return takes the default, deny.
    let again = rt.block_on(env.delegate("tester", &format!("read {docs_s} notes.txt")));
    until_found("the consent dialog opens again", consent_dialog).await;
    settle(300).await;
    press(display, "Return").await;
    let info = wait_finished(rt, env, again).await;
    // Plain deny: not "deny and ask nothing more for this task".
    assert_eq!(
        info.message,
        "org.agentos.Error.AccessDenied: the user denied it"
    );
    assert_eq!(info.state, "failed", "{info:?}");

    // A dialog left unanswered: the kernel's time limit closes it (impl.portal.Request.Close),
    // the panel takes it off the screen, and the task is denied.
    // Its scope is a long path: cut in the dialog, all of it behind an expander.
    let later = env.home().join(format!("Later-{}", "x".repeat(170)));
    std::fs::create_dir_all(&later).unwrap();
    let later_s = later.to_str().unwrap().to_string();
    let unanswered = rt.block_on(env.delegate("tester", &format!("read {later_s} x.txt")));
    let dialog = until_found(
        "the consent dialog opens for the unanswered request",
        consent_dialog,
    )
    .await;
    settle(300).await;
    let scope_row = all_of::<gtk::Label>(dialog.upcast_ref())
        .into_iter()
        .map(|l| l.text().to_string())
        .find(|t| t.starts_with(&later_s[..100]) && t.ends_with('…'));
    assert!(scope_row.is_some(), "the long scope is not shown cut");
    let expander = find_type::<gtk::Expander>(dialog.upcast_ref()).expect("an expander");
    assert_eq!(expander.label().as_deref(), Some("Show all of it"));
    expander.set_expanded(true);
    settle(200).await;
    assert!(
        all_of::<gtk::Label>(dialog.upcast_ref())
            .iter()
            .any(|l| l.is_mapped() && l.text() == later_s.as_str()),
        "the whole scope is not behind the expander"
    );
    shot(display, "panel-consent-long").await;
    // However long the request, the dialog fits the screen (1280×800): Deny stays in view.
    assert!(
        dialog.height() <= 800,
        "the dialog is {} px tall",
        dialog.height()
    );
    let info = wait_finished(rt, env, unanswered).await;
    assert_eq!(info.state, "failed", "{info:?}");
    until_found("the closed request's dialog goes away", || {
        consent_dialog().is_none().then_some(())
    })
    .await;
    until("the waiting count goes away", &window, |w| {
        !has(&texts(w), "waits for you")
    })
    .await;

    if notifications {
        // Started now (after what the panel had to say about the tasks above has gone out),
        // so that its only bubbles are the ones below.
        settle(1000).await;
        let mut notifyd = env.service(
            Command::new(NOTIFICATION_DAEMON)
                .env("DISPLAY", display)
                .env("GDK_BACKEND", "x11")
                // Its icons come from the system's theme.
                .env("XDG_DATA_DIRS", "/usr/share"),
        );
        rt.block_on(env.wait_for_name("org.freedesktop.Notifications"));
        let monitor = Monitor::start(&env.address).await;
        // Notifications: with another window in front, a finished task is announced to the real
        // notification server with an Open button; that button's action shows the task.
        let mut other = Command::new("display")
            .args(["-title", "elsewhere", "-size", "200x100", "xc:white"])
            .env("DISPLAY", display)
            .spawn()
            .expect("imagemagick's display");
        focus_elsewhere(display, &window).await;
        let noticed = rt.block_on(env.delegate("tester", "echo noticed"));
        until_found("the server is told the task finished", || {
            let seen = monitor.text();
            let told = seen.contains("tester finished")
                && seen.contains(&format!("app.show-task(uint64 {noticed})"))
                && seen.contains("Open");
            told.then_some(())
        })
        .await;
        shot(display, "panel-notification").await;
        // Its one button, clicked on the server's bubble.
        click_last_button(display).await;
        until(
            "the notification's Open button shows the task",
            &window,
            |w| has(&texts(w), &format!("Task {noticed} · tester")),
        )
        .await;
        // Consent needed while the panel is not in front: Allow Once and Deny buttons; Deny's
        // action answers the request.
        focus_elsewhere(display, &window).await;
        let projects = env.home().join("Projects");
        std::fs::create_dir_all(&projects).unwrap();
        let projects_s = projects.to_str().unwrap().to_string();
        let asked = rt.block_on(env.delegate("tester", &format!("read {projects_s} x.txt")));
        until_found("the server is told consent is needed", || {
            let seen = monitor.text();
            let told = seen.contains("AgentOS needs your permission")
                && seen.contains(&format!("read files in {projects_s}"))
                && seen.contains("Allow Once")
                && seen.contains("Deny");
            told.then_some(())
        })
        .await;
        // Deny, the bubble's last button.
        click_last_button(display).await;
        let info = wait_finished(rt, env, asked).await;
        assert_eq!(
            info.message,
            "org.agentos.Error.AccessDenied: the user denied it"
        );
        assert_eq!(info.state, "failed", "{info:?}");
        until_found("the dialog closes", || {
            consent_dialog().is_none().then_some(())
        })
        .await;
        let _ = other.kill();
        let _ = other.wait();
        let _ = notifyd.kill();
        let _ = notifyd.wait();
    }

    // The kernel goes away, killed, with a dialog open (the dialog goes too): the panel says so; it comes
    // back: the panel reconnects.
    let gone = env.home().join("Gone");
    std::fs::create_dir_all(&gone).unwrap();
    rt.block_on(env.delegate("tester", &format!("read {} x.txt", gone.to_str().unwrap())));
    until_found("a dialog opens before the kernel goes", consent_dialog).await;
    // Killed: it cannot close its requests; its leaving the bus must close the dialog.
    rt.block_on(env.stop_kernel("KILL"));
    until_found("the dialog of the kernel that went goes away", || {
        consent_dialog().is_none().then_some(())
    })
    .await;
    until("the panel says AgentOS is not running", &window, |w| {
        has(&texts(w), "AgentOS is not running")
    })
    .await;
    shot(display, "panel-kernel-down").await;
    // While it is down, the web agent's manifest changes: its grant is suspended at the next
    // start, and the Permissions page says so.
    let manifest = env.agents_dir().join("web.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        format!("{text}description = \"Fetches pages, changed\"\n"),
    )
    .unwrap();
    rt.block_on(env.start_kernel());
    show_page(&window, "agents");
    until("the panel reconnects", &window, |w| {
        find_named(w, "sidebar").is_some_and(|s| s.is_mapped()) && has(&texts(w), "Test tester")
    })
    .await;
    show_page(&window, "permissions");
    until(
        "the changed agent's grant shows as suspended",
        &window,
        |w| {
            let t = texts(w);
            t.iter()
                .any(|l| l.contains("always") && l.contains("suspended: the agent changed"))
        },
    )
    .await;
    shot(display, "panel-suspended").await;
    drop(panel);
}

//! What the panel's end-to-end test uses to drive and read the window: waits that run the
//! main loop, the widget tree read as text, X input (xdotool), screenshots, and a dbus-monitor.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use adw::prelude::*;
use agentos_dbus_interfaces::TaskState;
use agentos_panel::consent::dialog::DIALOG_TITLE;
use agentos_tests::Env;

/// Every wait of the test is bounded by this.
pub const WAIT: Duration = Duration::from_secs(30);

/// Give the keyboard focus to another program's window ("elsewhere"): no window of the panel
/// is in front then.
pub async fn focus_elsewhere(display: &str, window: &gtk::Window) {
    let win = until_found("the other program's window", || {
        let out = Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", "elsewhere"])
            .env("DISPLAY", display)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines().next().map(str::to_string)
    })
    .await;
    let ok = Command::new("xdotool")
        .args(["windowfocus", "--sync", &win])
        .env("DISPLAY", display)
        .status()
        .expect("xdotool");
    assert!(ok.success());
    until("no window of the panel is in front", window, |_| {
        !agentos_panel::notify::in_front()
    })
    .await;
}

/// Click the last (rightmost) button of the notification server's only bubble, as a person
/// would: notification-daemon puts its buttons at the bottom right of its bubble.
pub async fn click_last_button(display: &str) {
    let bubble = until_found("the notification's bubble", || {
        let out = Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", "^Notification$"])
            .env("DISPLAY", display)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        // Exactly one bubble: the notice under test.
        let bubbles: Vec<&str> = text.lines().collect();
        (bubbles.len() == 1).then(|| bubbles[0].to_string())
    })
    .await;
    settle(300).await;
    let out = Command::new("xdotool")
        .args(["getwindowgeometry", "--shell", &bubble])
        .env("DISPLAY", display)
        .output()
        .expect("xdotool");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let get = |k: &str| -> i32 {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .expect("a geometry")
    };
    let (x, y, w, h) = (get("X="), get("Y="), get("WIDTH="), get("HEIGHT="));
    let (bx, by) = (x + w - 81, y + h - 39);
    let ok = Command::new("xdotool")
        .args(["mousemove", &bx.to_string(), &by.to_string(), "click", "1"])
        .env("DISPLAY", display)
        .status()
        .expect("xdotool");
    assert!(ok.success());
}

/// `dbus-monitor` on the test's bus, watching the notification server's interface.
pub struct Monitor {
    child: std::process::Child,
    seen: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Monitor {
    pub async fn start(address: &str) -> Monitor {
        // Line-buffered: a pipe would otherwise get its output in blocks.
        let mut child = Command::new("stdbuf")
            .args([
                "-oL",
                "dbus-monitor",
                "--address",
                address,
                "type='method_call',interface='org.freedesktop.Notifications'",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("dbus-monitor");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let into = std::sync::Arc::clone(&seen);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let mut s = into.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let monitor = Monitor { child, seen };
        // It watches once the bus has taken its name back (it became a monitor); what is sent
        // before that would not be seen.
        until_found("dbus-monitor watches", || {
            monitor.text().contains("member=NameLost").then_some(())
        })
        .await;
        monitor
    }

    pub fn text(&self) -> String {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Let the main loop run for `ms`.
pub async fn settle(ms: u64) {
    gtk::glib::timeout_future(Duration::from_millis(ms)).await;
}

/// Wait, running the main loop, until `f` holds for the window; fail with what it shows.
pub async fn until(what: &str, window: &gtk::Window, f: impl Fn(&gtk::Widget) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        if f(window.upcast_ref()) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: not within {} s; the window shows {:?}",
                WAIT.as_secs(),
                texts(window.upcast_ref())
            );
        }
        settle(50).await;
    }
}

pub async fn until_found<T>(what: &str, f: impl Fn() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {} s",
            WAIT.as_secs()
        );
        settle(50).await;
    }
}

/// Wait for a task to finish while the main loop runs.
pub async fn wait_finished(
    rt: &tokio::runtime::Runtime,
    env: &Env,
    id: u64,
) -> agentos_dbus_interfaces::TaskInfo {
    let k = rt.block_on(env.kernel());
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(t) = rt.block_on(k.get_task(id)) {
            if TaskState::parse(&t.state).is_some_and(TaskState::is_terminal) {
                return t;
            }
        }
        assert!(Instant::now() < deadline, "task {id} did not finish");
        settle(50).await;
    }
}

/// Select a page (by its name in `PAGES`) by activating its row in the sidebar, as a click
/// does.
pub fn show_page(window: &gtk::Window, name: &str) {
    let index = agentos_panel::app::PAGES
        .iter()
        .position(|(n, _)| *n == name)
        .expect("a page of that name");
    let sidebar = find_named(window.upcast_ref(), "sidebar").expect("sidebar");
    let list = sidebar.downcast::<gtk::ListBox>().expect("a list box");
    list.row_at_index(index as i32)
        .expect("a page row")
        .activate();
}

/// The open consent dialog, if any.
pub fn consent_dialog() -> Option<gtk::Window> {
    gtk::Window::list_toplevels()
        .into_iter()
        .filter_map(|w| w.downcast::<gtk::Window>().ok())
        .find(|w| w.is_visible() && w.title().as_deref() == Some(DIALOG_TITLE))
}

/// Send a key press to the consent dialog's X window, as a person at the keyboard would.
pub async fn press(display: &str, key: &str) {
    press_on(display, DIALOG_TITLE, key).await;
}

/// Send a key press to the X window named `title`.
pub async fn press_on(display: &str, title: &str, key: &str) {
    let out = Command::new("xdotool")
        .args(["search", "--onlyvisible", "--name", title])
        .env("DISPLAY", display)
        .output()
        .expect("xdotool");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let win = stdout
        .lines()
        .next()
        .expect("the dialog's X window")
        .to_string();
    press_window(display, &win, key).await;
}

/// Send a key press to the X window `win`.
pub async fn press_window(display: &str, win: &str, key: &str) {
    let ok = Command::new("xdotool")
        .args(["windowfocus", "--sync", win])
        .env("DISPLAY", display)
        .status()
        .expect("xdotool");
    assert!(ok.success());
    settle(200).await;
    let ok = Command::new("xdotool")
        .args(["key", "--window", win, key])
        .env("DISPLAY", display)
        .status()
        .expect("xdotool");
    assert!(ok.success());
    settle(100).await;
}

/// Let the window draw, then keep a screenshot of the display as a test artifact.
pub async fn shot(display: &str, name: &str) {
    settle(400).await;
    screenshot(display, name);
}

pub fn screenshot(display: &str, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    let _ = std::fs::create_dir_all(&dir);
    let shot = dir.join(format!("{name}.png"));
    let took = Command::new("import")
        .args(["-window", "root"])
        .arg(&shot)
        .env("DISPLAY", display)
        .status();
    if !took.is_ok_and(|s| s.success()) {
        eprintln!("no screenshot {}", shot.display());
    }
}

/// Every widget below `w`, depth first.
pub fn walk(w: &gtk::Widget, f: &mut dyn FnMut(&gtk::Widget)) {
    f(w);
    let mut child = w.first_child();
    while let Some(c) = child {
        walk(&c, f);
        child = c.next_sibling();
    }
}

/// The text of every label on screen below `w`.
pub fn texts(w: &gtk::Widget) -> Vec<String> {
    let mut out = Vec::new();
    walk(w, &mut |w| {
        if let Some(l) = w.downcast_ref::<gtk::Label>() {
            if l.is_mapped() && !l.text().is_empty() {
                out.push(l.text().to_string());
            }
        }
    });
    out
}

pub fn has(texts: &[String], part: &str) -> bool {
    texts.iter().any(|t| t.contains(part))
}

pub fn find_named(w: &gtk::Widget, name: &str) -> Option<gtk::Widget> {
    let mut found = None;
    walk(w, &mut |w| {
        if found.is_none() && w.widget_name() == name {
            found = Some(w.clone());
        }
    });
    found
}

/// The names of the mapped widgets below `w` that start with `prefix`, in order.
pub fn named_prefix(w: &gtk::Widget, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    walk(w, &mut |w| {
        let name = w.widget_name();
        if name.starts_with(prefix) && w.is_mapped() {
            out.push(name.to_string());
        }
    });
    out
}

/// The mapped button labelled `label` (with its mnemonic).
pub fn button(w: &gtk::Widget, label: &str) -> Option<gtk::Button> {
    all_of::<gtk::Button>(w)
        .into_iter()
        .find(|b| b.is_mapped() && b.label().as_deref() == Some(label))
}

/// Every widget of type `T` below `w`.
pub fn all_of<T: IsA<gtk::Widget>>(w: &gtk::Widget) -> Vec<T> {
    let mut out = Vec::new();
    walk(w, &mut |w| {
        if let Some(t) = w.downcast_ref::<T>() {
            out.push(t.clone());
        }
    });
    out
}

/// The first mapped widget of type `T` below `w`.
pub fn find_type<T: IsA<gtk::Widget>>(w: &gtk::Widget) -> Option<T> {
    all_of::<T>(w).into_iter().find(|t| t.is_mapped())
}

/// The Revoke button of the row whose title contains `title`.
pub fn find_revoke(window: &gtk::Window, title: &str) -> Option<gtk::Button> {
    let mut found = None;
    walk(window.upcast_ref(), &mut |w| {
        if found.is_some() {
            return;
        }
        if let Some(row) = w.downcast_ref::<adw::ActionRow>() {
            if row.title().contains(title) && row.is_mapped() {
                walk(row.upcast_ref(), &mut |b| {
                    if let Some(b) = b.downcast_ref::<gtk::Button>() {
                        if b.label().as_deref() == Some("Revoke") {
                            found = Some(b.clone());
                        }
                    }
                });
            }
        }
    });
    found
}

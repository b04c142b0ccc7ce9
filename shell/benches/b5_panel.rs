//! Benchmark B5: the panel's time to first frame and resident memory with 10,000 tasks in the
//! kernel's store, against a minimal libadwaita window, measured side by side under one Xvfb
//! (cairo renderer) and printed as ratios (target: at most 1.3×).
//!
//! `cargo bench -p agentos-panel --bench b5_panel` (needs the workspace's binaries of the same
//! profile: `cargo build --workspace --release`; or run both with `--profile dev`). The driver
//! fills a private kernel's store, then runs this binary again as each child, alternating, and
//! takes the median of each figure. A child measures from the start of its `main` to the first
//! frame the window painted (`GdkFrameClock::after-paint`); the panel also reports when the Tasks
//! page showed its first page of tasks; memory is `VmRSS` a second after that.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use adw::prelude::*;
use agentos_data::{NewTask, Store, TaskState, TaskUpdate};
use agentos_panel::app::{App, AppInput, Init};
use agentos_tests::Env;
use relm4::prelude::*;

/// Tasks put in the store.
const TASKS: u64 = 10_000;
/// Runs of each child.
const RUNS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--child-minimal") => child(None),
        Some("--child-panel") => child(args.get(2).cloned()),
        // `cargo bench` passes `--bench`.
        _ => driver(),
    }
}

fn driver() {
    if !Path::new("/usr/bin/Xvfb").exists() {
        eprintln!("skipping B5: Xvfb is not installed (apt-get install xvfb)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut env = rt.block_on(Env::start());
    assert!(rt.block_on(env.stop_kernel("TERM")).success());
    fill(&env.data_dir());
    rt.block_on(env.start_kernel());
    let n = agentos_tests::display::free_display().expect("a free display");
    let display = format!(":{n}");
    let mut xvfb = Command::new("Xvfb")
        .args([
            display.as_str(),
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .spawn()
        .expect("Xvfb");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
        assert!(Instant::now() < deadline, "Xvfb did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let exe = std::env::current_exe().expect("this binary");
    let mut minimal = Vec::new();
    let mut panel = Vec::new();
    for _ in 0..RUNS {
        minimal.push(run_child(&exe, &display, &env, &["--child-minimal"]));
        panel.push(run_child(
            &exe,
            &display,
            &env,
            &["--child-panel", env.address.as_str()],
        ));
    }
    let _ = xvfb.kill();
    let _ = xvfb.wait();
    let med = |v: &[Figures], f: fn(&Figures) -> f64| {
        let mut xs: Vec<f64> = v.iter().map(f).collect();
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    let (m_frame, p_frame) = (med(&minimal, |f| f.frame_ms), med(&panel, |f| f.frame_ms));
    let (m_rss, p_rss) = (med(&minimal, |f| f.rss_kb), med(&panel, |f| f.rss_kb));
    let p_tasks = med(&panel, |f| f.tasks_ms);
    println!("B5: panel with {TASKS} tasks in the store vs a minimal libadwaita window (median of {RUNS})");
    println!(
        "  first frame: {p_frame:.0} ms vs {m_frame:.0} ms: {:.2}x",
        p_frame / m_frame
    );
    println!("  first page of tasks shown: {p_tasks:.0} ms after start");
    println!(
        "  RSS: {:.1} MB vs {:.1} MB: {:.2}x",
        p_rss / 1024.0,
        m_rss / 1024.0,
        p_rss / m_rss
    );
}

/// Put `TASKS` finished tasks (each tenth with two children) in the store at `dir`.
fn fill(dir: &Path) {
    let store = Store::open(dir).expect("the kernel's store");
    let first = store.reserve_task_ids(TASKS).expect("reserve ids");
    let now = 1_790_000_000_000u64;
    let mut new = Vec::new();
    let mut done = Vec::new();
    for i in 0..TASKS {
        let id = first + i;
        let parent = if i % 10 == 0 || id == first {
            0
        } else {
            first + i - i % 10
        };
        new.push((
            id,
            NewTask {
                parent,
                agent: if parent == 0 { "tester" } else { "helper" }.to_string(),
                caller: "host".to_string(),
                goal: format!("benchmark goal number {i}"),
                state: TaskState::Submitted,
                created: now + i * 1000,
                deadline: 0,
            },
        ));
        done.push((
            id,
            TaskUpdate {
                state: TaskState::Completed,
                progress: 1.0,
                message: String::new(),
                result: Some(format!("result {i}")),
                updated: now + i * 1000 + 500,
            },
        ));
    }
    store.write_tasks(&new, &done).expect("write the tasks");
}

#[derive(Debug)]
struct Figures {
    frame_ms: f64,
    tasks_ms: f64,
    rss_kb: f64,
}

fn run_child(exe: &Path, display: &str, env: &Env, args: &[&str]) -> Figures {
    let out = Command::new(exe)
        .args(args)
        .envs(agentos_tests::display::gtk_env(display))
        .env("DBUS_SESSION_BUS_ADDRESS", &env.address)
        .output()
        .expect("a child");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "child {args:?} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let get = |key: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Figures {
        frame_ms: get("frame_ms="),
        tasks_ms: get("tasks_ms="),
        rss_kb: get("rss_kb="),
    }
}

/// A child: a minimal window (no address) or the panel on the bus at `address`.
fn child(address: Option<String>) {
    let start = Instant::now();
    gtk::init().expect("GTK");
    adw::init().expect("libadwaita");
    let first_frame = std::rc::Rc::new(std::cell::Cell::new(None::<f64>));
    let (window, panel): (gtk::Window, _) = match &address {
        None => {
            let w = adw::ApplicationWindow::builder()
                .title("minimal")
                .default_width(1000)
                .default_height(700)
                .content(&gtk::Label::new(Some("Hello")))
                .build();
            (w.upcast(), None)
        }
        Some(address) => {
            let panel = App::builder()
                .launch(Init {
                    address: Some(address.clone()),
                })
                .detach();
            panel.emit(AppInput::Show(1));
            (panel.widget().clone().upcast(), Some(panel))
        }
    };
    let seen = first_frame.clone();
    window.connect_realize(move |w| {
        if let Some(clock) = w.frame_clock() {
            let seen = seen.clone();
            clock.connect_after_paint(move |_| {
                if seen.get().is_none() {
                    seen.set(Some(start.elapsed().as_secs_f64() * 1000.0));
                }
            });
        }
    });
    window.present();
    let ctx = gtk::glib::MainContext::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while first_frame.get().is_none() {
        assert!(Instant::now() < deadline, "no frame");
        ctx.iteration(true);
    }
    let mut tasks_ms = 0.0;
    if panel.is_some() {
        loop {
            let shown = list_items(window.upcast_ref(), "tasks-list");
            if shown >= agentos_panel::pages::TASKS_LOADED {
                tasks_ms = start.elapsed().as_secs_f64() * 1000.0;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the tasks were not shown ({shown})"
            );
            ctx.iteration(true);
        }
    }
    let settle = Instant::now() + Duration::from_secs(1);
    while Instant::now() < settle {
        ctx.iteration(false);
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("frame_ms={}", first_frame.get().unwrap_or(0.0));
    println!("tasks_ms={tasks_ms}");
    println!("rss_kb={}", rss_kb());
    drop(panel);
}

/// How many items the list view named `name` holds.
fn list_items(w: &gtk::Widget, name: &str) -> u32 {
    if w.widget_name() == name {
        if let Some(model) = w.downcast_ref::<gtk::ListView>().and_then(|l| l.model()) {
            return model.n_items();
        }
    }
    let mut child = w.first_child();
    while let Some(c) = child {
        let n = list_items(&c, name);
        if n > 0 {
            return n;
        }
        child = c.next_sibling();
    }
    0
}

/// This process's resident set, in kB.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

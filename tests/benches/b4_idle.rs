//! Benchmark B4: the kernel at rest, against xdg-desktop-portal on the same bus. Both run as on a
//! desktop: a private bus with the XDG permission store, and an X display (Xvfb) with the GTK
//! portal backend, which xdg-desktop-portal uses and the kernel finds for its Access dialogs; the
//! kernel has the built-in and test agents' manifests, as the tests' harness installs them.
//!
//! Once both own their names, the run lets them settle, then measures a window of idle time: the
//! context switches of every thread of both processes (voluntary and not, from
//! `/proc/<pid>/task/<tid>/status`: a thread asleep in `epoll_wait` or `futex` makes none, so each
//! one counts a wakeup), and their PSS (`/proc/<pid>/smaps_rollup`), with where it goes by mapping.
//! It prints the kernel's wakeups over the window (target 0) and its PSS as a ratio to
//! xdg-desktop-portal's (target ≤ 1.0×).
//!
//! Run: `cargo build --release -p agentos-kernel -p agentos-tests --bins` then
//! `cargo bench -p agentos-tests --bench b4_idle`. `B4_IDLE_SECS` sets the window (60 s),
//! `B4_SETTLE_SECS` the time given to settle first (8 s: the kernel hands its code pages back 3 s after start, see kernel/src/trim.rs), and `B4_KERNEL_ENV` (`NAME=value ...`)
//! restarts the kernel with those variables, to try a setting.
//!
//! PSS is printed in two parts: anonymous memory (heap, allocator arenas, stacks) is the
//! process's own; how much of a binary's file is resident depends on the page cache too (a block
//! device's readahead, large folios), so file-backed figures vary from machine to machine.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use agentos_tests::{Env, Services};

const PORTAL: &str = "/usr/libexec/xdg-desktop-portal";
const PORTAL_NAME: &str = "org.freedesktop.portal.Desktop";

/// One thread's name and context switches so far.
#[derive(Clone)]
struct ThreadSample {
    name: String,
    switches: u64,
}

/// Every thread of a process, by thread id.
fn threads(pid: u32) -> BTreeMap<u32, ThreadSample> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in dir.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let (Ok(name), Ok(status)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("status")),
        ) else {
            continue;
        };
        let switches = status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
            .sum();
        out.insert(
            tid,
            ThreadSample {
                name: name.trim().to_string(),
                switches,
            },
        );
    }
    out
}

/// What one thread did over the window.
struct ThreadWakeups {
    name: String,
    wakeups: u64,
    note: &'static str,
}

/// Each thread's wakeups between two samples. A thread that exited in between woke at least to
/// exit (counted as 1); one that started counts all its switches.
fn wakeups(
    before: &BTreeMap<u32, ThreadSample>,
    after: &BTreeMap<u32, ThreadSample>,
) -> Vec<ThreadWakeups> {
    let mut out = Vec::new();
    for (tid, b) in before {
        match after.get(tid) {
            Some(a) => out.push(ThreadWakeups {
                name: a.name.clone(),
                wakeups: a.switches.saturating_sub(b.switches),
                note: "",
            }),
            None => out.push(ThreadWakeups {
                name: b.name.clone(),
                wakeups: 1,
                note: " (exited during the window)",
            }),
        }
    }
    for (tid, a) in after {
        if !before.contains_key(tid) {
            out.push(ThreadWakeups {
                name: a.name.clone(),
                wakeups: a.switches,
                note: " (started during the window)",
            });
        }
    }
    out
}

/// A field of `/proc/<pid>/smaps_rollup`, in kB.
fn rollup(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// PSS and RSS (kB) of a process's mappings, grouped by what they map: a file (by name), the
/// heap, the main stack, or anonymous memory (thread stacks, mmap'ed allocator arenas).
fn pss_by_mapping(pid: u32) -> Vec<(String, u64, u64, usize)> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return Vec::new();
    };
    let mut groups: BTreeMap<String, (u64, u64, usize)> = BTreeMap::new();
    let mut current = String::new();
    let kb = |l: &str, f: &str| -> Option<u64> {
        l.strip_prefix(f)?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let name = line.split_whitespace().nth(5).unwrap_or("");
            current = match name {
                "" => "[anon]".to_string(),
                n if n.starts_with('/') => Path::new(n)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| n.to_string()),
                n => n.to_string(),
            };
            groups.entry(current.clone()).or_default().2 += 1;
        } else if let Some(v) = kb(line, "Pss:") {
            groups.entry(current.clone()).or_default().0 += v;
        } else if let Some(v) = kb(line, "Rss:") {
            groups.entry(current.clone()).or_default().1 += v;
        }
    }
    let mut out: Vec<_> = groups
        .into_iter()
        .map(|(name, (pss, rss, n))| (name, pss, rss, n))
        .collect();
    out.sort_by_key(|g| std::cmp::Reverse(g.1));
    out
}

fn secs_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{var} is a number of seconds"))
        })
        .unwrap_or(default)
}

/// One process measured: its wakeups per thread over the window and its PSS at the end.
struct Measured {
    label: &'static str,
    threads: Vec<ThreadWakeups>,
    pss: Option<u64>,
    rss: Option<u64>,
    pid: u32,
}

impl Measured {
    fn total(&self) -> u64 {
        self.threads.iter().map(|t| t.wakeups).sum()
    }

    fn print(&self, secs: u64) {
        println!(
            "{} (pid {}): {} wakeups in {secs} s, PSS {} (anonymous {}, files and shmem {}), RSS {}",
            self.label,
            self.pid,
            self.total(),
            mb(self.pss),
            mb(rollup(self.pid, "Pss_Anon")),
            mb(rollup(self.pid, "Pss_File")
                .map(|f| f + rollup(self.pid, "Pss_Shmem").unwrap_or(0))),
            mb(self.rss)
        );
        // Threads of one name together (tokio's and GLib's pools share theirs).
        let mut by_name: BTreeMap<&str, (usize, u64, &str)> = BTreeMap::new();
        for t in &self.threads {
            let e = by_name.entry(&t.name).or_default();
            e.0 += 1;
            e.1 += t.wakeups;
            if !t.note.is_empty() {
                e.2 = t.note;
            }
        }
        for (name, (n, w, note)) in by_name {
            println!("    {name:<18} ×{n:<2} {w:>6} wakeups{note}");
        }
        println!("    PSS by mapping (kB):");
        for (name, pss, rss, n) in pss_by_mapping(self.pid).into_iter().take(8) {
            println!("      {pss:>7} PSS {rss:>7} RSS  {name} ({n} mappings)");
        }
    }
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or("unknown".into(), |k| format!("{:.1} MB", k as f64 / 1024.0))
}

fn main() {
    let idle = secs_from_env("B4_IDLE_SECS", 60);
    let settle = secs_from_env("B4_SETTLE_SECS", 8);
    if !Path::new(PORTAL).is_file() {
        println!("B4: {PORTAL} is not installed (apt-get install xdg-desktop-portal): nothing to compare against");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut env = Env::start_with(Services {
            permission_store: true,
            desktop_portal: true,
            document_portal: false,
        })
        .await;
        if let Ok(vars) = std::env::var("B4_KERNEL_ENV") {
            // To try a setting (`MIMALLOC_ALLOW_THP=0`, ...): the kernel again, with these.
            assert!(env.stop_kernel("TERM").await.success(), "agentosd stopped");
            let mut cmd = env.kernel_command();
            for kv in vars.split_whitespace() {
                let (k, v) = kv.split_once('=').expect("B4_KERNEL_ENV holds NAME=value pairs");
                cmd.env(k, v);
            }
            println!("B4: agentosd runs with {vars}");
            env.start_kernel_with(cmd).await;
        }
        let display = env.display.clone().unwrap_or_default();
        // As a GNOME session starts it: the portal files under /usr/share, the GTK backend.
        let mut portal: Child = env.service(
            Command::new(PORTAL)
                .env("XDG_DATA_DIRS", "/usr/share")
                .env("XDG_CURRENT_DESKTOP", "GNOME")
                .env("DISPLAY", &display)
                .env("GDK_BACKEND", "x11"),
        );
        env.wait_for_name(PORTAL_NAME).await;
        let kernel = env.kernel_pid().expect("a running kernel");
        let portal_pid = portal.id();
        println!(
            "B4: the kernel at rest vs xdg-desktop-portal on the same bus; settling {settle} s, then {idle} s idle"
        );
        tokio::time::sleep(Duration::from_secs(settle)).await;
        if let Ok(Some(status)) = portal.try_wait() {
            println!("B4: xdg-desktop-portal exited while settling ({status}): nothing to compare against");
            return;
        }
        let before = [threads(kernel), threads(portal_pid)];
        tokio::time::sleep(Duration::from_secs(idle)).await;
        let after = [threads(kernel), threads(portal_pid)];
        let kernel = Measured {
            label: "agentosd",
            threads: wakeups(&before[0], &after[0]),
            pss: rollup(kernel, "Pss"),
            rss: rollup(kernel, "Rss"),
            pid: kernel,
        };
        let portal_m = Measured {
            label: "xdg-desktop-portal",
            threads: wakeups(&before[1], &after[1]),
            pss: rollup(portal_pid, "Pss"),
            rss: rollup(portal_pid, "Rss"),
            pid: portal_pid,
        };
        kernel.print(idle);
        portal_m.print(idle);
        let _ = portal.kill();
        let _ = portal.wait();

        let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
        let woke = kernel.total();
        println!(
            "kernel wakeups over {idle} s: {woke} ({:.2}/s; xdg-desktop-portal: {}) — target 0: {}",
            woke as f64 / idle.max(1) as f64,
            portal_m.total(),
            verdict(woke == 0)
        );
        match (kernel.pss, portal_m.pss) {
            (Some(k), Some(p)) if p > 0 => {
                let ratio = k as f64 / p as f64;
                println!(
                    "kernel PSS / xdg-desktop-portal PSS: {} / {} = {ratio:.2}× — target ≤ 1.00×: {}",
                    mb(Some(k)),
                    mb(Some(p)),
                    verdict(ratio <= 1.0)
                );
            }
            _ => println!("kernel PSS / xdg-desktop-portal PSS: unknown (no smaps_rollup)"),
        }
    });
}

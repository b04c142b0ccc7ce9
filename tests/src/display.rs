//! The desktop tests' X display: a free display number (a lock left by a server that is gone
//! counts as free), the environment a GTK program needs on it without a desktop session, and
//! the programs the tests that draw need.

use std::path::Path;

/// Display numbers the tests take from.
const DISPLAYS: std::ops::Range<u32> = 90..250;

/// A display number no running X server holds.
pub fn free_display() -> Option<u32> {
    DISPLAYS.into_iter().find(|&n| display_free(n))
}

/// Whether X display `n` is free: no lock file, or one left by a server that is gone (Xvfb
/// takes such a display over, stale socket and all).
fn display_free(n: u32) -> bool {
    match std::fs::read_to_string(format!("/tmp/.X{n}-lock")) {
        Ok(pid) => pid
            .trim()
            .parse::<u32>()
            .is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()),
        Err(_) => !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists(),
    }
}

/// What a GTK program needs on `display` without a desktop session: the X11 backend and the
/// cairo renderer (no GPU), no accessibility bus, no settings portal (libadwaita would ask it for
/// the colour scheme and activate one), settings kept in memory.
pub fn gtk_env(display: &str) -> Vec<(&'static str, String)> {
    [
        ("DISPLAY", display),
        ("GDK_BACKEND", "x11"),
        ("GSK_RENDERER", "cairo"),
        ("NO_AT_BRIDGE", "1"),
        ("GTK_A11Y", "none"),
        ("ADW_DISABLE_PORTAL", "1"),
        ("GSETTINGS_BACKEND", "memory"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

/// Whether any of `programs` is missing; if so, says so (with the Debian `packages` that bring
/// them) for a test that skips.
pub fn missing(programs: &[&str], packages: &str) -> bool {
    let gone: Vec<&&str> = programs.iter().filter(|p| !Path::new(p).exists()).collect();
    if !gone.is_empty() {
        eprintln!("skipping: {gone:?} not installed (apt-get install {packages})");
    }
    !gone.is_empty()
}

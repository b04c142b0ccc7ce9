//! Durations, sizes and text from the bus, written for people.

use agentos_dbus_interfaces::text::display_safe;

/// A duration in milliseconds as "850 ms", "12 s", "3 min 5 s" or "2 h 4 min".
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms} ms"),
        1..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// How long a task has run: until `updated` when it has finished, else until `now` (all in
/// milliseconds since the epoch). A clock that went backwards gives 0.
pub fn elapsed(created: u64, updated: u64, finished: bool, now: u64) -> String {
    let end = if finished { updated } else { now.max(updated) };
    duration(end.saturating_sub(created))
}

/// A size in bytes as "512 B", "1.5 KiB", "3.0 MiB".
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A progress fraction as a whole percentage, clamped to 0..=100 (NaN counts as 0).
pub fn percent(fraction: f64) -> u32 {
    if fraction.is_nan() {
        return 0;
    }
    (fraction.clamp(0.0, 1.0) * 100.0).round() as u32
}

/// One line of text from the bus, safe to show and at most `max` characters.
pub fn line(s: &str, max: usize) -> String {
    display_safe(s, max)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_400), "12 s");
        assert_eq!(duration(185_000), "3 min 5 s");
        assert_eq!(duration(7_440_000), "2 h 4 min");
    }

    #[test]
    fn elapsed_stops_when_finished_and_never_goes_negative() {
        assert_eq!(elapsed(1_000, 4_000, true, 99_000), "3 s");
        assert_eq!(elapsed(1_000, 4_000, false, 11_000), "10 s");
        assert_eq!(elapsed(9_000, 4_000, false, 5_000), "0 ms");
    }

    #[test]
    fn sizes_and_percentages() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(percent(0.456), 46);
        assert_eq!(percent(7.0), 100);
        assert_eq!(percent(-1.0), 0);
        assert_eq!(percent(f64::NAN), 0);
    }

    #[test]
    fn bus_text_is_neutralised() {
        assert_eq!(line("a\u{202e}b\nc", 10), "ab c");
    }
}

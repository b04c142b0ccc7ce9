//! When a process started (`starttime` of `/proc/<pid>/stat`) and what time it is now on the same
//! clock (time since boot), so a pid can be told apart from a later process that got its number.

use std::io::Read;
use std::os::fd::AsFd;
use std::sync::OnceLock;

use rustix::fs::{openat, Mode, OFlags, CWD};

/// A moment as nanoseconds since boot (`CLOCK_BOOTTIME`, the clock process start times are
/// counted on; suspend included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SinceBoot(pub u64);

/// When a process started, in clock ticks since boot (`starttime`, field 22 of its `stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessStart {
    pub ticks: u64,
}

impl ProcessStart {
    /// Whether the process certainly started after `moment`. Ticks are whole (10 ms here): a
    /// process that started in the tick holding `moment` counts as started before it.
    pub fn after(self, moment: SinceBoot) -> std::io::Result<bool> {
        let hz = u128::from(ticks_per_second()?);
        let earliest_ns = u128::from(self.ticks) * 1_000_000_000 / hz;
        Ok(earliest_ns > u128::from(moment.0))
    }
}

/// `starttime` of a `stat` line. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`: field 3 is the first after it, field 22 the twentieth.
pub fn parse_start(stat: &str) -> Option<ProcessStart> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks = rest.split_ascii_whitespace().nth(19)?.parse().ok()?;
    Some(ProcessStart { ticks })
}

/// The start of the process an open `/proc/<pid>` directory refers to. Read through that fd, it
/// names the process the directory was opened for or fails (`ESRCH`) once that one is gone, even
/// if its pid now belongs to another process.
pub fn start_in(proc_dir: impl AsFd) -> std::io::Result<ProcessStart> {
    let file = openat(
        proc_dir,
        "stat",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut text = String::new();
    std::fs::File::from(file)
        .take(4096)
        .read_to_string(&mut text)?;
    parse_start(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the process's stat file has no start time",
        )
    })
}

/// The start of the process that has `pid` now.
pub fn start_of(pid: u32) -> std::io::Result<ProcessStart> {
    let dir = openat(
        CWD,
        format!("/proc/{pid}"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    start_in(dir)
}

/// Now, as time since boot (`/proc/uptime`, which counts on the clock start times are counted
/// on), rounded up: the moment returned is never earlier than the moment of the call.
pub fn now() -> std::io::Result<SinceBoot> {
    let text = std::fs::read_to_string("/proc/uptime")?;
    parse_uptime(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("/proc/uptime reads {text:?}, not seconds since boot"),
        )
    })
}

/// The first field of `/proc/uptime` (`seconds.fraction`) in nanoseconds, plus one unit of its
/// last digit (it is truncated).
fn parse_uptime(text: &str) -> Option<SinceBoot> {
    let field = text.split_ascii_whitespace().next()?;
    let (secs, frac) = field.split_once('.').unwrap_or((field, ""));
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let unit = 10u64.pow(9 - frac.len() as u32);
    let frac: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let ns = secs
        .checked_mul(1_000_000_000)?
        .checked_add(frac * unit)?
        .checked_add(unit)?;
    Some(SinceBoot(ns))
}

/// Clock ticks per second of `stat` times (`AT_CLKTCK` of the auxiliary vector, what
/// `sysconf(_SC_CLK_TCK)` reports).
pub fn ticks_per_second() -> std::io::Result<u64> {
    static HZ: OnceLock<Option<u64>> = OnceLock::new();
    HZ.get_or_init(|| {
        let auxv = std::fs::read("/proc/self/auxv").ok()?;
        clock_ticks_from_auxv(&auxv)
    })
    .ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "cannot read the clock tick rate (AT_CLKTCK) from /proc/self/auxv",
        )
    })
}

/// `AT_CLKTCK` (17) in an auxiliary vector of native-endian words.
fn clock_ticks_from_auxv(auxv: &[u8]) -> Option<u64> {
    const AT_CLKTCK: u64 = 17;
    let word = std::mem::size_of::<usize>();
    let read = |b: &[u8]| -> u64 {
        let mut buf = [0u8; 8];
        buf[..word].copy_from_slice(b);
        if cfg!(target_endian = "big") {
            u64::from_be_bytes(buf) >> (8 * (8 - word))
        } else {
            u64::from_le_bytes(buf)
        }
    };
    auxv.chunks_exact(2 * word)
        .map(|pair| (read(&pair[..word]), read(&pair[word..])))
        .take_while(|(key, _)| *key != 0)
        .find(|(key, _)| *key == AT_CLKTCK)
        .map(|(_, hz)| hz)
        .filter(|hz| *hz > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        // Fields 3..=21 are numbers 3..=21 here; field 22 is the start time.
        let fields: Vec<String> = (3..=21).map(|n| n.to_string()).collect();
        let stat = format!("42 (a) b (c)) ) {} 987654 23 24\n", fields.join(" "));
        assert_eq!(parse_start(&stat), Some(ProcessStart { ticks: 987654 }));
        assert_eq!(parse_start("42 (short) S 1 2"), None);
        assert_eq!(parse_start("no parenthesis at all"), None);
    }

    #[test]
    fn uptime_is_rounded_up() {
        assert_eq!(
            parse_uptime("12.34 99.00\n"),
            Some(SinceBoot(12_350_000_000))
        );
        assert_eq!(parse_uptime("7 1"), Some(SinceBoot(8_000_000_000)));
        assert_eq!(parse_uptime("x.12 1"), None);
        assert_eq!(parse_uptime(""), None);
    }

    #[test]
    fn this_machine_has_a_tick_rate() {
        assert!(ticks_per_second().unwrap() > 0);
    }

    #[test]
    fn a_child_started_after_a_moment_is_after_it_and_before_a_later_one() {
        let before = now().unwrap();
        // Start times have 10 ms ticks: leave more than one between the moment and the child.
        std::thread::sleep(std::time::Duration::from_millis(30));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let start = start_of(child.id()).unwrap();
        let after = now().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(start.after(before).unwrap(), "{start:?} vs {before:?}");
        assert!(!start.after(after).unwrap(), "{start:?} vs {after:?}");
        // This process started before both.
        let me = start_of(std::process::id()).unwrap();
        assert!(!me.after(before).unwrap());
    }

    #[test]
    fn an_open_proc_dir_of_a_process_that_is_gone_reads_nothing() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let dir = openat(
            CWD,
            format!("/proc/{}", child.id()),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        assert!(start_in(&dir).is_ok());
        child.kill().unwrap();
        child.wait().unwrap();
        // Whoever has the pid now, the directory still refers to the reaped child.
        assert!(start_in(&dir).is_err());
    }
}

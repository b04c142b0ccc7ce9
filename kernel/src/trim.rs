//! Handing code back when idle: 3 s after the kernel started, and again ten minutes after its
//! last task or model request ended (`config::TRIM_AFTER_*`), it tells Linux it no longer needs
//! the pages of its own executable it touched so far (`madvise(MADV_DONTNEED)` on its read-only
//! mappings of `/proc/self/exe`). The pages stay in the page cache, shared and reclaimable; the
//! next request maps back what it runs (minor faults, no disk reads). Start-up alone touches code
//! all over the binary (migrations, manifests, the permission store, the audit check), and Linux
//! maps 64 KiB around every page touched, so without this most of a 10 MB executable stays
//! resident in a kernel that does nothing.
//!
//! Only mappings the process never wrote are dropped: a mapping with private (copied) pages, such
//! as the relocated read-only data after start, would lose what was written, so any with
//! anonymous pages in `/proc/self/smaps` is left alone.

use std::path::Path;
use std::time::Duration;

/// What the kernel's deadline watch (`Kernel::watch_deadlines`) waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleWait {
    /// The nearest task deadline, this far off (or an earlier one coming).
    Deadline(Duration),
    /// No task is pending but model requests are queued or running: the code serving them is
    /// not handed back under them. Until the last ends (or a task comes).
    ModelsEnd,
    /// Nothing pending, and nothing handed back since the last work: `TRIM_AFTER_START` (or
    /// `TRIM_AFTER_WORK`, after work) more of that, then hand the code back if nothing came meanwhile.
    Trim,
    /// Handed back: until work comes (a task, or model requests that end), with no timer.
    Work,
}

/// What to wait for: a task's `deadline` if one is pending, else whether `models_busy`, else
/// whether the code was `trimmed` since the last work.
pub fn idle_wait(deadline: Option<Duration>, models_busy: bool, trimmed: bool) -> IdleWait {
    match deadline {
        Some(d) => IdleWait::Deadline(d),
        None if models_busy => IdleWait::ModelsEnd,
        None if trimmed => IdleWait::Work,
        None => IdleWait::Trim,
    }
}

/// Whether the code may be handed back at the end of an [`IdleWait::Trim`]: no model request is
/// queued or running (`busy`), and none was made during the wait (`made_then`, `made_now`: the
/// broker's count of requests made when it began and now). Otherwise the wait goes on (see
/// [`rest_left`]), so that a request coming every second or two finds the code it runs still
/// mapped.
pub fn may_trim(busy: bool, made_then: u64, made_now: u64) -> bool {
    !busy && made_then == made_now
}

/// After a wait in which requests came and went: how much longer to rest, so that the code is
/// handed back `after_work` after the last request ended (the broker has been idle `idle_for`),
/// not a whole wait after this one ended.
pub fn rest_left(after_work: Duration, idle_for: Duration) -> Duration {
    after_work.saturating_sub(idle_for)
}

/// One mapping of the executable that may be dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
}

/// The read-only, never-written mappings of `exe` in an smaps text.
fn droppable(smaps: &str, exe: &Path) -> Vec<Mapping> {
    let exe = exe.to_string_lossy();
    let mut out = Vec::new();
    let mut current: Option<(Mapping, bool)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-') {
            // A mapping's header line: "start-end perms offset dev inode [path]".
            let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) else {
                continue;
            };
            if let Some((m, true)) = current.take() {
                out.push(m);
            }
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            let read_only = perms.starts_with('r') && perms.as_bytes().get(1) == Some(&b'-');
            current = (read_only && path == exe).then_some((Mapping { start, end }, true));
        } else if first == "Anonymous:" {
            let kb: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(1);
            if let Some((_, ok)) = current.as_mut() {
                *ok &= kb == 0;
            }
        }
    }
    if let Some((m, true)) = current {
        out.push(m);
    }
    out
}

/// Drop this process's resident pages of its own executable's read-only mappings; returns the
/// bytes of mappings advised. Errors are ignored (the pages simply stay).
pub fn release_code_pages() -> usize {
    let (Ok(exe), Ok(smaps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/smaps"),
    ) else {
        return 0;
    };
    let mut bytes = 0;
    for m in droppable(&smaps, &exe) {
        let len = m.end - m.start;
        // SAFETY: the range is a whole mapping of this process, read-only and backed by the
        // executable's file with no private pages (checked above): dropping its pages loses
        // nothing, the next access reads them back from the page cache. Code running now (this
        // function) is faulted back in at once.
        #[allow(unsafe_code)]
        let advised = unsafe {
            rustix::mm::madvise(
                m.start as *mut std::ffi::c_void,
                len,
                rustix::mm::Advice::LinuxDontNeed,
            )
        };
        if advised.is_ok() {
            bytes += len;
        }
    }
    tracing::debug!(
        bytes,
        "handed the executable's pages back to the page cache"
    );
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0100000 r--p 00000000 08:01 42 /usr/bin/agentosd
Size:               1024 kB
Anonymous:             0 kB
55d0a0100000-55d0a0900000 r-xp 00100000 08:01 42 /usr/bin/agentosd
Size:               8192 kB
Anonymous:             0 kB
55d0a0900000-55d0a0a00000 r--p 00900000 08:01 42 /usr/bin/agentosd
Size:               1024 kB
Anonymous:           128 kB
55d0a0a00000-55d0a0a10000 rw-p 00a00000 08:01 42 /usr/bin/agentosd
Size:                 64 kB
Anonymous:            64 kB
7f0000000000-7f0000100000 r-xp 00000000 08:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
Size:               1024 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Anonymous:          1024 kB
";

    #[test]
    fn only_the_executables_unwritten_read_only_mappings_are_dropped() {
        let got = droppable(SMAPS, Path::new("/usr/bin/agentosd"));
        assert_eq!(
            got,
            [
                Mapping {
                    start: 0x55d0a0000000,
                    end: 0x55d0a0100000
                },
                Mapping {
                    start: 0x55d0a0100000,
                    end: 0x55d0a0900000
                },
            ]
        );
        assert!(droppable(SMAPS, Path::new("/usr/bin/other")).is_empty());
    }

    #[test]
    fn code_is_handed_back_only_when_neither_tasks_nor_model_requests_are_pending() {
        let d = Duration::from_secs(5);
        for busy in [false, true] {
            for trimmed in [false, true] {
                assert_eq!(idle_wait(Some(d), busy, trimmed), IdleWait::Deadline(d));
            }
        }
        assert_eq!(idle_wait(None, true, false), IdleWait::ModelsEnd);
        assert_eq!(idle_wait(None, true, true), IdleWait::ModelsEnd);
        assert_eq!(idle_wait(None, false, false), IdleWait::Trim);
        assert_eq!(idle_wait(None, false, true), IdleWait::Work);
    }

    #[test]
    fn a_request_made_during_the_wait_keeps_the_code() {
        assert!(may_trim(false, 7, 7));
        // Came and went while the wait ran: the code it ran stays for the next one.
        assert!(!may_trim(false, 7, 8));
        assert!(!may_trim(true, 7, 8));
        assert!(!may_trim(true, 7, 7));
    }

    #[test]
    fn after_requests_in_a_wait_the_rest_counts_from_the_last_ones_end() {
        let minute = Duration::from_secs(60);
        assert_eq!(
            rest_left(minute, Duration::from_secs(15)),
            Duration::from_secs(45)
        );
        assert_eq!(rest_left(minute, Duration::ZERO), minute);
        assert_eq!(rest_left(minute, Duration::from_secs(90)), Duration::ZERO);
    }

    #[test]
    fn releasing_keeps_the_process_running() {
        // The test binary's own code: dropped and faulted back as it runs on.
        let _ = release_code_pages();
        let v: Vec<u64> = (0..1000).collect();
        assert_eq!(v.iter().sum::<u64>(), 499_500);
    }
}

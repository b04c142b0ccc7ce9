//! Where agentosd's log goes: the systemd journal when its stderr is the journal (it runs as a
//! systemd unit), else stderr. The level comes from `RUST_LOG` (default `info`, zbus `warn`).

use std::os::fd::AsFd;

/// Whether `journal_stream` (the value of `JOURNAL_STREAM`, `"<device>:<inode>"`) names the
/// stream `stderr` is, as systemd.exec(5) says to check: a child that merely inherited the
/// variable with another stderr does not log to the journal.
pub fn names_stream(journal_stream: &str, stderr: (u64, u64)) -> bool {
    let Some((dev, ino)) = journal_stream.split_once(':') else {
        return false;
    };
    matches!((dev.parse::<u64>(), ino.parse::<u64>()), (Ok(d), Ok(i)) if (d, i) == stderr)
}

fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var("JOURNAL_STREAM").ok() else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    names_stream(&stream, (stat.st_dev, stat.st_ino))
}

/// Install the global subscriber. Falls back to stderr when the journal cannot be reached.
pub fn init() {
    use tracing_subscriber::prelude::*;
    // zbus opens an info-level span, with the whole message in it, for every call it
    // dispatches: costly, and noise in the journal.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,zbus=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let journald = stderr_is_journal()
        .then(|| tracing_journald::layer().ok())
        .flatten();
    match journald {
        Some(j) => registry
            .with(j.with_syslog_identifier("agentosd".into()))
            .init(),
        None => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::names_stream;

    #[test]
    fn only_the_stream_journal_stream_names_is_the_journal() {
        assert!(names_stream("8:1234", (8, 1234)));
        assert!(!names_stream("8:1234", (8, 1235)));
        assert!(!names_stream("9:1234", (8, 1234)));
        for bad in ["", "8", ":", "8:", "x:1234", "8:1234:5", "-8:1234"] {
            assert!(!names_stream(bad, (8, 1234)), "{bad:?}");
        }
    }
}

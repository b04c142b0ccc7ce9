//! Launching an agent: a socketpair whose one end the child inherits as fd 3, an environment
//! cleared to an allowlist, and the parent-death signal set so agents never outlive the kernel.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;

use agentos_dbus_interfaces::names::{AGENT_FD_ENV, AGENT_ID_ENV};

/// Variables a launched agent may inherit from the kernel's environment.
const ENV_ALLOWLIST: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "RUST_LOG",
    "RUST_BACKTRACE",
];

/// The fd number the agent finds its kernel socket on.
pub const AGENT_FD: i32 = 3;

/// Start `exec` for agent `id`. Returns the child and the kernel's end of its private socket.
pub fn spawn(exec: &Path, id: &str) -> std::io::Result<(tokio::process::Child, UnixStream)> {
    let (ours, theirs) = UnixStream::pair()?;
    let theirs: OwnedFd = theirs.into();
    let raw = theirs.as_raw_fd();
    let mut cmd = tokio::process::Command::new(exec);
    cmd.env_clear()
        .envs(
            ENV_ALLOWLIST
                .iter()
                .filter_map(|k| std::env::var_os(k).map(|v| (k, v))),
        )
        .env(AGENT_FD_ENV, AGENT_FD.to_string())
        .env(AGENT_ID_ENV, id)
        .stdin(Stdio::null())
        .kill_on_drop(false);
    #[allow(unsafe_code)]
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe functions
    // (dup2, fcntl, prctl, getppid) on values captured by copy.
    unsafe {
        cmd.pre_exec(move || {
            if raw == AGENT_FD {
                if libc::fcntl(AGENT_FD, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(raw, AGENT_FD) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(theirs);
    Ok((child, ours))
}

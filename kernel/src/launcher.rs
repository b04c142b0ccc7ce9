//! Launching an agent: a socketpair whose one end the child inherits as fd 3, an environment
//! cleared to an allowlist, and the parent-death signal set so agents never outlive the kernel.
//! A sandboxed agent runs under bubblewrap: the OS's /usr read-only, its own binary, an empty
//! /tmp, no other host files, no network, no session bus, new namespaces for everything.

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

/// Where a sandboxed agent finds its own binary.
const SANDBOX_EXEC: &str = "/app/bin/agent";

/// The bubblewrap command line for a sandboxed agent. Every value comes from the kernel (the
/// resolved, absolute executable; a validated id; the kernel's own environment), never from an
/// agent at run time, and each is the value of an option, never an option itself.
pub fn sandbox_args(exec: &Path, id: &str) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut push = |items: &[&dyn AsRef<std::ffi::OsStr>]| {
        args.extend(items.iter().map(|a| a.as_ref().to_os_string()))
    };
    push(&[&"--ro-bind", &"/usr", &"/usr"]);
    for (link, target) in [
        ("/lib", "usr/lib"),
        ("/lib64", "usr/lib64"),
        ("/bin", "usr/bin"),
        ("/sbin", "usr/sbin"),
    ] {
        push(&[&"--symlink", &target, &link]);
    }
    push(&[&"--ro-bind-try", &"/etc/ld.so.cache", &"/etc/ld.so.cache"]);
    push(&[&"--ro-bind-try", &"/etc/localtime", &"/etc/localtime"]);
    push(&[
        &"--proc", &"/proc", &"--dev", &"/dev", &"--tmpfs", &"/tmp", &"--dir", &"/run",
    ]);
    push(&[&"--ro-bind", &exec.as_os_str(), &SANDBOX_EXEC]);
    push(&[
        &"--unshare-all",
        &"--die-with-parent",
        &"--new-session",
        &"--clearenv",
    ]);
    push(&[
        &"--setenv",
        &"HOME",
        &"/tmp",
        &"--setenv",
        &"PATH",
        &"/usr/bin:/bin",
    ]);
    for key in ["LANG", "LC_ALL", "TZ", "RUST_LOG", "RUST_BACKTRACE"] {
        if let Some(v) = std::env::var_os(key) {
            push(&[&"--setenv", &key, &v]);
        }
    }
    push(&[
        &"--setenv",
        &AGENT_FD_ENV,
        &AGENT_FD.to_string(),
        &"--setenv",
        &AGENT_ID_ENV,
        &id,
    ]);
    push(&[&"--", &SANDBOX_EXEC]);
    args
}

/// Start `exec` for agent `id` (under bubblewrap when `sandboxed`). Returns the child and the
/// kernel's end of its private socket.
pub fn spawn(
    exec: &Path,
    id: &str,
    sandboxed: bool,
) -> std::io::Result<(tokio::process::Child, UnixStream)> {
    let (ours, theirs) = UnixStream::pair()?;
    let theirs: OwnedFd = theirs.into();
    let raw = theirs.as_raw_fd();
    let mut cmd = if sandboxed {
        let mut c = tokio::process::Command::new("bwrap");
        c.args(sandbox_args(exec, id));
        c
    } else {
        tokio::process::Command::new(exec)
    };
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
    // SAFETY: the closure runs between fork and exec and only makes system calls (dup2, fcntl,
    // close_range, prctl), which are async-signal-safe, on values captured by copy.
    unsafe {
        cmd.pre_exec(move || {
            if raw == AGENT_FD {
                if libc::fcntl(AGENT_FD, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(raw, AGENT_FD) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // Whatever else the kernel holds open (a descriptor a peer just passed it, one it
            // inherited) closes at exec: the agent starts with fds 0-2 and its socket alone.
            let cloexec = libc::CLOSE_RANGE_CLOEXEC as libc::c_uint;
            let (first, last) = (AGENT_FD as libc::c_uint + 1, libc::c_uint::MAX);
            if libc::syscall(libc::SYS_close_range, first, last, cloexec) == -1 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_arguments_never_take_option_names_from_values() {
        let args = sandbox_args(Path::new("/opt/agents/--bind"), "docs");
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        // The odd executable name is the value of --ro-bind, mounted at a fixed path.
        let i = args.iter().position(|a| a == "/opt/agents/--bind").unwrap();
        assert_eq!(args[i - 1], "--ro-bind");
        assert_eq!(args[i + 1], SANDBOX_EXEC);
        assert!(args.contains(&"--unshare-all".to_string()));
        assert!(args.contains(&"--clearenv".to_string()));
        assert_eq!(args.last().map(String::as_str), Some(SANDBOX_EXEC));
        assert!(!args.iter().any(|a| a.contains("DBUS_SESSION_BUS_ADDRESS")));
    }
}

//! Caller identity from the connection, as xdg-desktop-portal establishes it: bus credentials give
//! a pid (or, where the bus hands it out, a pidfd), `/proc/<pid>` is opened once and
//! `root/.flatpak-info` read relative to it (no path re-walks). A pid is only taken to name the
//! process that opened the connection if that process started before the connection appeared on
//! the bus; later, a pid whose process was replaced is refused. An error never becomes "host".

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{openat, Mode, OFlags, CWD};
use zbus::names::UniqueName;

use crate::flatpak_info;
use crate::proc_stat::{self, ProcessStart, SinceBoot};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallerIdentity {
    /// A process of the user outside any sandbox. Host processes can forge a Flatpak identity with
    /// a mount namespace of their own, so "host" never becomes a Flatpak app's identity and vice
    /// versa only through `/.flatpak-info` of a process the bus vouches for.
    Host,
    /// A host process in a desktop app's systemd unit (its app id). Still a host process: it
    /// can do what the user can; the id names it in prompts and grants.
    HostApp { app_id: String },
    /// A Flatpak app (or a sandbox built the same way).
    Flatpak { app_id: String, instance_id: String },
}

impl CallerIdentity {
    /// The principal name used for grants and the audit log: the Flatpak app id, `host:<app id>`
    /// for host apps (so a host app never shares a Flatpak app's identity), or `host`.
    pub fn principal(&self) -> String {
        match self {
            CallerIdentity::Host => "host".into(),
            CallerIdentity::HostApp { app_id } => format!("host:{app_id}"),
            CallerIdentity::Flatpak { app_id, .. } => app_id.clone(),
        }
    }

    /// A process outside any sandbox (plain or in an app unit).
    pub fn is_host(&self) -> bool {
        !matches!(self, CallerIdentity::Flatpak { .. })
    }
}

/// Why a caller could not be identified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("the bus gave no process id for {0}")]
    NoPid(String),
    #[error("could not ask the bus about the caller: {0}")]
    Bus(#[from] zbus::Error),
    #[error("could not inspect process {pid}: {source}")]
    Proc { pid: u32, source: std::io::Error },
    #[error("process {0} has an unreadable or invalid /.flatpak-info")]
    BadFlatpakInfo(u32),
    #[error("the caller changed while it was being identified")]
    Changed,
    #[error(
        "process {pid} started after the caller's connection appeared on the bus: the process \
         that opened the connection has exited and its pid now belongs to another process"
    )]
    PidReused { pid: u32 },
    #[error(
        "the process that opened the caller's connection (pid {pid}) has exited; the \
         connection is now held by another process"
    )]
    OpenerGone { pid: u32 },
    #[error("cannot tell when process {pid} started: {source}")]
    StartTime { pid: u32, source: std::io::Error },
}

/// An identity and the process it was read from, which must still be there when the identity is
/// used again.
#[derive(Debug)]
pub struct Identified {
    identity: CallerIdentity,
    opener: Opener,
}

/// The process that opened a connection, as far as it can be told apart from later ones.
#[derive(Debug)]
enum Opener {
    /// The bus's pidfd: it names that process and no other, for as long as it runs.
    Pidfd { pid: u32, fd: OwnedFd },
    /// A pid and the start time of the process that had it when it was identified.
    Pid { pid: u32, start: ProcessStart },
}

impl Identified {
    pub fn identity(&self) -> &CallerIdentity {
        &self.identity
    }

    /// The pid the identity was read from.
    pub fn pid(&self) -> u32 {
        match self.opener {
            Opener::Pidfd { pid, .. } | Opener::Pid { pid, .. } => pid,
        }
    }

    /// Whether the process that opened the connection still runs under its pid (one poll of a
    /// pidfd, or one read of `/proc/<pid>/stat`). A pid whose process exited, or was taken by
    /// another process, no longer vouches for the connection: it is refused, not re-identified.
    pub fn check_opener(&self) -> Result<(), IdentityError> {
        match &self.opener {
            Opener::Pidfd { fd, .. } if pidfd_alive(fd.as_fd()) => Ok(()),
            Opener::Pidfd { pid, .. } => Err(IdentityError::OpenerGone { pid: *pid }),
            Opener::Pid { pid, start } => match proc_stat::start_of(*pid) {
                Ok(now) if now == *start => Ok(()),
                Ok(_) => Err(IdentityError::PidReused { pid: *pid }),
                Err(e) if is_gone(&e) => Err(IdentityError::OpenerGone { pid: *pid }),
                Err(source) => Err(IdentityError::StartTime { pid: *pid, source }),
            },
        }
    }
}

/// No such process (`/proc/<pid>` missing, or its process gone while it was read).
fn is_gone(e: &std::io::Error) -> bool {
    [rustix::io::Errno::NOENT, rustix::io::Errno::SRCH]
        .iter()
        .any(|n| e.raw_os_error() == Some(n.raw_os_error()))
}

/// Identify the sender of a message on a bus connection. `appeared_by` is a moment at which the
/// sender's connection was already on the bus (when its `NameOwnerChanged` was seen, at the
/// latest): without a pidfd from the bus, a process that started after it has a reused pid and is
/// refused.
pub async fn identify_sender(
    conn: &zbus::Connection,
    sender: &UniqueName<'_>,
    appeared_by: SinceBoot,
) -> Result<Identified, IdentityError> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    let creds = dbus
        .get_connection_credentials(sender.clone().into())
        .await
        .map_err(zbus::Error::from)?;
    if let Some(fd) = creds.process_fd() {
        let fd = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| IdentityError::Proc { pid: 0, source })?;
        return identify_pidfd(fd, creds.process_id());
    }
    let pid = creds
        .process_id()
        .ok_or_else(|| IdentityError::NoPid(sender.to_string()))?;
    identify_opener(pid, appeared_by)
}

/// Identify the process behind a pidfd: its pid now, its identity, and the pidfd still alive
/// after the identity was read (so `/proc/<pid>` was that process's).
fn identify_pidfd(fd: OwnedFd, reported: Option<u32>) -> Result<Identified, IdentityError> {
    let gone = || IdentityError::OpenerGone {
        pid: reported.unwrap_or(0),
    };
    let pid = pid_of_pidfd(fd.as_fd()).ok_or_else(gone)?;
    let identity = identify_pid(pid)?;
    if !pidfd_alive(fd.as_fd()) {
        return Err(IdentityError::Changed);
    }
    Ok(Identified {
        identity,
        opener: Opener::Pidfd { pid, fd },
    })
}

/// Identify the process that has `pid`, refusing it if it started after `appeared_by`: the
/// connection was then opened by an earlier process with the same pid. Everything is read
/// through one `/proc/<pid>` fd, so it all describes the process whose start time was checked.
pub fn identify_opener(pid: u32, appeared_by: SinceBoot) -> Result<Identified, IdentityError> {
    let proc_dir = open_proc(pid)?;
    let start =
        proc_stat::start_in(&proc_dir).map_err(|source| IdentityError::Proc { pid, source })?;
    let later = start
        .after(appeared_by)
        .map_err(|source| IdentityError::StartTime { pid, source })?;
    if later {
        return Err(IdentityError::PidReused { pid });
    }
    let identity = identify_in(pid, &proc_dir)?;
    Ok(Identified {
        identity,
        opener: Opener::Pid { pid, start },
    })
}

/// The pid a pidfd refers to (`Pid:` in `/proc/self/fdinfo`); `None` if it has exited or lives in
/// another pid namespace.
pub fn pid_of_pidfd(fd: std::os::fd::BorrowedFd<'_>) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    let pid: i64 = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))?
        .trim()
        .parse()
        .ok()?;
    u32::try_from(pid).ok().filter(|p| *p > 0)
}

/// Whether the process behind a pidfd is still running (a pidfd turns readable when it exits).
pub fn pidfd_alive(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(0))
}

/// Identify the process that has `pid` now: Flatpak when its root has a valid `/.flatpak-info`,
/// else host. Nothing here ties it to a connection: callers on a bus go through
/// [`identify_sender`].
pub fn identify_pid(pid: u32) -> Result<CallerIdentity, IdentityError> {
    let proc_dir = open_proc(pid)?;
    identify_in(pid, &proc_dir)
}

fn open_proc(pid: u32) -> Result<OwnedFd, IdentityError> {
    openat(
        CWD,
        format!("/proc/{pid}"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| IdentityError::Proc {
        pid,
        source: e.into(),
    })
}

/// Identify the process an open `/proc/<pid>` directory refers to.
fn identify_in(pid: u32, proc_dir: &OwnedFd) -> Result<CallerIdentity, IdentityError> {
    let proc_err = |e: rustix::io::Errno| IdentityError::Proc {
        pid,
        source: e.into(),
    };
    let root = openat(
        proc_dir,
        "root",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(proc_err)?;
    let info = match openat(
        &root,
        ".flatpak-info",
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return host_identity(pid, proc_dir),
        Err(e) => return Err(proc_err(e)),
    };
    let mut text = String::new();
    std::fs::File::from(info)
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|source| IdentityError::Proc { pid, source })?;
    let info = flatpak_info::parse(&text).ok_or(IdentityError::BadFlatpakInfo(pid))?;
    Ok(CallerIdentity::Flatpak {
        app_id: info.app_id,
        instance_id: info.instance_id,
    })
}

/// A host process: in a desktop app's unit, or plain host. An unreadable cgroup is an error,
/// not "host": plain host is the more privileged answer.
fn host_identity(
    pid: u32,
    proc_dir: &std::os::fd::OwnedFd,
) -> Result<CallerIdentity, IdentityError> {
    let file = openat(
        proc_dir,
        "cgroup",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| IdentityError::Proc {
        pid,
        source: e.into(),
    })?;
    let mut text = String::new();
    std::fs::File::from(file)
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|source| IdentityError::Proc { pid, source })?;
    Ok(match crate::systemd_scope::app_id_from_cgroup(&text) {
        Some(app_id) => CallerIdentity::HostApp { app_id },
        None => CallerIdentity::Host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_host() {
        assert_eq!(
            identify_pid(std::process::id()).unwrap(),
            CallerIdentity::Host
        );
    }

    #[test]
    fn pidfds_name_their_process_until_it_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
        use std::os::fd::AsFd;
        assert_eq!(pid_of_pidfd(pidfd.as_fd()), Some(child.id()));
        assert!(pidfd_alive(pidfd.as_fd()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!pidfd_alive(pidfd.as_fd()));
        assert_eq!(pid_of_pidfd(pidfd.as_fd()), None);
    }

    #[test]
    fn a_process_started_after_the_connection_appeared_is_refused() {
        let appeared = proc_stat::now().unwrap();
        // Start times count in 10 ms ticks: the child starts well after the moment.
        std::thread::sleep(std::time::Duration::from_millis(30));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let refused = identify_opener(child.id(), appeared);
        // The same process is accepted for a connection that appeared after it started.
        let accepted = identify_opener(child.id(), proc_stat::now().unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            matches!(refused, Err(IdentityError::PidReused { pid }) if pid == child.id()),
            "{refused:?}"
        );
        let accepted = accepted.unwrap();
        assert_eq!(accepted.identity(), &CallerIdentity::Host);
        // Its process has exited since: the identity no longer stands.
        assert!(matches!(
            accepted.check_opener(),
            Err(IdentityError::OpenerGone { .. } | IdentityError::PidReused { .. })
        ));
    }

    #[test]
    fn an_identity_stands_while_its_process_runs_under_the_same_start_time() {
        let me = identify_opener(std::process::id(), proc_stat::now().unwrap()).unwrap();
        assert_eq!(me.identity(), &CallerIdentity::Host);
        me.check_opener().unwrap();
        // A process under the same pid with another start time is another process.
        let Opener::Pid { pid, start } = me.opener else {
            panic!("identified by pid")
        };
        let replaced = Identified {
            identity: CallerIdentity::Host,
            opener: Opener::Pid {
                pid,
                start: ProcessStart {
                    ticks: start.ticks + 1,
                },
            },
        };
        assert!(matches!(
            replaced.check_opener(),
            Err(IdentityError::PidReused { .. })
        ));
    }

    #[test]
    fn a_pidfd_identity_stands_until_its_process_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
        let id = identify_pidfd(pidfd, Some(child.id())).unwrap();
        assert_eq!(id.identity(), &CallerIdentity::Host);
        assert_eq!(id.pid(), child.id());
        id.check_opener().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(matches!(
            id.check_opener(),
            Err(IdentityError::OpenerGone { .. })
        ));
    }

    #[test]
    fn a_missing_process_is_an_error_not_host() {
        assert!(identify_pid(u32::MAX - 1).is_err());
    }
}

//! Caller identity from the connection, as xdg-desktop-portal establishes it: bus credentials give
//! a pid, `/proc/<pid>` is opened once and `root/.flatpak-info` read relative to it (no path
//! re-walks), then the sender is checked to still be that pid. An error never becomes "host".

use std::io::Read;

use rustix::fs::{openat, Mode, OFlags, CWD};
use zbus::names::UniqueName;

use crate::flatpak_info;

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
}

/// Identify the sender of a message on a bus connection.
pub async fn identify_sender(
    conn: &zbus::Connection,
    sender: &UniqueName<'_>,
) -> Result<CallerIdentity, IdentityError> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    let creds = dbus
        .get_connection_credentials(sender.clone().into())
        .await
        .map_err(zbus::Error::from)?;
    let pid = creds
        .process_id()
        .ok_or_else(|| IdentityError::NoPid(sender.to_string()))?;
    let identity = identify_pid(pid)?;
    // The pid could have been reused between the two steps: make sure the sender still is it.
    let again = dbus
        .get_connection_unix_process_id(sender.clone().into())
        .await
        .map_err(zbus::Error::from)?;
    if again != pid {
        return Err(IdentityError::Changed);
    }
    Ok(identity)
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

/// Identify a process by pid: Flatpak when its root has a valid `/.flatpak-info`, else host.
pub fn identify_pid(pid: u32) -> Result<CallerIdentity, IdentityError> {
    let proc_err = |e: rustix::io::Errno| IdentityError::Proc {
        pid,
        source: e.into(),
    };
    let proc_dir = openat(
        CWD,
        format!("/proc/{pid}"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(proc_err)?;
    let root = openat(
        &proc_dir,
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
        Err(rustix::io::Errno::NOENT) => return host_identity(pid, &proc_dir),
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
    fn a_missing_process_is_an_error_not_host() {
        assert!(identify_pid(u32::MAX - 1).is_err());
    }
}

//! Finding and opening the bus: the session bus, or, where there is none, the private bus that
//! `./scripts/start` started and named in a file only this user can have written.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use zbus::Connection;

use crate::error::{describe_zbus, ClientError};

/// How long to wait for the bus to accept us.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the reply to a method call (libdbus waits 25 s by default).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The folder, under the runtime dir, of the bus `./scripts/start` starts when there is no
/// session bus.
pub const HEADLESS_DIR: &str = "agentos";
/// The file in [`HEADLESS_DIR`] holding that bus's address.
pub const ADDRESS_FILE: &str = "bus-address";
/// Longest address file read.
const MAX_ADDRESS_LEN: u64 = 4096;

/// Where `./scripts/start` writes the address of the bus it started:
/// `$XDG_RUNTIME_DIR/agentos/bus-address`, or `/tmp/agentos-<uid>/bus-address` when
/// `XDG_RUNTIME_DIR` is not set.
pub fn address_file() -> PathBuf {
    address_file_in(
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        our_uid(),
    )
}

fn address_file_in(runtime_dir: Option<PathBuf>, uid: u32) -> PathBuf {
    match runtime_dir.filter(|d| d.is_absolute()) {
        Some(dir) => dir.join(HEADLESS_DIR).join(ADDRESS_FILE),
        None => PathBuf::from(format!("/tmp/agentos-{uid}")).join(ADDRESS_FILE),
    }
}

/// The effective user id of this process: what the bus reports for our connections.
pub(crate) fn our_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The address of the session bus and how to name it in messages: `DBUS_SESSION_BUS_ADDRESS`;
/// else `$XDG_RUNTIME_DIR/bus` if it is a socket; else the bus `./scripts/start` named in
/// [`address_file`].
pub fn session_address() -> Result<(String, String), ClientError> {
    if let Some(addr) = std::env::var("DBUS_SESSION_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
    {
        return Ok((addr, "the session bus".into()));
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        let bus = dir.join("bus");
        if is_socket(&bus) {
            let addr = format!("unix:path={}", escape_address_value(&bus));
            return Ok((addr, "the session bus".into()));
        }
    }
    let file = address_file();
    match read_address_file(&file, our_uid())? {
        Some(addr) => Ok((addr, format!("the AgentOS bus named in {}", file.display()))),
        None => Err(ClientError::NoBus(format!(
            "DBUS_SESSION_BUS_ADDRESS is not set, there is no $XDG_RUNTIME_DIR/bus, and \
             ./scripts/start has not started a bus of its own ({} does not exist)",
            file.display()
        ))),
    }
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Escape `path` as a value in a D-Bus address: bytes other than `[-0-9A-Za-z_/.*]` as `%XX`.
fn escape_address_value(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_/.*".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The address in the file `./scripts/start` wrote, `None` if there is no such file. The file
/// and its folder must belong to `uid` and be writable by nobody else; the file must be a
/// regular file (not a link) holding one line.
pub fn read_address_file(path: &Path, uid: u32) -> Result<Option<String>, ClientError> {
    let refuse = |why: String| {
        ClientError::AddressFile(format!(
            "refusing the bus address in {}: {why}",
            path.display()
        ))
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    match std::fs::symlink_metadata(dir) {
        Ok(meta) => check_owner_and_mode(dir, meta.is_dir(), meta.uid(), meta.mode(), uid)
            .map_err(refuse)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(refuse(format!("cannot read {}: {e}", dir.display()))),
    }
    let fd = match rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::LOOP) => return Err(refuse("it is a symbolic link".into())),
        Err(e) => return Err(refuse(format!("cannot open it: {e}"))),
    };
    let file = std::fs::File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| refuse(format!("cannot read it: {e}")))?;
    check_owner_and_mode(path, meta.is_file(), meta.uid(), meta.mode(), uid).map_err(refuse)?;
    let mut text = String::new();
    file.take(MAX_ADDRESS_LEN)
        .read_to_string(&mut text)
        .map_err(|e| refuse(format!("cannot read it: {e}")))?;
    let address = text.trim();
    if address.is_empty() || address.contains(['\n', '\r']) {
        return Err(refuse("it does not hold one bus address".into()));
    }
    Ok(Some(address.to_string()))
}

/// The rule for the address file and its folder: of the right kind, owned by `uid`, writable
/// by nobody else.
fn check_owner_and_mode(
    path: &Path,
    right_kind: bool,
    owner: u32,
    mode: u32,
    uid: u32,
) -> Result<(), String> {
    if !right_kind {
        return Err(format!(
            "{} is not a regular file or folder",
            path.display()
        ));
    }
    if owner != uid {
        return Err(format!(
            "{} belongs to uid {owner}, not to you (uid {uid})",
            path.display()
        ));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "{} is writable by others (mode {:o})",
            path.display(),
            mode & 0o7777
        ));
    }
    Ok(())
}

/// Connect to the bus at `address`, named `what` in messages.
pub async fn connect(address: &str, what: &str) -> Result<Connection, ClientError> {
    let builder =
        zbus::connection::Builder::address(address).map_err(|e| ClientError::BadAddress {
            address: address.to_string(),
            detail: describe_zbus(&e),
        })?;
    let attempt = builder.method_timeout(CALL_TIMEOUT).build();
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(ClientError::Connect {
            what: what.to_string(),
            detail: describe_zbus(&e),
        }),
        Err(_) => Err(ClientError::Connect {
            what: what.to_string(),
            detail: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        }),
    }
}

/// Open the bus at `address`, or the session bus (see [`session_address`]) when `None`.
pub async fn open_bus(address: Option<&str>) -> Result<Connection, ClientError> {
    match address {
        Some(addr) => connect(addr, &format!("the bus at {addr}")).await,
        None => {
            let (addr, what) = session_address()?;
            connect(&addr, &what).await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A runtime dir with `agentos/bus-address` holding `text`, modes as `./scripts/start` sets.
    fn runtime_dir(text: &str) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(HEADLESS_DIR);
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o700);
        let file = dir.join(ADDRESS_FILE);
        std::fs::write(&file, text).unwrap();
        chmod(&file, 0o600);
        (tmp, file)
    }

    #[test]
    fn where_the_file_is() {
        assert_eq!(
            address_file_in(Some("/run/user/1000".into()), 1000),
            Path::new("/run/user/1000/agentos/bus-address")
        );
        assert_eq!(
            address_file_in(None, 1000),
            Path::new("/tmp/agentos-1000/bus-address")
        );
        // A relative XDG_RUNTIME_DIR is ignored, as the spec says.
        assert_eq!(
            address_file_in(Some("run".into()), 7),
            Path::new("/tmp/agentos-7/bus-address")
        );
    }

    #[test]
    fn a_good_file_is_read() {
        let (_tmp, file) = runtime_dir("unix:path=/run/user/1000/agentos/bus,guid=1234\n");
        assert_eq!(
            read_address_file(&file, our_uid()).unwrap().as_deref(),
            Some("unix:path=/run/user/1000/agentos/bus,guid=1234")
        );
        let missing = file.with_file_name("nothing");
        assert!(read_address_file(&missing, our_uid()).unwrap().is_none());
        let no_dir = file.parent().unwrap().join("no/bus-address");
        assert!(read_address_file(&no_dir, our_uid()).unwrap().is_none());
    }

    #[test]
    fn files_others_could_write_are_refused() {
        let (_tmp, file) = runtime_dir("unix:path=/x\n");
        chmod(&file, 0o622);
        let e = read_address_file(&file, our_uid()).unwrap_err().to_string();
        assert!(e.contains("writable by others (mode 622)"), "{e}");
        chmod(&file, 0o600);
        chmod(file.parent().unwrap(), 0o777);
        let e = read_address_file(&file, our_uid()).unwrap_err().to_string();
        assert!(e.contains("writable by others (mode 777)"), "{e}");
        chmod(file.parent().unwrap(), 0o700);
        // Someone else's file (here: as if we were another user).
        let e = read_address_file(&file, our_uid() + 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not to you"), "{e}");
    }

    #[test]
    fn links_and_junk_are_refused() {
        let (tmp, file) = runtime_dir("unix:path=/x\n");
        let target = tmp.path().join("elsewhere");
        std::fs::rename(&file, &target).unwrap();
        std::os::unix::fs::symlink(&target, &file).unwrap();
        let e = read_address_file(&file, our_uid()).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, "unix:path=/x\nunix:path=/y\n").unwrap();
        chmod(&file, 0o600);
        let e = read_address_file(&file, our_uid()).unwrap_err().to_string();
        assert!(e.contains("one bus address"), "{e}");
    }

    #[test]
    fn rules() {
        let p = Path::new("/f");
        assert!(check_owner_and_mode(p, true, 5, 0o100600, 5).is_ok());
        assert!(check_owner_and_mode(p, true, 5, 0o100644, 5).is_ok());
        assert!(check_owner_and_mode(p, true, 5, 0o100620, 5).is_err());
        assert!(check_owner_and_mode(p, true, 5, 0o100602, 5).is_err());
        assert!(check_owner_and_mode(p, true, 0, 0o100600, 5).is_err());
        assert!(check_owner_and_mode(p, false, 5, 0o100600, 5).is_err());
    }

    #[test]
    fn socket_paths_are_escaped() {
        assert_eq!(
            escape_address_value(Path::new("/run/user/1000/bus")),
            "/run/user/1000/bus"
        );
        assert_eq!(escape_address_value(Path::new("/a b,c")), "/a%20b%2cc");
    }
}

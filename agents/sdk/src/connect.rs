//! Connecting an agent to the kernel: the socket inherited at launch, or self-registration over
//! the session bus (after checking that the kernel's name belongs to our own user).

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use agentos_dbus_interfaces::names::{AGENT_FD_ENV, AGENT_SERVICE_PATH, KERNEL_BUS_NAME};
use agentos_dbus_interfaces::proxies::{Host1Proxy, Kernel1Proxy};
use tokio::sync::watch;
use zbus::proxy::CacheProperties;
use zbus::zvariant::Fd;

use crate::service::Service;
use crate::Agent;

/// Why an agent could not connect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    #[error(
        "{AGENT_FD_ENV} is not set: this agent must be started by agentosd (or use register())"
    )]
    NotLaunched,
    #[error("{AGENT_FD_ENV} does not name a usable socket: {0}")]
    BadFd(String),
    #[error("D-Bus: {0}")]
    Bus(#[from] zbus::Error),
    #[error("the kernel refused: {0}")]
    Kernel(#[from] agentos_dbus_interfaces::Error),
    #[error("{0}")]
    NotTheKernel(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Serve `agent` on `stream` (we are the client end); returns the connection.
async fn serve<A: Agent>(
    agent: A,
    stream: std::os::unix::net::UnixStream,
) -> Result<zbus::Connection, SdkError> {
    stream.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(stream)?;
    let (tx, rx) = watch::channel(None);
    let service = Service {
        agent: Arc::new(agent),
        host: rx,
        running: Arc::new(Mutex::new(HashMap::new())),
    };
    let conn = zbus::connection::Builder::unix_stream(stream)
        .p2p()
        .serve_at(AGENT_SERVICE_PATH, service)?
        .build()
        .await?;
    let host = Host1Proxy::builder(&conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    tx.send_replace(Some(host));
    // Keep the sender alive as long as the connection: tasks wait on it.
    std::mem::forget(tx);
    Ok(conn)
}

/// Wait until the kernel closes the connection.
async fn closed(conn: &zbus::Connection) {
    use futures_util::StreamExt;
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface("org.agentos.Internal.Never")
        .map(|b| b.build());
    let Ok(rule) = rule else { return };
    let Ok(mut stream) = zbus::MessageStream::for_match_rule(rule, conn, Some(1)).await else {
        return;
    };
    while let Some(Ok(_)) = stream.next().await {}
}

/// Run an agent launched by the kernel until the kernel disconnects.
pub async fn run<A: Agent>(agent: A) -> Result<(), SdkError> {
    let raw: i32 = std::env::var(AGENT_FD_ENV)
        .map_err(|_| SdkError::NotLaunched)?
        .parse()
        .map_err(|_| SdkError::BadFd("not a number".into()))?;
    if raw < 3 {
        return Err(SdkError::BadFd(format!("{raw} is a standard stream")));
    }
    // The fd must be an open socket before we take ownership of it.
    let stat = rustix::fs::fstat(unsafe_borrow(raw)).map_err(|e| SdkError::BadFd(e.to_string()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Socket {
        return Err(SdkError::BadFd(format!("fd {raw} is not a socket")));
    }
    #[allow(unsafe_code)]
    // SAFETY: the fd was inherited from the kernel for this purpose, is open (fstat above) and is
    // owned by nothing else in this process; we take it once.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let conn = serve(agent, std::os::unix::net::UnixStream::from(fd)).await?;
    closed(&conn).await;
    Ok(())
}

/// [`run`] for an agent's `main`: on failure, say why on stderr (prefixed with the program's
/// name) and exit with status 1.
pub async fn run_or_exit<A: Agent>(agent: A) {
    if let Err(e) = run(agent).await {
        let program = std::env::args().next().unwrap_or_else(|| "agent".into());
        let name = std::path::Path::new(&program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        eprintln!("{}: {e}", name.unwrap_or(program));
        std::process::exit(1);
    }
}

#[allow(unsafe_code)]
fn unsafe_borrow(raw: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used for fstat right away; an invalid fd makes fstat fail with EBADF.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) }
}

/// A self-registered agent: its bus connection (kept for the registration) and its private one.
pub struct Registration {
    pub bus: zbus::Connection,
    pub kernel: zbus::Connection,
    /// The agent's object path on the kernel.
    pub path: String,
}

impl Registration {
    /// Wait until the kernel closes the private connection.
    pub async fn closed(&self) {
        closed(&self.kernel).await;
    }
}

/// Register an agent started outside the kernel. `address` is a D-Bus address (None: the
/// session bus). Its identity is decided by the kernel from this process (Flatpak app id or
/// "host"); `agent_id` must match it for Flatpak apps.
pub async fn register<A: Agent>(
    agent: A,
    agent_id: &str,
    address: Option<&str>,
) -> Result<Registration, SdkError> {
    let bus = match address {
        Some(a) => zbus::connection::Builder::address(a)?.build().await?,
        None => zbus::Connection::session().await?,
    };
    verify_kernel_owner(&bus).await?;
    // Serve nothing on the bus, but answer: calls from other peers get UnknownObject at once.
    let _ = bus.object_server();
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let kernel = Kernel1Proxy::new(&bus).await?;
    let theirs_fd = OwnedFd::from(theirs);
    let (path, conn) = tokio::join!(
        kernel.register_agent(Fd::from(&theirs_fd), agent_id),
        serve(agent, ours)
    );
    let path = path?;
    let conn = conn?;
    Ok(Registration {
        bus,
        kernel: conn,
        path: path.to_string(),
    })
}

/// Any process may take a free bus name: make sure the kernel's belongs to our own user.
async fn verify_kernel_owner(bus: &zbus::Connection) -> Result<(), SdkError> {
    let dbus = zbus::fdo::DBusProxy::new(bus).await?;
    let name = zbus::names::BusName::try_from(KERNEL_BUS_NAME).map_err(zbus::Error::from)?;
    let uid = dbus.get_connection_unix_user(name).await.map_err(|e| {
        SdkError::NotTheKernel(format!("agentosd is not running on this bus ({e})"))
    })?;
    let me = rustix::process::getuid().as_raw();
    if uid != me {
        return Err(SdkError::NotTheKernel(format!(
            "{KERNEL_BUS_NAME} is owned by uid {uid}, not by us ({me})"
        )));
    }
    Ok(())
}

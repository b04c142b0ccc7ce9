//! Connecting a launched agent to the kernel over the socket it inherited, and serving
//! `AgentService1` on such a private connection (self-registration is in `register.rs`).

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use agentos_dbus_interfaces::names::{AGENT_FD_ENV, AGENT_SERVICE_PATH};
use agentos_dbus_interfaces::proxies::Host1Proxy;
use tokio::sync::watch;
use zbus::proxy::CacheProperties;

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
pub(crate) async fn serve<A: Agent>(
    agent: Arc<A>,
    stream: std::os::unix::net::UnixStream,
) -> Result<zbus::Connection, SdkError> {
    // Waits for input only: the kernel reading our replies does not wake us.
    let socket = agentos_p2p::split(stream)?;
    let (tx, rx) = watch::channel(None);
    let service = Service {
        agent,
        host: rx,
        running: Arc::new(Mutex::new(HashMap::new())),
    };
    let conn = zbus::connection::Builder::socket(socket)
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
    let conn = serve(Arc::new(agent), std::os::unix::net::UnixStream::from(fd)).await?;
    agentos_p2p::until_closed(&conn).await;
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

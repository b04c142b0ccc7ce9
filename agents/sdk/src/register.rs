//! Self-registration: an agent started outside the kernel passes it one end of a socket over the
//! bus, after checking that the kernel's name belongs to our own user; `stay_registered` does it
//! again whenever the kernel restarts.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use agentos_dbus_interfaces::names::KERNEL_BUS_NAME;
use agentos_dbus_interfaces::proxies::Kernel1Proxy;
use futures_util::StreamExt;
use zbus::zvariant::Fd;

use agentos_p2p::until_closed;

use crate::connect::{serve, SdkError};
use crate::Agent;

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
        until_closed(&self.kernel).await;
    }
}

async fn connect(address: Option<&str>) -> Result<zbus::Connection, SdkError> {
    let bus = match address {
        Some(a) => zbus::connection::Builder::address(a)?.build().await?,
        None => zbus::Connection::session().await?,
    };
    // Serve nothing on the bus, but answer: calls from other peers get UnknownObject at once.
    let _ = bus.object_server();
    Ok(bus)
}

/// Register an agent started outside the kernel. `address` is a D-Bus address (None: the
/// session bus). Its identity is decided by the kernel from this process (Flatpak app id or
/// "host"); `agent_id` must match it for Flatpak apps.
pub async fn register<A: Agent>(
    agent: A,
    agent_id: &str,
    address: Option<&str>,
) -> Result<Registration, SdkError> {
    let bus = connect(address).await?;
    let (path, kernel) = register_on(&bus, Arc::new(agent), agent_id).await?;
    Ok(Registration { bus, kernel, path })
}

async fn register_on<A: Agent>(
    bus: &zbus::Connection,
    agent: Arc<A>,
    agent_id: &str,
) -> Result<(String, zbus::Connection), SdkError> {
    verify_kernel_owner(bus).await?;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let kernel = Kernel1Proxy::new(bus).await?;
    let theirs_fd = OwnedFd::from(theirs);
    // Both at once (the kernel completes the handshake before it answers), but a refusal must
    // not leave us waiting for a handshake that will never come.
    let register = async {
        kernel
            .register_agent(Fd::from(&theirs_fd), agent_id)
            .await
            .map_err(SdkError::from)
    };
    let (path, conn) = tokio::try_join!(register, serve(agent, ours))?;
    Ok((path.to_string(), conn))
}

/// Register, and register again each time the kernel comes back after going away. Returns only
/// when the kernel refuses the agent (access denied, invalid argument) or the bus is lost.
pub async fn stay_registered<A: Agent>(
    agent: A,
    agent_id: &str,
    address: Option<&str>,
) -> Result<(), SdkError> {
    let agent = Arc::new(agent);
    let bus = connect(address).await?;
    loop {
        wait_for_kernel(&bus).await?;
        match register_on(&bus, Arc::clone(&agent), agent_id).await {
            Ok((path, conn)) => {
                tracing::info!(%path, "registered with the kernel");
                until_closed(&conn).await;
                tracing::info!("the kernel went away; registering again when it is back");
            }
            Err(SdkError::Kernel(
                e @ (agentos_dbus_interfaces::Error::AccessDenied(_)
                | agentos_dbus_interfaces::Error::InvalidArgument(_)),
            )) => return Err(SdkError::Kernel(e)),
            Err(e) => {
                tracing::warn!(error = %e, "registration failed; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Wait until some process owns the kernel's name.
async fn wait_for_kernel(bus: &zbus::Connection) -> Result<(), SdkError> {
    let dbus = zbus::fdo::DBusProxy::new(bus).await?;
    let mut changes = dbus
        .receive_name_owner_changed_with_args(&[(0, KERNEL_BUS_NAME)])
        .await?;
    let name = zbus::names::BusName::try_from(KERNEL_BUS_NAME).map_err(zbus::Error::from)?;
    if dbus.name_has_owner(name).await.map_err(zbus::Error::from)? {
        return Ok(());
    }
    while let Some(change) = changes.next().await {
        if change.args().is_ok_and(|a| a.new_owner().is_some()) {
            return Ok(());
        }
    }
    Err(SdkError::Bus(zbus::Error::Failure(
        "the bus connection closed".into(),
    )))
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

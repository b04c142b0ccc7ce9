//! Self-registration: an agent started outside the kernel passes it one end of a socket over the
//! bus, to the kernel `agentos-client` verified (its owner runs as our own user; the call goes to
//! its unique name); `stay_registered` does it again, verifying anew, whenever the kernel
//! restarts.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use agentos_client::{Client, ClientError};
use zbus::zvariant::Fd;

use agentos_p2p::until_closed;

use crate::connect::{serve, SdkError};
use crate::Agent;

/// How long to wait before trying again after a failed registration.
const RETRY: Duration = Duration::from_millis(500);

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

/// The bus at `address` (None: the session bus, or the bus `./scripts/start` started).
async fn connect(address: Option<&str>) -> Result<zbus::Connection, SdkError> {
    let bus = agentos_client::open_bus(address).await.map_err(sdk_error)?;
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
    let client = Client::with_connection(bus.clone())
        .await
        .map_err(sdk_error)?;
    let (path, kernel) = register_on(&client, Arc::new(agent), agent_id).await?;
    Ok(Registration { bus, kernel, path })
}

/// Register with the kernel `client` verified: the call goes to its unique name, so a process
/// that took `org.agentos.Kernel` since can neither receive the socket nor answer.
async fn register_on<A: Agent>(
    client: &Client,
    agent: Arc<A>,
    agent_id: &str,
) -> Result<(String, zbus::Connection), SdkError> {
    let kernel = client.kernel().await.map_err(sdk_error)?;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
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

/// Register, and register again each time the kernel comes back after going away (the new
/// owner of `org.agentos.Kernel` is verified each time). Returns only when the kernel refuses
/// the agent (access denied, invalid argument) or the bus is lost.
pub async fn stay_registered<A: Agent>(
    agent: A,
    agent_id: &str,
    address: Option<&str>,
) -> Result<(), SdkError> {
    let agent = Arc::new(agent);
    let bus = connect(address).await?;
    let client = Client::when_running(bus).await.map_err(sdk_error)?;
    loop {
        // Looks the owner up again (the kernel may have restarted) and waits while there is none.
        match client.wait_for_kernel().await {
            Ok(_) => {}
            Err(e @ ClientError::Disconnected) => return Err(sdk_error(e)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot trust the kernel's name; waiting for it to change hands");
                tokio::select! {
                    () = client.owner_changed() => {}
                    () = tokio::time::sleep(RETRY) => {}
                }
                continue;
            }
        }
        match register_on(&client, Arc::clone(&agent), agent_id).await {
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
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// The SDK's error for a failure to reach or trust the kernel.
fn sdk_error(e: ClientError) -> SdkError {
    match e {
        ClientError::Bus(e) => SdkError::Bus(e),
        other => SdkError::NotTheKernel(other.to_string()),
    }
}

//! Connecting to agentosd through `agentos-client`: the bus is found (or given with
//! `--address`), the owner of `org.agentos.Kernel` verified to run as this user, and every call
//! pinned to that verified unique name.

use agentos_client::Client;
use agentos_dbus_interfaces::proxies::{Kernel1Proxy, Task1Proxy};

use crate::error::Result;

/// The verified kernel every subcommand talks to.
pub struct Kernel {
    pub client: Client,
    /// `org.agentos.Kernel1`, pinned to the verified unique name.
    pub proxy: Kernel1Proxy<'static>,
}

impl Kernel {
    /// A proxy for the task object at `path`, on the verified kernel.
    pub async fn task(&self, path: &str) -> Result<Task1Proxy<'static>> {
        Ok(self.client.task_at(path).await?)
    }
}

/// Connect to the bus at `address` (the session bus, or the bus `./scripts/start` started, when
/// `None`) and verify the kernel.
pub async fn connect(address: Option<&str>) -> Result<Kernel> {
    let client = match address {
        Some(address) => Client::at_address(address).await?,
        None => Client::new().await?,
    };
    let proxy = client.kernel().await?;
    Ok(Kernel { client, proxy })
}

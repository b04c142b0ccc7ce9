//! What callers can ask of the kernel, one concern a file: delegation, tool calls, an agent's
//! reports on its tasks, direct calls into agents, grants, and what callers may read. Each
//! operation checks its arguments and the caller's rights, then acts on the kernel's parts.

pub mod calls;
pub mod delegate;
pub mod grants;
pub mod models;
pub mod queries;
pub mod results;
pub mod tools;

use agentos_dbus_interfaces::{Capability, Error};

fn capability(name: &str) -> Result<&'static Capability, Error> {
    Capability::lookup(name)
        .ok_or_else(|| Error::InvalidArgument(format!("unknown capability {name:?}")))
}

/// Run blocking work (files, the store) off the async thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Failed(format!("internal error: {e}")))?
}

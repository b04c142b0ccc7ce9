//! `org.agentos.AgentService1`, served by the SDK on the private connection only. Calls that
//! do not come from the kernel end of that connection are refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agentos_dbus_interfaces::proxies::Host1Proxy;
use agentos_dbus_interfaces::{ByteBuf, Error};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use zbus::message::Header;
use zbus::zvariant::{Fd, OwnedValue};

use crate::{Agent, Task};

pub(crate) struct Service<A: Agent> {
    pub agent: Arc<A>,
    pub host: watch::Receiver<Option<Host1Proxy<'static>>>,
    pub running: Arc<Mutex<HashMap<u64, AbortHandle>>>,
}

/// On a peer-to-peer connection messages carry no sender: one with a sender was routed by a bus,
/// so it is not from the kernel at the other end of our socket.
fn from_kernel(hdr: &Header<'_>) -> Result<(), Error> {
    match hdr.sender() {
        None => Ok(()),
        Some(s) => Err(Error::AccessDenied(format!(
            "{s} is not the kernel; only the kernel drives this agent"
        ))),
    }
}

impl<A: Agent> Service<A> {
    async fn host(&self) -> Result<Host1Proxy<'static>, Error> {
        let mut rx = self.host.clone();
        let host = rx
            .wait_for(|h| h.is_some())
            .await
            .map_err(|_| Error::Failed("the connection to the kernel is closing".into()))?;
        host.clone()
            .ok_or_else(|| Error::Failed("no kernel connection".into()))
    }
}

#[zbus::interface(name = "org.agentos.AgentService1")]
impl<A: Agent> Service<A> {
    async fn start(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        task: u64,
        goal: String,
        context: HashMap<String, OwnedValue>,
    ) -> Result<(), Error> {
        from_kernel(&hdr)?;
        let host = self.host().await?;
        let agent = Arc::clone(&self.agent);
        let running = Arc::clone(&self.running);
        let t = Task {
            id: task,
            goal,
            context,
            host: host.clone(),
        };
        let handle = tokio::spawn(async move {
            let outcome = agent.run(t).await;
            running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&task);
            let sent = match outcome {
                Ok(out) => {
                    let fds: Vec<(&str, Fd<'_>)> = out
                        .artifacts
                        .iter()
                        .map(|(n, f)| (n.as_str(), Fd::from(f)))
                        .collect();
                    match host.complete(task, &out.result, &fds).await {
                        // The kernel refused the result (a bad artifact, say): fail the task
                        // with the reason rather than leave it running.
                        Err(Error::InvalidArgument(why)) => {
                            host.fail(task, &format!("the kernel refused the result: {why}"))
                                .await
                        }
                        other => other,
                    }
                }
                Err(message) => host.fail(task, &message).await,
            };
            if let Err(e) = sent {
                tracing::warn!(task, error = %e, "could not report the end of a task");
            }
        });
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task, handle.abort_handle());
        Ok(())
    }

    async fn cancel(&self, #[zbus(header)] hdr: Header<'_>, task: u64) -> Result<(), Error> {
        from_kernel(&hdr)?;
        if let Some(h) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&task)
        {
            h.abort();
        }
        Ok(())
    }

    async fn call(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        method: String,
        payload: ByteBuf,
    ) -> Result<ByteBuf, Error> {
        from_kernel(&hdr)?;
        self.agent
            .call(&method, payload.into_vec())
            .await
            .map(ByteBuf::from)
    }
}

//! `org.agentos.AgentService1`, served by the SDK on the private connection only. Calls that
//! do not come from the kernel end of that connection are refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agentos_dbus_interfaces::proxies::Host1Proxy;
use agentos_dbus_interfaces::{ByteBuf, Error};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use zbus::message::Header;
use zbus::zvariant::OwnedValue;

use crate::{report, Agent, Task};

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
        let run = tokio::spawn(async move { agent.run(t).await });
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task, run.abort_handle());
        tokio::spawn(async move {
            // A canceled run was aborted; the kernel, which asked for it, needs no report.
            let Some(ran) = report::ran(run).await else {
                return;
            };
            running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&task);
            if let Err(e) = report::report(&host, task, ran).await {
                tracing::warn!(task, error = %e, "could not report the end of a task");
            }
        });
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

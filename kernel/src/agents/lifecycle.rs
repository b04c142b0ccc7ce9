//! How agent instances come and go: launched on demand (one launch at a time per agent), spoken
//! to over a private peer-to-peer D-Bus connection, and when one goes away its unfinished tasks
//! fail at once.

use std::sync::{Arc, Weak};

use agentos_dbus_interfaces::proxies::AgentService1Proxy;
use agentos_dbus_interfaces::{Error, TaskState};
use zbus::proxy::CacheProperties;

use crate::agents::{Departure, Instance};
use crate::config::{AGENT_CANCEL_TIMEOUT, AGENT_CONNECT_TIMEOUT};
use crate::events::Event;
use crate::kernel::Kernel;

/// How the kernel's end of an agent's private connection is made and served: the socket's
/// limits, zbus's queue, and the function that starts serving `org.agentos.Host1` for an agent
/// on a built connection (returning once it listens), refusing every call once the instance's
/// departure is marked. The bus layer provides it; the core only knows it as this value.
#[derive(Clone, Copy)]
pub struct HostServer {
    pub limits: agentos_p2p::Limits,
    pub max_queued: usize,
    pub serve: fn(zbus::Connection, Weak<Kernel>, String, Departure) -> Serving,
}

/// Serving started on a connection: resolves once it listens.
pub type Serving = std::pin::Pin<Box<dyn std::future::Future<Output = zbus::Result<()>> + Send>>;

impl Kernel {
    /// The connected instance of `agent`, launching it if the kernel can.
    pub(crate) async fn ensure_instance(self: &Arc<Self>, agent: &str) -> Result<Instance, Error> {
        if let Some(i) = self.agents.instance(agent)? {
            return Ok(i);
        }
        let lock = self.agents.launch_lock(agent);
        let _launching = lock.lock().await;
        if let Some(i) = self.agents.instance(agent)? {
            return Ok(i);
        }
        let plan = self.agents.launch_plan(agent)?;
        // The program may have changed since it was found: checked again, and compared with
        // what it was when the agent's grants were given.
        if let Err(why) = crate::discovery::check_exec(&plan.exec, plan.sandboxed) {
            tracing::warn!(agent, "agent {agent} cannot run: {why}");
            return Err(Error::Failed(format!("agent {agent} cannot run: {why}")));
        }
        self.check_agent_before_launch(agent, &plan.exec).await;
        let (mut child, socket) = crate::launcher::spawn(&plan.exec, agent, plan.sandboxed)
            .map_err(|e| Error::Failed(format!("cannot run {}: {e}", plan.exec.display())))?;
        let generation = self.next_generation();
        let instance = match self.connect_instance(agent, generation, socket).await {
            Ok(i) => i,
            Err(e) => {
                let _ = child.start_kill();
                return Err(e);
            }
        };
        tracing::info!(agent, pid = child.id(), "agent launched");
        let kernel = Arc::downgrade(self);
        let id = agent.to_string();
        tokio::spawn(async move {
            let status = child.wait().await;
            let why = match status {
                Ok(s) => format!("exited ({s})"),
                Err(e) => format!("was lost ({e})"),
            };
            if let Some(k) = kernel.upgrade() {
                k.agent_gone(&id, generation, &why).await;
            }
        });
        Ok(instance)
    }

    /// Speak peer-to-peer D-Bus (as the server) on `socket`, serve Host1 for `agent` on it, and
    /// record the instance.
    pub(crate) async fn connect_instance(
        self: &Arc<Self>,
        agent: &str,
        generation: u64,
        socket: std::os::unix::net::UnixStream,
    ) -> Result<Instance, Error> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            Error::Failed(format!("agent {agent}: {what}: {e}"))
        };
        let server = self.host_server;
        let socket =
            agentos_p2p::split_limited(socket, server.limits).map_err(|e| failed("socket", &e))?;
        let build = zbus::connection::Builder::socket(socket)
            .server(zbus::Guid::generate())
            .map_err(|e| failed("connection", &e))?
            .p2p()
            .max_queued(server.max_queued)
            .build();
        let conn = tokio::time::timeout(AGENT_CONNECT_TIMEOUT, build)
            .await
            .map_err(|_| Error::Timeout(format!("agent {agent} did not connect in time")))?
            .map_err(|e| failed("handshake", &e))?;
        let departure = Departure::default();
        (server.serve)(
            conn.clone(),
            Arc::downgrade(self),
            agent.to_string(),
            departure.clone(),
        )
        .await
        .map_err(|e| failed("serving Host1", &e))?;
        let service = AgentService1Proxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| failed("proxy", &e))?;
        let instance = Instance {
            generation,
            conn: conn.clone(),
            service,
            departure,
        };
        if let Err(e) = self.agents.attach(agent, instance.clone()) {
            // Served already: nothing more is answered on it.
            instance.departure.mark();
            let _ = conn.close().await;
            return Err(e);
        }
        self.events
            .publish(Event::AgentConnected(agent.to_string()));
        // The connection's message stream ends (or errs) when the peer goes away.
        let kernel = Arc::downgrade(self);
        let id = agent.to_string();
        tokio::spawn(async move {
            agentos_p2p::until_closed(&conn).await;
            drop(conn);
            if let Some(k) = kernel.upgrade() {
                k.agent_gone(&id, generation, "closed its connection").await;
            }
        });
        Ok(instance)
    }

    /// An agent instance went away: close its connection (a process it left holding the other
    /// end can no longer act as the agent), fail its unfinished tasks at once and cancel what
    /// they delegated, so nobody waits on them.
    pub(crate) async fn agent_gone(&self, agent: &str, generation: u64, why: &str) {
        let Some(departed) = self.agents.detach(agent, generation) else {
            return;
        };
        tokio::spawn(departed.conn.close());
        let tasks = self.tasks.unfinished_of(agent);
        tracing::warn!(agent, why, tasks = tasks.len(), "agent went away");
        for id in tasks {
            let msg = format!("agent {agent} {why} while working on the task");
            if self.finish(id, TaskState::Failed, &msg, None) {
                self.cancel_subtree(id, "canceled: the agent above it went away", false);
            }
        }
        self.events
            .publish(Event::AgentDisconnected(agent.to_string()));
        if departed.forgotten {
            self.events.publish(Event::AgentRemoved(agent.to_string()));
        }
    }

    /// Ask an agent (if connected) to stop working on a task; best effort.
    pub(crate) fn tell_agent_cancel(&self, agent: &str, task: u64) {
        let Ok(Some(instance)) = self.agents.instance(agent) else {
            return;
        };
        tokio::spawn(async move {
            let _ = tokio::time::timeout(AGENT_CANCEL_TIMEOUT, instance.service.cancel(task)).await;
        });
    }

    /// Register an agent that started itself and passed a socket: its identity is `principal`
    /// (established from the bus connection by the caller of this function). Returns its id.
    pub(crate) async fn register(
        self: &Arc<Self>,
        principal: &str,
        flatpak: bool,
        socket: std::os::unix::net::UnixStream,
    ) -> Result<String, Error> {
        if self.agents.add_registered(principal, flatpak)? {
            self.events
                .publish(Event::AgentAdded(principal.to_string()));
        }
        let generation = self.next_generation();
        if let Err(e) = self.connect_instance(principal, generation, socket).await {
            // Nothing connected: a slot made for it alone is forgotten again.
            if self.agents.forget_unconnected(principal) {
                self.events
                    .publish(Event::AgentRemoved(principal.to_string()));
            }
            return Err(e);
        }
        Ok(principal.to_string())
    }
}

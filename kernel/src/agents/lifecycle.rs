//! Agents the kernel knows: their manifests, their connected instance (a private peer-to-peer
//! D-Bus connection), launching on demand, and what happens when one goes away.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentos_dbus_interfaces::names::{self, KERNEL_PATH};
use agentos_dbus_interfaces::proxies::AgentService1Proxy;
use agentos_dbus_interfaces::{Capability, Error, GrantInfo, Lifetime, TaskState};
use zbus::proxy::CacheProperties;

use crate::kernel::{Config, Kernel};
use crate::manifest::Manifest;
use crate::policy::Grant;

/// How a known agent came to be known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// From a manifest; the kernel launches it on demand.
    Manifest { exec: Option<PathBuf> },
    /// It registered itself over the bus; it cannot be relaunched by the kernel.
    Registered,
}

/// A connected agent instance.
#[derive(Clone)]
pub struct Instance {
    pub generation: u64,
    pub conn: zbus::Connection,
    pub service: AgentService1Proxy<'static>,
}

/// One known agent.
pub struct AgentSlot {
    pub manifest: Manifest,
    pub origin: Origin,
    pub instance: Option<Instance>,
}

impl AgentSlot {
    /// Whether the agent may ask for a capability at all (its manifest's ceiling).
    pub fn declares(&self, capability: &Capability) -> bool {
        self.manifest.declares(capability)
    }

    pub fn info(&self) -> agentos_dbus_interfaces::AgentInfo {
        agentos_dbus_interfaces::AgentInfo {
            id: self.manifest.id.clone(),
            name: self.manifest.name.clone(),
            description: self.manifest.description.clone(),
            path: zbus::zvariant::OwnedObjectPath::try_from(names::agent_path(&self.manifest.id))
                .unwrap_or_else(|_| zbus::zvariant::OwnedObjectPath::default()),
            capabilities: self.manifest.capability_names(),
            handles: self.manifest.handles.clone(),
            connected: self.instance.is_some(),
        }
    }
}

/// Slots for every discovered manifest.
pub fn discover_slots(config: &Config) -> std::collections::BTreeMap<String, AgentSlot> {
    let (found, problems) = crate::discovery::discover(&config.agent_dirs);
    for p in problems {
        tracing::warn!("skipping agent manifest: {p}");
    }
    found
        .into_iter()
        .map(|(manifest, file)| {
            let exec = crate::discovery::resolve_exec(&manifest.exec, &config.exec_dirs);
            if exec.is_none() {
                tracing::warn!(agent = %manifest.id, file = %file.display(), exec = %manifest.exec, "agent executable not found");
            }
            let id = manifest.id.clone();
            (id, AgentSlot { manifest, origin: Origin::Manifest { exec }, instance: None })
        })
        .collect()
}

/// A stored grant as a policy grant, if the kernel understands it.
pub fn grant_from_info(g: &GrantInfo) -> Option<Grant> {
    let capability = Capability::lookup(&g.capability)?;
    Some(Grant {
        principal: g.principal.clone(),
        capability,
        scope: capability.normalize_scope(&g.scope).ok()?,
        lifetime: Lifetime::parse(&g.lifetime)?,
        granted_at: g.granted_at,
    })
}

impl Kernel {
    /// The connected instance of `agent`, launching it if the kernel can.
    pub(crate) async fn ensure_instance(self: &Arc<Self>, agent: &str) -> Result<Instance, Error> {
        if let Some(i) = self.connected(agent)? {
            return Ok(i);
        }
        let _launching = self.launch_lock.lock().await;
        if let Some(i) = self.connected(agent)? {
            return Ok(i);
        }
        let sandboxed = self
            .inner()
            .agents
            .get(agent)
            .is_some_and(|s| s.manifest.sandbox);
        let exec = match self.inner().agents.get(agent).map(|s| s.origin.clone()) {
            Some(Origin::Manifest { exec: Some(exec) }) => exec,
            Some(Origin::Manifest { exec: None }) => {
                return Err(Error::Failed(format!(
                    "the executable of agent {agent} was not found"
                )))
            }
            Some(Origin::Registered) => {
                return Err(Error::Failed(format!("agent {agent} is not connected")))
            }
            None => return Err(Error::UnknownAgent(format!("no agent {agent}"))),
        };
        let (mut child, socket) = crate::launcher::spawn(&exec, agent, sandboxed)
            .map_err(|e| Error::Failed(format!("cannot run {}: {e}", exec.display())))?;
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

    fn connected(&self, agent: &str) -> Result<Option<Instance>, Error> {
        let inner = self.inner();
        let slot = inner
            .agents
            .get(agent)
            .ok_or_else(|| Error::UnknownAgent(format!("no agent {agent}")))?;
        Ok(slot.instance.clone())
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
        let socket = agentos_p2p::split(socket).map_err(|e| failed("socket", &e))?;
        let host = crate::bus::host_iface::HostIface::new(Arc::downgrade(self), agent.to_string());
        let build = zbus::connection::Builder::socket(socket)
            .server(zbus::Guid::generate())
            .map_err(|e| failed("connection", &e))?
            .p2p()
            .serve_at(KERNEL_PATH, host)
            .map_err(|e| failed("connection", &e))?
            .build();
        let conn = tokio::time::timeout(Duration::from_secs(10), build)
            .await
            .map_err(|_| Error::Timeout(format!("agent {agent} did not connect in time")))?
            .map_err(|e| failed("handshake", &e))?;
        let service = AgentService1Proxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| failed("proxy", &e))?;
        let instance = Instance {
            generation,
            conn: conn.clone(),
            service,
        };
        {
            let mut inner = self.inner();
            let slot = inner
                .agents
                .get_mut(agent)
                .ok_or_else(|| Error::UnknownAgent(agent.to_string()))?;
            slot.instance = Some(instance.clone());
        }
        crate::bus::agent_iface::announce_connected(self, agent).await;
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

    /// An agent instance went away: fail its unfinished tasks at once and cancel what they
    /// delegated, so nobody waits on them.
    pub(crate) async fn agent_gone(&self, agent: &str, generation: u64, why: &str) {
        let (tasks, registered) = {
            let mut inner = self.inner();
            let Some(slot) = inner.agents.get_mut(agent) else {
                return;
            };
            if slot.instance.as_ref().map(|i| i.generation) != Some(generation) {
                return;
            }
            slot.instance = None;
            let registered = slot.origin == Origin::Registered;
            (inner.tasks.unfinished_of(agent), registered)
        };
        tracing::warn!(agent, why, tasks = tasks.len(), "agent went away");
        for id in tasks {
            let msg = format!("agent {agent} {why} while working on the task");
            if self.finish(id, TaskState::Failed, &msg, None).await {
                self.cancel_subtree(id, "canceled: the agent above it went away", false)
                    .await;
            }
        }
        if registered {
            self.inner().agents.remove(agent);
            crate::bus::agent_iface::unexport(self, agent).await;
        } else {
            crate::bus::agent_iface::announce_connected(self, agent).await;
        }
    }

    /// Ask an agent (if connected) to stop working on a task; best effort.
    pub(crate) fn tell_agent_cancel(&self, agent: &str, task: u64) {
        let Some(instance) = self
            .inner()
            .agents
            .get(agent)
            .and_then(|s| s.instance.clone())
        else {
            return;
        };
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), instance.service.cancel(task)).await;
        });
    }

    /// Register an agent that started itself and passed a socket: its identity is `principal`
    /// (established from the bus connection by the caller of this function).
    pub(crate) async fn register(
        self: &Arc<Self>,
        principal: &str,
        socket: std::os::unix::net::UnixStream,
    ) -> Result<String, Error> {
        {
            let mut inner = self.inner();
            match inner.agents.get(principal) {
                Some(slot) if slot.instance.is_some() => {
                    return Err(Error::Busy(format!(
                        "an agent with identity {principal} is already connected"
                    )));
                }
                Some(_) => {}
                None => {
                    // No manifest: the agent may ask for anything, each use still needs a grant.
                    let manifest = Manifest {
                        id: principal.to_string(),
                        name: principal.to_string(),
                        description: "A self-registered agent".into(),
                        exec: String::new(),
                        capabilities: agentos_dbus_interfaces::capability::CAPABILITIES
                            .iter()
                            .collect(),
                        handles: Vec::new(),
                        sandbox: false,
                    };
                    inner.agents.insert(
                        principal.to_string(),
                        AgentSlot {
                            manifest,
                            origin: Origin::Registered,
                            instance: None,
                        },
                    );
                }
            }
        }
        crate::bus::agent_iface::export(self, principal).await;
        let generation = self.next_generation();
        self.connect_instance(principal, generation, socket).await?;
        Ok(names::agent_path(principal))
    }
}

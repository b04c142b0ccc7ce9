//! `org.agentos.Kernel1` at `/org/agentos/Kernel`.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use agentos_dbus_interfaces::{names, AgentInfo, AuditRecord, Error, GrantInfo, TaskInfo};
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedFd, OwnedObjectPath, OwnedValue};

use super::{caller, live};
use crate::kernel::{store_err, Caller, Kernel};

pub struct KernelIface {
    kernel: Weak<Kernel>,
}

impl KernelIface {
    pub fn new(kernel: &Arc<Kernel>) -> KernelIface {
        KernelIface {
            kernel: Arc::downgrade(kernel),
        }
    }
}

/// Only the user's own host processes manage grants.
fn require_host(c: &Caller) -> Result<(), Error> {
    match c {
        Caller::Host | Caller::HostApp(_) => Ok(()),
        other => Err(Error::AccessDenied(format!(
            "{} may not manage grants; only the user can",
            other.principal()
        ))),
    }
}

/// The "timeout" option of a delegation.
pub(crate) fn timeout_option(options: &HashMap<String, OwnedValue>) -> Result<Option<u32>, Error> {
    for key in options.keys() {
        if key != "timeout" {
            return Err(Error::InvalidArgument(format!("unknown option {key:?}")));
        }
    }
    options
        .get("timeout")
        .map(|v| {
            u32::try_from(v).map_err(|_| {
                Error::InvalidArgument("the timeout option must be a u32 (seconds)".into())
            })
        })
        .transpose()
}

pub(crate) fn path_of(id: u64) -> Result<OwnedObjectPath, Error> {
    OwnedObjectPath::try_from(names::task_path(id)).map_err(|e| Error::Failed(e.to_string()))
}

fn check_limit(n: u32) -> Result<u32, Error> {
    if (1..=10_000).contains(&n) {
        Ok(n)
    } else {
        Err(Error::InvalidArgument(
            "limit must be between 1 and 10000".into(),
        ))
    }
}

#[zbus::interface(name = "org.agentos.Kernel1")]
impl KernelIface {
    async fn list_agents(&self) -> Result<Vec<AgentInfo>, Error> {
        let k = live(&self.kernel)?;
        let agents = k.inner().agents.values().map(|s| s.info()).collect();
        Ok(agents)
    }

    async fn delegate(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        agent: &str,
        goal: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<OwnedObjectPath, Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        let timeout = timeout_option(&options)?;
        let id = k.delegate(c, agent, goal, timeout).await?;
        path_of(id)
    }

    async fn list_tasks(&self, limit: u32) -> Result<Vec<TaskInfo>, Error> {
        let k = live(&self.kernel)?;
        let mut tasks = k
            .store()
            .list_tasks(check_limit(limit)?)
            .map_err(store_err)?;
        // Tasks of this run are fresher in memory than in the store.
        let inner = k.inner();
        for t in &mut tasks {
            if let Some(live) = inner.tasks.get(t.id) {
                *t = live.info();
            }
        }
        Ok(tasks)
    }

    async fn get_task(&self, id: u64) -> Result<TaskInfo, Error> {
        live(&self.kernel)?.task_info(id)
    }

    async fn cancel_task(&self, #[zbus(header)] hdr: Header<'_>, id: u64) -> Result<(), Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        k.cancel(&c, id).await
    }

    async fn list_grants(&self) -> Result<Vec<GrantInfo>, Error> {
        Ok(live(&self.kernel)?.list_grants())
    }

    async fn grant(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        principal: &str,
        capability: &str,
        scope: &str,
        lifetime: &str,
    ) -> Result<(), Error> {
        let k = live(&self.kernel)?;
        require_host(&caller(&k, &hdr).await?)?;
        k.grant(principal, capability, scope, lifetime).await
    }

    async fn revoke(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        principal: &str,
        capability: &str,
        scope: &str,
    ) -> Result<u32, Error> {
        let k = live(&self.kernel)?;
        require_host(&caller(&k, &hdr).await?)?;
        k.revoke(principal, capability, scope).await
    }

    async fn read_audit_log(&self, after: u64, limit: u32) -> Result<Vec<AuditRecord>, Error> {
        let k = live(&self.kernel)?;
        k.commit_audit()?;
        let records = k
            .store()
            .read_audit(after, check_limit(limit)?)
            .map_err(store_err)?;
        Ok(records)
    }

    async fn verify_audit_log(&self) -> Result<(bool, u64, String), Error> {
        let k = live(&self.kernel)?;
        k.commit_audit()?;
        let v = k.store().verify_audit().map_err(store_err)?;
        Ok((v.ok, v.records, v.problem.unwrap_or_default()))
    }

    async fn register_agent(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        socket: OwnedFd,
        agent_id: &str,
    ) -> Result<OwnedObjectPath, Error> {
        let k = live(&self.kernel)?;
        let identity = match caller(&k, &hdr).await? {
            // Host processes cannot be told apart reliably: all of them register as "host".
            Caller::Host | Caller::HostApp(_) => "host".to_string(),
            Caller::App(app) if app == agent_id => app,
            Caller::App(app) => {
                return Err(Error::AccessDenied(format!(
                "app {app} cannot register as {agent_id:?}: agents register under their own app id"
            )))
            }
            Caller::Agent { .. } => {
                return Err(Error::AccessDenied(
                    "agents cannot register other agents".into(),
                ))
            }
        };
        let fd: std::os::fd::OwnedFd = socket.into();
        let stream = std::os::unix::net::UnixStream::from(fd);
        let path = k.register(&identity, stream).await?;
        if identity != "host" {
            k.inner().flatpak_agents.insert(identity);
        }
        OwnedObjectPath::try_from(path).map_err(|e| Error::Failed(e.to_string()))
    }

    async fn open_channel(&self, #[zbus(header)] hdr: Header<'_>) -> Result<OwnedFd, Error> {
        let k = live(&self.kernel)?;
        let caller = caller(&k, &hdr).await?;
        let iface = super::channel_iface::ChannelIface {
            kernel: self.kernel.clone(),
            caller,
        };
        Ok(super::channel_iface::open(iface).await?.into())
    }

    #[zbus(signal)]
    pub async fn task_changed(
        emitter: &SignalEmitter<'_>,
        id: u64,
        parent: u64,
        agent: &str,
        state: &str,
        progress: f64,
        message: &str,
    ) -> zbus::Result<()>;

    #[zbus(property)]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
}

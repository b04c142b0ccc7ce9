//! `org.agentos.Kernel1` at `/org/agentos/Kernel`.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use agentos_dbus_interfaces::{
    names, AgentInfo, AuditRecord, ConsentRequestInfo, Error, GrantInfo, TaskInfo,
};
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedFd, OwnedObjectPath, OwnedValue};

use super::args::{admit, delegate_options, path_of, ANSWER_CONSENT};
use super::subscribers::Subscribers;
use super::task_iface::{exported, reachable, Reached};
use super::{caller, live};
use crate::caller::Caller;
use crate::kernel::Kernel;
use crate::operations::queries::require_users_tool;

pub struct KernelIface {
    kernel: Weak<Kernel>,
    /// The clients that receive task changes in full (`Subscribe`); the publisher sends them.
    subscribers: Arc<Subscribers>,
    /// Objects given to stored tasks when they were listed (bounded).
    reached: Reached,
}

impl KernelIface {
    pub fn new(kernel: &Arc<Kernel>) -> KernelIface {
        KernelIface {
            kernel: Arc::downgrade(kernel),
            subscribers: Arc::default(),
            reached: Reached::default(),
        }
    }

    /// The clients subscribed to task changes.
    pub fn subscribers(&self) -> Arc<Subscribers> {
        Arc::clone(&self.subscribers)
    }
}

#[zbus::interface(name = "org.agentos.Kernel1")]
impl KernelIface {
    async fn list_agents(&self) -> Result<Vec<AgentInfo>, Error> {
        Ok(live(&self.kernel)?.list_agents())
    }

    async fn delegate(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        agent: &str,
        goal: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<OwnedObjectPath, Error> {
        let k = live(&self.kernel)?;
        let _in_flight = admit(&k, &hdr)?;
        let c = caller(&k, &hdr).await?;
        let (options, answer_consent) = delegate_options(&options)?;
        let attendant = match (answer_consent, &c, hdr.sender()) {
            (false, _, _) => None,
            (true, Caller::Host, Some(sender)) => Some(sender.to_string()),
            (true, _, _) => {
                return Err(Error::AccessDenied(format!(
                    "only the user's own tools may answer consent prompts ({ANSWER_CONSENT}): \
                     an app may not answer for what it asks"
                )))
            }
        };
        let id = k.delegate(c, agent, goal, options).await?;
        if let Some(name) = attendant {
            k.answer_consent_here(id, &name);
        }
        exported(&k, id).await?;
        path_of(id)
    }

    async fn list_tasks(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        limit: u32,
    ) -> Result<Vec<TaskInfo>, Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        let tasks = k.list_tasks(&c, limit)?;
        let ids: Vec<u64> = tasks.iter().map(|t| t.id).collect();
        reachable(&k, &self.reached, ids).await;
        Ok(tasks)
    }

    async fn list_task_page(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        before: u64,
        limit: u32,
    ) -> Result<(Vec<TaskInfo>, u64), Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        let (tasks, next) = k.list_task_page(&c, before, limit)?;
        let ids: Vec<u64> = tasks.iter().map(|t| t.id).collect();
        reachable(&k, &self.reached, ids).await;
        Ok((tasks, next))
    }

    /// One struct argument, `(ttssssdsstt)`, as declared: returned as a one-element tuple, since
    /// zbus sends a bare struct as the body itself (its fields as eleven arguments).
    #[zbus(out_args("task"))]
    async fn get_task(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        id: u64,
    ) -> Result<(TaskInfo,), Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        let task = k.task_info_for(&c, id)?;
        reachable(&k, &self.reached, [id]).await;
        Ok((task,))
    }

    async fn cancel_task(&self, #[zbus(header)] hdr: Header<'_>, id: u64) -> Result<(), Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        k.cancel(&c, id)
    }

    async fn list_grants(&self, #[zbus(header)] hdr: Header<'_>) -> Result<Vec<GrantInfo>, Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        Ok(k.list_grants_for(&c))
    }

    async fn list_suspended_grants(
        &self,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<GrantInfo>, Error> {
        let k = live(&self.kernel)?;
        require_users_tool(&caller(&k, &hdr).await?, "list suspended grants")?;
        Ok(k.list_suspended_grants())
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
        require_users_tool(&caller(&k, &hdr).await?, "manage grants")?;
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
        require_users_tool(&caller(&k, &hdr).await?, "manage grants")?;
        k.revoke(principal, capability, scope).await
    }

    async fn read_audit_log(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        k.read_audit_log(&c, after, limit)
    }

    async fn verify_audit_log(
        &self,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(bool, u64, String), Error> {
        let k = live(&self.kernel)?;
        let v = k.verify_audit_log(&caller(&k, &hdr).await?)?;
        Ok((v.ok, v.records, v.problem))
    }

    #[allow(clippy::type_complexity)]
    async fn verify_audit_log_details(
        &self,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(bool, u64, String, String, Vec<String>, Vec<String>), Error> {
        let k = live(&self.kernel)?;
        let v = k.verify_audit_log(&caller(&k, &hdr).await?)?;
        Ok((
            v.ok,
            v.records,
            v.problem,
            v.checkpoint,
            v.checked,
            v.unchecked,
        ))
    }

    async fn register_agent(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        socket: OwnedFd,
        agent_id: &str,
    ) -> Result<OwnedObjectPath, Error> {
        let k = live(&self.kernel)?;
        let _in_flight = admit(&k, &hdr)?;
        let c = caller(&k, &hdr).await?;
        let fd: std::os::fd::OwnedFd = socket.into();
        let stream = std::os::unix::net::UnixStream::from(fd);
        let id = k.register_agent(&c, agent_id, stream).await?;
        if let Some(conn) = k.bus() {
            // On the bus before its path is handed out (the event stream exports it too).
            super::agent_iface::export(conn, &self.kernel, &id).await;
        }
        OwnedObjectPath::try_from(names::agent_path(&id)).map_err(|e| Error::Failed(e.to_string()))
    }

    async fn open_channel(&self, #[zbus(header)] hdr: Header<'_>) -> Result<OwnedFd, Error> {
        let k = live(&self.kernel)?;
        let caller = caller(&k, &hdr).await?;
        let slot = k.channel_slot(&caller)?;
        let iface = super::channel_iface::ChannelIface {
            kernel: self.kernel.clone(),
            caller,
            _slot: Some(slot),
        };
        Ok(super::channel_iface::open(iface).await?.into())
    }

    async fn list_consent_requests(
        &self,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Vec<ConsentRequestInfo>, Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        k.list_consent_requests(&c)
    }

    async fn set_focus(&self, #[zbus(header)] hdr: Header<'_>, task: u64) -> Result<(), Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        let client = hdr
            .sender()
            .ok_or_else(|| Error::AccessDenied("the call has no sender".into()))?;
        k.set_focus(&c, client.as_str(), task)
    }

    async fn subscribe(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        let client = hdr
            .sender()
            .ok_or_else(|| Error::AccessDenied("the call has no sender".into()))?;
        self.subscribers.add(client.as_str(), c);
        Ok(())
    }

    async fn unsubscribe(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), Error> {
        if let Some(client) = hdr.sender() {
            self.subscribers.remove(client.as_str());
        }
        Ok(())
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

    #[zbus(signal)]
    pub async fn consent_requests_changed(
        emitter: &SignalEmitter<'_>,
        pending: u32,
    ) -> zbus::Result<()>;

    #[zbus(property)]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
}

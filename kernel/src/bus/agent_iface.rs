//! `org.agentos.Agent1` at `/org/agentos/Kernel/agents/<id>`: every registered agent, reachable
//! by any bus client, always through the kernel's checks.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use agentos_dbus_interfaces::names::{self, AGENT_IFACE};
use agentos_dbus_interfaces::{ByteBuf, Error};
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

use super::kernel_iface::{path_of, timeout_option};
use super::{caller, live};
use crate::agents::AgentSlot;
use crate::kernel::Kernel;

pub struct AgentIface {
    kernel: Weak<Kernel>,
    id: String,
}

pub(crate) async fn export(kernel: &Arc<Kernel>, id: &str) {
    let Some(conn) = kernel.bus.get() else { return };
    let iface = AgentIface {
        kernel: Arc::downgrade(kernel),
        id: id.to_string(),
    };
    if let Err(e) = conn.object_server().at(names::agent_path(id), iface).await {
        tracing::error!(agent = id, error = %e, "cannot export an agent object");
    }
}

pub(crate) async fn unexport(kernel: &Kernel, id: &str) {
    let Some(conn) = kernel.bus.get() else { return };
    let _ = conn
        .object_server()
        .remove::<AgentIface, _>(names::agent_path(id))
        .await;
}

/// Announce a change of the agent's `Connected` property.
pub(crate) async fn announce_connected(kernel: &Kernel, id: &str) {
    let Some(conn) = kernel.bus.get() else { return };
    let connected = kernel
        .inner()
        .agents
        .get(id)
        .is_some_and(|s| s.instance.is_some());
    let Ok(emitter) = SignalEmitter::new(conn, names::agent_path(id)) else {
        return;
    };
    let Ok(iface) = zbus::names::InterfaceName::try_from(AGENT_IFACE) else {
        return;
    };
    let mut changed: HashMap<&str, Value<'_>> = HashMap::new();
    changed.insert("Connected", connected.into());
    let _ = zbus::fdo::Properties::properties_changed(&emitter, iface, changed, Cow::Borrowed(&[]))
        .await;
}

impl AgentIface {
    fn prop<T>(&self, f: impl FnOnce(&AgentSlot) -> T) -> zbus::fdo::Result<T> {
        let k = self
            .kernel
            .upgrade()
            .ok_or_else(|| zbus::fdo::Error::Failed("shutting down".into()))?;
        let inner = k.inner();
        inner
            .agents
            .get(&self.id)
            .map(f)
            .ok_or_else(|| zbus::fdo::Error::Failed(format!("agent {} is gone", self.id)))
    }
}

#[zbus::interface(name = "org.agentos.Agent1")]
impl AgentIface {
    async fn delegate(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        goal: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<OwnedObjectPath, Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        let id = k
            .delegate(c, &self.id, goal, timeout_option(&options)?)
            .await?;
        path_of(id)
    }

    async fn call(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        method: &str,
        payload: &[u8],
    ) -> Result<ByteBuf, Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        k.call_agent(c, &self.id, method, payload).await
    }

    #[zbus(property)]
    fn id(&self) -> String {
        self.id.clone()
    }
    #[zbus(property)]
    fn name(&self) -> zbus::fdo::Result<String> {
        self.prop(|s| s.manifest.name.clone())
    }
    #[zbus(property)]
    fn description(&self) -> zbus::fdo::Result<String> {
        self.prop(|s| s.manifest.description.clone())
    }
    #[zbus(property)]
    fn capabilities(&self) -> zbus::fdo::Result<Vec<String>> {
        self.prop(|s| s.manifest.capability_names())
    }
    #[zbus(property)]
    fn handles(&self) -> zbus::fdo::Result<Vec<String>> {
        self.prop(|s| s.manifest.handles.clone())
    }
    #[zbus(property)]
    fn connected(&self) -> zbus::fdo::Result<bool> {
        self.prop(|s| s.instance.is_some())
    }
}

//! `org.agentos.Agent1` at `/org/agentos/Kernel/agents/<id>`: every registered agent, reachable
//! by any bus client, always through the kernel's checks.

use std::collections::HashMap;
use std::sync::Weak;

use agentos_dbus_interfaces::{names, AgentInfo, ByteBuf, Error};
use zbus::message::Header;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use super::args::{admit, path_of, task_options};
use super::{caller, live};
use crate::kernel::Kernel;

pub struct AgentIface {
    kernel: Weak<Kernel>,
    id: String,
}

impl AgentIface {
    pub fn new(kernel: Weak<Kernel>, id: String) -> AgentIface {
        AgentIface { kernel, id }
    }

    fn prop<T>(&self, f: impl FnOnce(AgentInfo) -> T) -> zbus::fdo::Result<T> {
        live(&self.kernel)
            .and_then(|k| k.agent_info(&self.id))
            .map(f)
            .map_err(|e| zbus::fdo::Error::Failed(e.message()))
    }
}

/// Export the object of an agent (nothing happens if it is there already).
pub(crate) async fn export(conn: &zbus::Connection, kernel: &Weak<Kernel>, id: &str) {
    let iface = AgentIface::new(kernel.clone(), id.to_string());
    if let Err(e) = conn.object_server().at(names::agent_path(id), iface).await {
        tracing::error!(agent = id, error = %e, "cannot export an agent object");
    }
}

pub(crate) async fn unexport(conn: &zbus::Connection, id: &str) {
    let _ = conn
        .object_server()
        .remove::<AgentIface, _>(names::agent_path(id))
        .await;
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
        let _in_flight = admit(&k, &hdr)?;
        let c = caller(&k, &hdr).await?;
        let id = k
            .delegate(c, &self.id, goal, task_options(&options)?)
            .await?;
        super::task_iface::exported(&k, id).await?;
        path_of(id)
    }

    async fn call(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        method: &str,
        payload: &[u8],
    ) -> Result<ByteBuf, Error> {
        let k = live(&self.kernel)?;
        let _in_flight = admit(&k, &hdr)?;
        let c = caller(&k, &hdr).await?;
        k.call_agent(c, &self.id, method, payload).await
    }

    #[zbus(property)]
    fn id(&self) -> String {
        self.id.clone()
    }
    #[zbus(property)]
    fn name(&self) -> zbus::fdo::Result<String> {
        self.prop(|a| a.name)
    }
    #[zbus(property)]
    fn description(&self) -> zbus::fdo::Result<String> {
        self.prop(|a| a.description)
    }
    #[zbus(property)]
    fn capabilities(&self) -> zbus::fdo::Result<Vec<String>> {
        self.prop(|a| a.capabilities)
    }
    #[zbus(property)]
    fn handles(&self) -> zbus::fdo::Result<Vec<String>> {
        self.prop(|a| a.handles)
    }
    #[zbus(property)]
    fn connected(&self) -> zbus::fdo::Result<bool> {
        self.prop(|a| a.connected)
    }
    #[zbus(property(emits_changed_signal = "const"))]
    fn sandboxed(&self) -> zbus::fdo::Result<bool> {
        live(&self.kernel)
            .map(|k| k.agent_sandboxed(&self.id))
            .map_err(|e| zbus::fdo::Error::Failed(e.message()))
    }
    #[zbus(property(emits_changed_signal = "false"))]
    fn changed(&self) -> zbus::fdo::Result<String> {
        live(&self.kernel)
            .map(|k| k.agent_changed(&self.id))
            .map_err(|e| zbus::fdo::Error::Failed(e.message()))
    }
}

//! `org.agentos.Task1` at `/org/agentos/Kernel/tasks/<id>`.

use std::sync::{Arc, Weak};

use agentos_dbus_interfaces::{names, Error, TaskInfo};
use zbus::message::Header;
use zbus::zvariant::OwnedFd;

use super::{caller, live};
use crate::kernel::Kernel;

pub struct TaskIface {
    kernel: Weak<Kernel>,
    id: u64,
}

impl TaskIface {
    pub fn new(kernel: Weak<Kernel>, id: u64) -> TaskIface {
        TaskIface { kernel, id }
    }

    fn prop<T>(&self, f: impl FnOnce(TaskInfo) -> T) -> zbus::fdo::Result<T> {
        live(&self.kernel)
            .and_then(|k| k.task_info(self.id))
            .map(f)
            .map_err(|e| zbus::fdo::Error::Failed(e.message()))
    }
}

/// Make sure a new task's object is on the bus before its path is handed out (the event stream
/// exports it too, a moment later).
pub(crate) async fn exported(kernel: &Arc<Kernel>, id: u64) -> Result<(), Error> {
    if let Some(conn) = kernel.bus() {
        export(conn, &Arc::downgrade(kernel), id).await;
    }
    Ok(())
}

/// Export the object of a task (nothing happens if it is there already).
pub(crate) async fn export(conn: &zbus::Connection, kernel: &Weak<Kernel>, id: u64) {
    let iface = TaskIface::new(kernel.clone(), id);
    if let Err(e) = conn.object_server().at(names::task_path(id), iface).await {
        tracing::error!(task = id, error = %e, "cannot export a task object");
    }
}

#[zbus::interface(name = "org.agentos.Task1")]
impl TaskIface {
    async fn cancel(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        k.cancel(&c, self.id)
    }

    async fn open_artifact(&self, name: &str) -> Result<OwnedFd, Error> {
        let k = live(&self.kernel)?;
        Ok(k.open_artifact(self.id, name)?.into())
    }

    #[zbus(property)]
    fn id(&self) -> u64 {
        self.id
    }
    #[zbus(property)]
    fn parent(&self) -> zbus::fdo::Result<u64> {
        self.prop(|t| t.parent)
    }
    #[zbus(property)]
    fn agent(&self) -> zbus::fdo::Result<String> {
        self.prop(|t| t.agent)
    }
    #[zbus(property)]
    fn caller(&self) -> zbus::fdo::Result<String> {
        self.prop(|t| t.caller)
    }
    #[zbus(property)]
    fn goal(&self) -> zbus::fdo::Result<String> {
        self.prop(|t| t.goal)
    }
    #[zbus(property)]
    fn state(&self) -> zbus::fdo::Result<String> {
        self.prop(|t| t.state)
    }
    #[zbus(property)]
    fn progress(&self) -> zbus::fdo::Result<f64> {
        self.prop(|t| t.progress)
    }
    #[zbus(property)]
    fn message(&self) -> zbus::fdo::Result<String> {
        self.prop(|t| t.message)
    }
    #[zbus(property)]
    fn result(&self) -> zbus::fdo::Result<String> {
        self.prop(|t| t.result)
    }
    #[zbus(property)]
    fn artifacts(&self) -> zbus::fdo::Result<Vec<(String, String, u64)>> {
        let list = live(&self.kernel)
            .and_then(|k| k.list_artifacts(self.id))
            .map_err(|e| zbus::fdo::Error::Failed(e.message()))?;
        Ok(list
            .into_iter()
            .map(|a| (a.name, a.sha256, a.size))
            .collect())
    }
    #[zbus(property)]
    fn created(&self) -> zbus::fdo::Result<u64> {
        self.prop(|t| t.created)
    }
    #[zbus(property)]
    fn updated(&self) -> zbus::fdo::Result<u64> {
        self.prop(|t| t.updated)
    }
}

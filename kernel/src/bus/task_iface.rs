//! `org.agentos.Task1` at `/org/agentos/Kernel/tasks/<id>`, and the announcements of changes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use agentos_dbus_interfaces::names::{self, KERNEL_PATH, TASK_IFACE};
use agentos_dbus_interfaces::Error;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedFd, Value};

use super::{caller, live};
use crate::kernel::Kernel;
use crate::tasks::Task;

pub struct TaskIface {
    kernel: Weak<Kernel>,
    id: u64,
}

/// Export the object of a new task.
pub(crate) async fn export(kernel: &Arc<Kernel>, id: u64) {
    let Some(conn) = kernel.bus.get() else { return };
    let iface = TaskIface {
        kernel: Arc::downgrade(kernel),
        id,
    };
    if let Err(e) = conn.object_server().at(names::task_path(id), iface).await {
        tracing::error!(task = id, error = %e, "cannot export a task object");
    }
}

/// Announce a task's current state: `Kernel1.TaskChanged` and `PropertiesChanged`.
pub(crate) async fn announce(conn: &zbus::Connection, task: &Task) {
    if let Ok(root) = SignalEmitter::new(conn, KERNEL_PATH) {
        let _ = super::kernel_iface::KernelIface::task_changed(
            &root,
            task.id,
            task.parent,
            &task.agent,
            task.state.as_str(),
            task.progress,
            &task.message,
        )
        .await;
    }
    let Ok(emitter) = SignalEmitter::new(conn, names::task_path(task.id)) else {
        return;
    };
    let mut changed: HashMap<&str, Value<'_>> = HashMap::new();
    changed.insert("State", task.state.as_str().into());
    changed.insert("Progress", task.progress.into());
    changed.insert("Message", task.message.as_str().into());
    changed.insert("Result", task.result.as_str().into());
    changed.insert("Updated", task.updated.into());
    let Ok(iface) = zbus::names::InterfaceName::try_from(TASK_IFACE) else {
        return;
    };
    let _ = zbus::fdo::Properties::properties_changed(&emitter, iface, changed, Cow::Borrowed(&[]))
        .await;
}

impl TaskIface {
    fn with<T>(&self, f: impl FnOnce(&Task) -> T) -> Result<T, Error> {
        let k = live(&self.kernel)?;
        let inner = k.inner();
        inner
            .tasks
            .get(self.id)
            .map(f)
            .ok_or_else(|| Error::UnknownTask(format!("no task {}", self.id)))
    }

    fn prop<T>(&self, f: impl FnOnce(&Task) -> T) -> zbus::fdo::Result<T> {
        self.with(f)
            .map_err(|e| zbus::fdo::Error::Failed(e.message()))
    }
}

#[zbus::interface(name = "org.agentos.Task1")]
impl TaskIface {
    async fn cancel(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        k.cancel(&c, self.id).await
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
        self.prop(|t| t.agent.clone())
    }
    #[zbus(property)]
    fn caller(&self) -> zbus::fdo::Result<String> {
        self.prop(|t| t.caller.clone())
    }
    #[zbus(property)]
    fn goal(&self) -> zbus::fdo::Result<String> {
        self.prop(|t| t.goal.clone())
    }
    #[zbus(property)]
    fn state(&self) -> zbus::fdo::Result<String> {
        self.prop(|t| t.state.as_str().to_string())
    }
    #[zbus(property)]
    fn progress(&self) -> zbus::fdo::Result<f64> {
        self.prop(|t| t.progress)
    }
    #[zbus(property)]
    fn message(&self) -> zbus::fdo::Result<String> {
        self.prop(|t| t.message.clone())
    }
    #[zbus(property)]
    fn result(&self) -> zbus::fdo::Result<String> {
        self.prop(|t| t.result.clone())
    }
    #[zbus(property)]
    fn artifacts(&self) -> zbus::fdo::Result<Vec<(String, String, u64)>> {
        let k = live(&self.kernel).map_err(|e| zbus::fdo::Error::Failed(e.message()))?;
        let list = k
            .store()
            .list_artifacts(self.id)
            .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
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

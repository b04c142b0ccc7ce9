//! `org.agentos.Task1` at `/org/agentos/Kernel/tasks/<id>`: every member but `Id` answers only
//! a caller that may see the task (its tree's starter, or the user).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};

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

    /// A property of the task, for a caller that may see it (every property but `Id`).
    async fn prop<T>(
        &self,
        hdr: Option<Header<'_>>,
        f: impl FnOnce(TaskInfo) -> T,
    ) -> zbus::fdo::Result<T> {
        self.visible_info(hdr.as_ref())
            .await
            .map(f)
            .map_err(property_error)
    }

    async fn visible_info(&self, hdr: Option<&Header<'_>>) -> Result<TaskInfo, Error> {
        let k = live(&self.kernel)?;
        // A property read the object server makes for itself has no header: nobody to show.
        let hdr = hdr.ok_or_else(|| Error::AccessDenied("the read has no sender".into()))?;
        let c = caller(&k, hdr).await?;
        k.task_info_for(&c, self.id)
    }
}

/// Properties are read through `org.freedesktop.DBus.Properties`, whose errors are the standard
/// ones: `org.freedesktop.DBus.Error.AccessDenied` for a task the caller may not see.
fn property_error(e: Error) -> zbus::fdo::Error {
    match e {
        Error::AccessDenied(m) => zbus::fdo::Error::AccessDenied(m),
        Error::UnknownTask(m) => zbus::fdo::Error::UnknownObject(m),
        e => zbus::fdo::Error::Failed(e.message()),
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

/// Objects given to tasks stored by an earlier run, oldest first: at most [`MAX_REACHED`] are
/// kept, so paging through a long history does not grow the kernel without end.
#[derive(Default)]
pub struct Reached(Mutex<VecDeque<u64>>);

/// How many objects of stored tasks are kept at once.
pub const MAX_REACHED: usize = 4096;

/// Note `id` in `queue`; the id to let go of when the queue is over `max`.
fn push_bounded(queue: &mut VecDeque<u64>, id: u64, max: usize) -> Option<u64> {
    queue.push_back(id);
    (queue.len() > max).then(|| queue.pop_front()).flatten()
}

/// Give the tasks a caller was just told about their objects: a task stored by an earlier run of
/// the kernel has none until it is listed or asked for (so its artifacts stay reachable after a
/// restart, and an idle kernel holds no object per stored task). The oldest of those objects
/// go again past [`MAX_REACHED`]; listed again, a task gets its object back.
pub(crate) async fn reachable(
    kernel: &Arc<Kernel>,
    reached: &Reached,
    ids: impl IntoIterator<Item = u64>,
) {
    let Some(conn) = kernel.bus() else { return };
    let weak = Arc::downgrade(kernel);
    for id in ids {
        // A task of this run has its object from its delegation on, for good.
        if kernel.tasks.info(id).is_some() {
            continue;
        }
        let iface = TaskIface::new(weak.clone(), id);
        // `false`: it has one already (a task of this run, or one reached before).
        let added = match conn.object_server().at(names::task_path(id), iface).await {
            Ok(added) => added,
            Err(e) => {
                tracing::error!(task = id, error = %e, "cannot export a task object");
                false
            }
        };
        if !added {
            continue;
        }
        let evicted = push_bounded(
            &mut reached.0.lock().unwrap_or_else(|p| p.into_inner()),
            id,
            MAX_REACHED,
        );
        if let Some(old) = evicted {
            let _ = conn
                .object_server()
                .remove::<TaskIface, _>(names::task_path(old))
                .await;
        }
    }
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

    async fn open_artifact(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        name: &str,
    ) -> Result<OwnedFd, Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        Ok(k.open_artifact(&c, self.id, name)?.into())
    }

    #[zbus(property)]
    fn id(&self) -> u64 {
        self.id
    }
    #[zbus(property)]
    async fn parent(&self, #[zbus(header)] hdr: Option<Header<'_>>) -> zbus::fdo::Result<u64> {
        self.prop(hdr, |t| t.parent).await
    }
    #[zbus(property)]
    async fn agent(&self, #[zbus(header)] hdr: Option<Header<'_>>) -> zbus::fdo::Result<String> {
        self.prop(hdr, |t| t.agent).await
    }
    #[zbus(property)]
    async fn caller(&self, #[zbus(header)] hdr: Option<Header<'_>>) -> zbus::fdo::Result<String> {
        self.prop(hdr, |t| t.caller).await
    }
    #[zbus(property)]
    async fn goal(&self, #[zbus(header)] hdr: Option<Header<'_>>) -> zbus::fdo::Result<String> {
        self.prop(hdr, |t| t.goal).await
    }
    #[zbus(property)]
    async fn state(&self, #[zbus(header)] hdr: Option<Header<'_>>) -> zbus::fdo::Result<String> {
        self.prop(hdr, |t| t.state).await
    }
    #[zbus(property)]
    async fn progress(&self, #[zbus(header)] hdr: Option<Header<'_>>) -> zbus::fdo::Result<f64> {
        self.prop(hdr, |t| t.progress).await
    }
    #[zbus(property)]
    async fn message(&self, #[zbus(header)] hdr: Option<Header<'_>>) -> zbus::fdo::Result<String> {
        self.prop(hdr, |t| t.message).await
    }
    #[zbus(property)]
    async fn result(&self, #[zbus(header)] hdr: Option<Header<'_>>) -> zbus::fdo::Result<String> {
        self.prop(hdr, |t| t.result).await
    }
    #[zbus(property)]
    async fn artifacts(
        &self,
        #[zbus(header)] hdr: Option<Header<'_>>,
    ) -> zbus::fdo::Result<Vec<(String, String, u64)>> {
        let list = async {
            let k = live(&self.kernel)?;
            let hdr = hdr.ok_or_else(|| Error::AccessDenied("the read has no sender".into()))?;
            let c = caller(&k, &hdr).await?;
            k.list_artifacts(&c, self.id)
        }
        .await
        .map_err(property_error)?;
        Ok(list
            .into_iter()
            .map(|a| (a.name, a.sha256, a.size))
            .collect())
    }
    #[zbus(property)]
    async fn created(&self, #[zbus(header)] hdr: Option<Header<'_>>) -> zbus::fdo::Result<u64> {
        self.prop(hdr, |t| t.created).await
    }
    #[zbus(property)]
    async fn updated(&self, #[zbus(header)] hdr: Option<Header<'_>>) -> zbus::fdo::Result<u64> {
        self.prop(hdr, |t| t.updated).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_reached_object_goes_past_the_bound() {
        let mut q = VecDeque::new();
        assert_eq!(push_bounded(&mut q, 1, 2), None);
        assert_eq!(push_bounded(&mut q, 2, 2), None);
        assert_eq!(push_bounded(&mut q, 3, 2), Some(1));
        assert_eq!(push_bounded(&mut q, 4, 2), Some(2));
        assert_eq!(q, [3, 4]);
    }
}

//! The bus side of the kernel's event stream: task and agent objects exported and removed as
//! they come and go, `TaskChanged`, `ConsentRequestsChanged` and `PropertiesChanged` emitted as
//! things change. One task, in the order the core published.
//!
//! Broadcast signals carry no private content: `TaskChanged` goes to everyone with the task's
//! id, parent and state only (agent and message empty, progress 0), and a task's
//! `PropertiesChanged` carries `State` and `Updated` and only invalidates `Progress`, `Message`
//! and `Result` (read them with `Get`, which checks the caller). The full `TaskChanged` goes
//! unicast, to each client that called `Kernel1.Subscribe` and may see the task.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use agentos_dbus_interfaces::names::{self, AGENT_IFACE, KERNEL_PATH, TASK_IFACE};
use agentos_dbus_interfaces::TaskState;
use tokio::sync::mpsc::UnboundedReceiver;
use zbus::names::BusName;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::Value;

use super::agent_iface::{export as export_agent, unexport as unexport_agent};
use super::kernel_iface::KernelIface;
use super::subscribers::Subscribers;
use super::task_iface::export as export_task;
use crate::events::Event;
use crate::kernel::Kernel;
use crate::tasks::Task;

/// Follow `events` until the kernel goes away, reflecting each on `conn`.
pub async fn run(
    kernel: Weak<Kernel>,
    conn: zbus::Connection,
    mut events: UnboundedReceiver<Arc<Event>>,
    subscribers: Arc<Subscribers>,
) {
    while let Some(event) = events.recv().await {
        match &*event {
            Event::TaskCreated(task) => {
                export_task(&conn, &kernel, task.id).await;
                announce_task(&conn, &kernel, &subscribers, task).await;
            }
            Event::TaskChanged(task) => announce_task(&conn, &kernel, &subscribers, task).await,
            Event::AgentAdded(id) => export_agent(&conn, &kernel, id).await,
            Event::AgentRemoved(id) => unexport_agent(&conn, id).await,
            Event::AgentConnected(id) => announce_connected(&conn, id, true).await,
            Event::AgentDisconnected(id) => announce_connected(&conn, id, false).await,
            Event::ConsentPending { pending, .. } | Event::ConsentSettled { pending, .. } => {
                if let Ok(root) = SignalEmitter::new(&conn, KERNEL_PATH) {
                    let _ = KernelIface::consent_requests_changed(&root, *pending).await;
                }
            }
            _ => {}
        }
    }
}

/// Announce a task's current state: `Kernel1.TaskChanged` (without content to everyone, in full
/// to the subscribers that may see the task) and `PropertiesChanged` (without content).
async fn announce_task(
    conn: &zbus::Connection,
    kernel: &Weak<Kernel>,
    subscribers: &Subscribers,
    task: &Task,
) {
    let state = task.state.as_str();
    if let Ok(root) = SignalEmitter::new(conn, KERNEL_PATH) {
        let _ = KernelIface::task_changed(&root, task.id, task.parent, "", state, 0.0, "").await;
        let owner = match kernel.upgrade() {
            Some(k) if !subscribers.is_empty() => k.task_owner(task.id).ok(),
            _ => None,
        };
        for client in owner.map(|o| subscribers.of_tree(&o)).unwrap_or_default() {
            let Ok(destination) = BusName::try_from(client) else {
                continue;
            };
            let to = root.clone().set_destination(destination);
            let _ = KernelIface::task_changed(
                &to,
                task.id,
                task.parent,
                &task.agent,
                state,
                task.progress,
                &task.message,
            )
            .await;
        }
    }
    let Ok(emitter) = SignalEmitter::new(conn, names::task_path(task.id)) else {
        return;
    };
    let mut changed: HashMap<&str, Value<'_>> = HashMap::new();
    changed.insert("State", state.into());
    changed.insert("Updated", task.updated.into());
    let invalidated: &[&str] = if task.state == TaskState::Completed {
        &["Progress", "Message", "Result", "Artifacts"]
    } else {
        &["Progress", "Message", "Result"]
    };
    properties_changed(&emitter, TASK_IFACE, changed, invalidated).await;
}

/// Announce a change of an agent's `Connected` property.
async fn announce_connected(conn: &zbus::Connection, id: &str, connected: bool) {
    let Ok(emitter) = SignalEmitter::new(conn, names::agent_path(id)) else {
        return;
    };
    let mut changed: HashMap<&str, Value<'_>> = HashMap::new();
    changed.insert("Connected", connected.into());
    properties_changed(&emitter, AGENT_IFACE, changed, &[]).await;
}

async fn properties_changed(
    emitter: &SignalEmitter<'_>,
    interface: &str,
    changed: HashMap<&str, Value<'_>>,
    invalidated: &[&str],
) {
    let Ok(iface) = zbus::names::InterfaceName::try_from(interface) else {
        return;
    };
    let _ = zbus::fdo::Properties::properties_changed(
        emitter,
        iface,
        changed,
        Cow::Borrowed(invalidated),
    )
    .await;
}

//! Thin zbus adapters: they translate D-Bus calls into kernel operations and back, and reflect
//! the kernel's events on the bus (`publisher`). Objects are served before the name is taken;
//! the name is requested without queueing.

pub mod agent_iface;
mod args;
pub mod channel_iface;
mod chat_pipe;
mod dispatch;
pub mod host_iface;
pub mod kernel_iface;
pub mod models_iface;
pub mod publisher;
mod subscribers;
pub mod task_iface;

use std::sync::Arc;

use agentos_dbus_interfaces::names::{KERNEL_BUS_NAME, KERNEL_PATH};
use agentos_dbus_interfaces::Error;
use zbus::fdo::{RequestNameFlags, RequestNameReply};
use zbus::message::Header;

use crate::caller::Caller;
use crate::events::Kinds;
use crate::kernel::Kernel;

pub use host_iface::host_server;

/// Why the kernel could not take its place on the bus.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot connect to the bus: {0}")]
    Connect(zbus::Error),
    #[error("another agentosd already owns {KERNEL_BUS_NAME} on this bus")]
    NameTaken,
    #[error("cannot request {KERNEL_BUS_NAME}: {0}")]
    RequestName(zbus::Error),
}

/// Connect, serve every object, follow the kernel's events, then take the name.
pub async fn serve(
    kernel: &Arc<Kernel>,
    address: Option<&str>,
) -> Result<zbus::Connection, StartError> {
    let builder = match address {
        Some(a) => zbus::connection::Builder::address(a),
        None => zbus::connection::Builder::session(),
    }
    .map_err(StartError::Connect)?;
    let root = kernel_iface::KernelIface::new(kernel);
    let subscribers = root.subscribers();
    let conn = builder
        .serve_at(KERNEL_PATH, root)
        .map_err(StartError::Connect)?
        .serve_at(KERNEL_PATH, models_iface::ModelsIface::new(kernel))
        .map_err(StartError::Connect)?
        .build()
        .await
        .map_err(StartError::Connect)?;
    kernel.attach_bus(conn.clone());
    let events = kernel.subscribe(Kinds::TASKS | Kinds::AGENTS | Kinds::CONSENT);
    for agent in kernel.list_agents() {
        agent_iface::export(&conn, &kernel.downgrade(), &agent.id).await;
    }
    tokio::spawn(publisher::run(
        kernel.downgrade(),
        conn.clone(),
        events,
        Arc::clone(&subscribers),
    ));
    tokio::spawn(follow_name_changes(
        conn.clone(),
        kernel.downgrade(),
        Arc::downgrade(&subscribers),
    ));
    let reply = conn
        .request_name_with_flags(KERNEL_BUS_NAME, RequestNameFlags::DoNotQueue.into())
        .await
        .map_err(|e| match e {
            zbus::Error::NameTaken => StartError::NameTaken,
            e => StartError::RequestName(e),
        })?;
    match reply {
        RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner => Ok(conn),
        RequestNameReply::Exists | RequestNameReply::InQueue => Err(StartError::NameTaken),
    }
}

/// Who sent a bus message, from the connection (never from arguments).
pub(crate) async fn caller(kernel: &Kernel, hdr: &Header<'_>) -> Result<Caller, Error> {
    let conn = kernel
        .bus()
        .ok_or_else(|| Error::Failed("the kernel is not on a bus".into()))?;
    let sender = hdr
        .sender()
        .ok_or_else(|| Error::AccessDenied("the call has no sender".into()))?;
    let identity = kernel
        .identities
        .identify(conn, sender)
        .await
        .map_err(|e| Error::AccessDenied(format!("cannot identify the caller: {e}")))?;
    Ok(match identity {
        agentos_portal::CallerIdentity::Host => Caller::Host,
        id @ agentos_portal::CallerIdentity::HostApp { .. } => Caller::HostApp(id.principal()),
        agentos_portal::CallerIdentity::Flatpak { app_id, .. } => Caller::App(app_id),
    })
}

/// Upgrade the adapters' weak reference; fails once the kernel is going away.
pub(crate) fn live(kernel: &std::sync::Weak<Kernel>) -> Result<Arc<Kernel>, Error> {
    kernel
        .upgrade()
        .ok_or_else(|| Error::Failed("the kernel is shutting down".into()))
}

/// Follow NameOwnerChanged: record when each connection appeared (its identity is only read from
/// a process that started before that), and forget what was kept for names that lost their owner
/// (their identity, the task they watched). Calls wait until this follows the bus.
pub async fn follow_name_changes(
    conn: zbus::Connection,
    kernel: std::sync::Weak<Kernel>,
    subscribers: std::sync::Weak<subscribers::Subscribers>,
) {
    use futures_util::StreamExt;
    let unfollowed = |e: zbus::Error| {
        tracing::error!(error = %e, "cannot follow the bus's connections: no caller on it can be identified");
    };
    let dbus = match zbus::fdo::DBusProxy::new(&conn).await {
        Ok(d) => d,
        Err(e) => return unfollowed(e),
    };
    let mut changes = match dbus.receive_name_owner_changed().await {
        Ok(c) => c,
        Err(e) => return unfollowed(e),
    };
    // The match rule is in place: every connection from now on is announced. Those listed now
    // were on the bus by the moment after the list came back.
    let existing = match dbus.list_names().await {
        Ok(names) => names,
        Err(e) => return unfollowed(e.into()),
    };
    let Some(at) = since_boot() else { return };
    match kernel.upgrade() {
        Some(k) => k.identities.following(
            existing
                .into_iter()
                .map(|n| n.to_string())
                .filter(|n| n.starts_with(':')),
            at,
        ),
        None => return,
    }
    while let Some(signal) = changes.next().await {
        // Only the bus announces connections: a peer's own NameOwnerChanged carries its name.
        let from_bus =
            signal.message().header().sender().map(|s| s.as_str()) == Some("org.freedesktop.DBus");
        let Ok(args) = signal.args() else { continue };
        if !from_bus {
            continue;
        }
        let Some(k) = kernel.upgrade() else { return };
        match args.new_owner().as_ref() {
            None => {
                k.client_left(args.name().as_str());
                if let Some(s) = subscribers.upgrade() {
                    s.remove(args.name().as_str());
                }
            }
            Some(owner) if args.old_owner().is_none() && owner.as_str() == args.name().as_str() => {
                // Unrecorded, the name's calls are refused (never announced).
                if let Some(at) = since_boot() {
                    k.identities.appeared(owner.as_str(), at);
                }
            }
            Some(_) => {}
        }
    }
}

/// Now as time since boot, the clock process start times are counted on.
fn since_boot() -> Option<agentos_portal::proc_stat::SinceBoot> {
    agentos_portal::proc_stat::now()
        .inspect_err(|e| {
            tracing::error!(error = %e, "cannot read the time since boot: callers cannot be identified")
        })
        .ok()
}

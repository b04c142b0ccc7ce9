//! The bus clients that asked for the full content of task changes (`Kernel1.Subscribe`), with
//! who they are, forgotten when they leave the bus.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, Weak};

use crate::caller::Caller;
use crate::operations::queries::sees_tree;

/// The bus clients that asked (`Kernel1.Subscribe`) for the full content of task changes, by
/// unique name, with who they are. A client is forgotten when it leaves the bus.
#[derive(Debug, Default)]
pub struct Subscribers {
    clients: Mutex<HashMap<String, Caller>>,
}

impl Subscribers {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Caller>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `client` (a unique name) receives the task changes `caller` may see from now on.
    pub fn add(&self, client: &str, caller: Caller) {
        self.lock().insert(client.to_string(), caller);
    }

    /// `client` stops receiving them (it asked, or it left the bus).
    pub fn remove(&self, client: &str) {
        self.lock().remove(client);
    }

    /// The clients of tasks of a tree started by `owner`.
    pub(crate) fn of_tree(&self, owner: &str) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, caller)| sees_tree(caller, owner))
            .map(|(client, _)| client.clone())
            .collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Forget subscribers that left the bus.
pub(crate) async fn forget_departed(conn: zbus::Connection, subscribers: Weak<Subscribers>) {
    use futures_util::StreamExt;
    let Ok(dbus) = zbus::fdo::DBusProxy::new(&conn).await else {
        return;
    };
    let Ok(mut changes) = dbus.receive_name_owner_changed().await else {
        return;
    };
    while let Some(signal) = changes.next().await {
        let Ok(args) = signal.args() else { continue };
        if args.new_owner().is_none() {
            match subscribers.upgrade() {
                Some(s) => s.remove(args.name().as_str()),
                None => return,
            }
        }
    }
}

//! The bus clients that asked for the full content of task changes (`Kernel1.Subscribe`), with
//! who they are; `follow_name_changes` forgets those that leave the bus.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

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

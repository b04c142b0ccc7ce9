//! Which tasks the user is watching, as clients say with `Kernel1.SetFocus`: one task per client
//! connection, dropped when the client leaves the bus. The broker serves these tasks first. The
//! user's own tools are believed; an app is only saying so (as with its interactive requests),
//! so what it watches is told apart.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Who says the user watches a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Watcher {
    /// An app, of a tree it started.
    App,
    /// One of the user's own tools (the panel, `agentctl`).
    User,
}

/// The tasks clients are watching, by client.
#[derive(Default)]
pub struct Focus {
    by_client: Mutex<HashMap<String, (u64, Watcher)>>,
}

impl Focus {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (u64, Watcher)>> {
        self.by_client.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `client` watches `task` now (0: nothing), as `watcher` says.
    pub fn set(&self, client: &str, task: u64, watcher: Watcher) {
        let mut map = self.lock();
        if task == 0 {
            map.remove(client);
        } else {
            map.insert(client.to_string(), (task, watcher));
        }
    }

    /// A client left: it watches nothing.
    pub fn forget(&self, client: &str) {
        self.lock().remove(client);
    }

    /// Every task some client watches, in order, without repeats.
    pub fn watched(&self) -> Vec<u64> {
        self.watchers().into_iter().map(|(task, _)| task).collect()
    }

    /// Every task some client watches, in order, each with who says so (the user's tools over an
    /// app, when both do).
    pub fn watchers(&self) -> Vec<(u64, Watcher)> {
        let mut tasks: Vec<(u64, Watcher)> = self.lock().values().copied().collect();
        tasks.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        tasks.dedup_by_key(|(task, _)| *task);
        tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn focus_is_per_client_and_leaves_with_it() {
        let focus = Focus::default();
        focus.set(":1.5", 7, Watcher::App);
        focus.set(":1.6", 7, Watcher::User);
        focus.set(":1.7", 3, Watcher::App);
        assert_eq!(focus.watched(), [3, 7]);
        assert_eq!(
            focus.watchers(),
            [(3, Watcher::App), (7, Watcher::User)],
            "the user's tool over the app"
        );
        focus.set(":1.7", 0, Watcher::User);
        focus.forget(":1.5");
        assert_eq!(focus.watched(), [7]);
        focus.forget(":1.6");
        assert!(focus.watched().is_empty());
    }
}

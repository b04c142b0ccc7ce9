//! Which tasks the user is watching, as clients say with `Kernel1.SetFocus`: one task per client
//! connection, dropped when the client leaves the bus. The broker serves these tasks first.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// The tasks clients are watching, by client.
#[derive(Default)]
pub struct Focus {
    by_client: Mutex<HashMap<String, u64>>,
}

impl Focus {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.by_client.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `client` watches `task` now (0: nothing).
    pub fn set(&self, client: &str, task: u64) {
        let mut map = self.lock();
        if task == 0 {
            map.remove(client);
        } else {
            map.insert(client.to_string(), task);
        }
    }

    /// A client left: it watches nothing.
    pub fn forget(&self, client: &str) {
        self.lock().remove(client);
    }

    /// Every task some client watches, in order, without repeats.
    pub fn watched(&self) -> Vec<u64> {
        let mut tasks: Vec<u64> = self.lock().values().copied().collect();
        tasks.sort_unstable();
        tasks.dedup();
        tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn focus_is_per_client_and_leaves_with_it() {
        let focus = Focus::default();
        focus.set(":1.5", 7);
        focus.set(":1.6", 7);
        focus.set(":1.7", 3);
        assert_eq!(focus.watched(), [3, 7]);
        focus.set(":1.7", 0);
        focus.forget(":1.5");
        assert_eq!(focus.watched(), [7]);
        focus.forget(":1.6");
        assert!(focus.watched().is_empty());
    }
}

//! The consent desk: one prompt at a time per principal, and the requests waiting for the user's
//! answer now (listed by `Kernel1.ListConsentRequests`, announced as events).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use agentos_dbus_interfaces::ConsentRequestInfo;

/// Consent requests in flight.
#[derive(Default)]
pub struct ConsentDesk {
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pending: Mutex<BTreeMap<u64, ConsentRequestInfo>>,
    seq: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ConsentDesk {
    /// The lock a principal's prompts take turns on.
    pub fn turn(&self, principal: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(lock(&self.turns).entry(principal.to_string()).or_default())
    }

    /// A request now waits for the user; returns it with its id, and how many wait.
    pub fn open(&self, mut request: ConsentRequestInfo) -> (ConsentRequestInfo, u32) {
        request.id = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let mut pending = lock(&self.pending);
        pending.insert(request.id, request.clone());
        (request, pending.len() as u32)
    }

    /// A request was answered or given up; returns how many still wait.
    pub fn settle(&self, id: u64) -> u32 {
        let mut pending = lock(&self.pending);
        pending.remove(&id);
        pending.len() as u32
    }

    /// The requests waiting now, oldest first.
    pub fn pending(&self) -> Vec<ConsentRequestInfo> {
        lock(&self.pending).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_listed_until_settled() {
        let desk = ConsentDesk::default();
        let ask = |principal: &str| ConsentRequestInfo {
            id: 0,
            principal: principal.into(),
            capability: "files.read".into(),
            scope: "/d".into(),
            task: 1,
            title: "t".into(),
            subtitle: "s".into(),
            body: "b".into(),
            since: 5,
        };
        let (a, n) = desk.open(ask("a"));
        let (b, m) = desk.open(ask("b"));
        assert_eq!((n, m), (1, 2));
        assert_ne!(a.id, b.id);
        assert_eq!(desk.settle(a.id), 1);
        assert_eq!(desk.pending(), [b]);
        assert!(Arc::ptr_eq(&desk.turn("a"), &desk.turn("a")));
    }
}

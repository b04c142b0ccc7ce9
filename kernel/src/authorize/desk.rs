//! The consent desk: one prompt at a time per principal, the requests that wait for a turn (so
//! that the next dialog can name all of one task's requests for one capability together), the
//! dialogs open now (listed by `Kernel1.ListConsentRequests`, announced as events), and the tasks
//! the user said to ask nothing more for, and the terminals that answer the prompts of the tasks
//! they started when no graphical provider runs (`agentctl run --ask-here`, as polkit's text
//! agent).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::sync::lock;
use agentos_dbus_interfaces::ConsentRequestInfo;
use tokio::sync::oneshot;

/// How a request ends: `Ok` with the reason it may go ahead, `Err` with the reason it is denied.
pub type Outcome = Result<String, String>;

/// A request waiting for its principal's turn.
struct Waiter {
    principal: String,
    capability: &'static str,
    task: Option<u64>,
    scope: String,
    /// Where the dialog that names it sends its outcome.
    reply: oneshot::Sender<Outcome>,
}

/// A waiting request gathered into a dialog: its scope, and where its outcome goes.
pub struct Gathered {
    pub id: u64,
    pub scope: String,
    pub reply: oneshot::Sender<Outcome>,
}

/// Where one run's request ids start: random, so that a request id (and the dialog handle
/// made of it) never names a request of another run. A notification's button left from an
/// earlier run, or an answer kept for a request of one, then cannot answer a new request that
/// happens to have the same number. Below 2^40, so ids stay far from overflowing.
pub fn run_base() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    // The standard library seeds each RandomState from the operating system's randomness.
    RandomState::new().hash_one(std::process::id()) >> 24
}

/// Consent requests in flight.
#[derive(Default)]
pub struct ConsentDesk {
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    waiting: Mutex<BTreeMap<u64, Waiter>>,
    pending: Mutex<BTreeMap<u64, ConsentRequestInfo>>,
    /// Tasks the user said to ask nothing more for (with the tasks below them).
    silenced: Mutex<HashSet<u64>>,
    /// Top-level tasks whose prompts a terminal answers: task -> the bus name of the client
    /// that started the task and serves the Access dialog on its own connection.
    attendants: Mutex<HashMap<u64, String>>,
    seq: AtomicU64,
}

/// A request's place in the waiting list; leaving it (however the wait ends) takes it off.
pub struct Ticket<'a> {
    desk: &'a ConsentDesk,
    pub id: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        lock(&self.desk.waiting).remove(&self.id);
    }
}

impl ConsentDesk {
    /// The lock a principal's prompts take turns on.
    pub fn turn(&self, principal: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(lock(&self.turns).entry(principal.to_string()).or_default())
    }

    /// A request waits for its principal's turn: it is either named in the dialog of a request
    /// that gets the turn first (the outcome then arrives on the receiver), or gets the turn.
    pub fn wait(
        &self,
        principal: &str,
        capability: &'static str,
        task: Option<u64>,
        scope: &str,
    ) -> (Ticket<'_>, oneshot::Receiver<Outcome>) {
        let id = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let (reply, answer) = oneshot::channel();
        lock(&self.waiting).insert(
            id,
            Waiter {
                principal: principal.to_string(),
                capability,
                task,
                scope: scope.to_string(),
                reply,
            },
        );
        (Ticket { desk: self, id }, answer)
    }

    /// Take every waiting request of `principal` for `capability` in `task` off the list, in
    /// the order they came: one dialog will name them all.
    pub fn gather(&self, principal: &str, capability: &str, task: Option<u64>) -> Vec<Gathered> {
        let mut waiting = lock(&self.waiting);
        let ids: Vec<u64> = waiting
            .iter()
            .filter(|(_, w)| {
                w.principal == principal && w.capability == capability && w.task == task
            })
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| {
                let w = waiting.remove(&id)?;
                Some(Gathered {
                    id,
                    scope: w.scope,
                    reply: w.reply,
                })
            })
            .collect()
    }

    /// The user said to ask nothing more for `task`. Tasks `running` says are over are forgotten
    /// meanwhile (task ids are never reused).
    pub fn silence(&self, task: u64, running: impl Fn(u64) -> bool) {
        let mut silenced = lock(&self.silenced);
        silenced.retain(|t| running(*t));
        silenced.insert(task);
    }

    /// The first of `tasks` (a task, then the tasks above it) the user said to ask nothing more
    /// for.
    pub fn silenced(&self, tasks: &[u64]) -> Option<u64> {
        let silenced = lock(&self.silenced);
        tasks.iter().copied().find(|t| silenced.contains(t))
    }

    /// The client `name` (which started top-level task `task`) answers its tree's prompts when
    /// no graphical provider runs.
    pub fn attend(&self, task: u64, name: &str) {
        lock(&self.attendants).insert(task, name.to_string());
    }

    /// The client that answers the prompts of the first of `tasks` (a task, then the tasks above
    /// it) that has one.
    pub fn attendant(&self, tasks: &[u64]) -> Option<String> {
        let attendants = lock(&self.attendants);
        tasks.iter().find_map(|t| attendants.get(t).cloned())
    }

    /// A client left the bus: it answers nothing more.
    pub fn forget_attendant(&self, name: &str) {
        lock(&self.attendants).retain(|_, n| n != name);
    }

    /// A desk whose request ids follow `base` (see [`run_base`]).
    pub fn numbered_after(base: u64) -> ConsentDesk {
        ConsentDesk {
            seq: AtomicU64::new(base),
            ..ConsentDesk::default()
        }
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

    /// A request of `principal` to read files, as the desk is handed one.
    fn asked(principal: &str) -> ConsentRequestInfo {
        ConsentRequestInfo {
            id: 0,
            principal: principal.into(),
            capability: "files.read".into(),
            scope: "/d".into(),
            task: 1,
            title: "t".into(),
            subtitle: "s".into(),
            body: "b".into(),
            since: 5,
        }
    }

    #[test]
    fn ids_follow_a_base_that_differs_between_runs() {
        let (a, b) = (run_base(), run_base());
        assert_ne!(a, b, "two runs would number their requests alike");
        assert!(a < 1 << 40 && b < 1 << 40);
        let desk = ConsentDesk::numbered_after(a);
        let (first, _) = desk.open(asked("a"));
        let (second, _) = desk.open(asked("a"));
        assert_eq!((first.id, second.id), (a + 1, a + 2));
    }

    #[test]
    fn requests_are_listed_until_settled() {
        let desk = ConsentDesk::default();
        let (a, n) = desk.open(asked("a"));
        let (b, m) = desk.open(asked("b"));
        assert_eq!((n, m), (1, 2));
        assert_ne!(a.id, b.id);
        assert_eq!(desk.settle(a.id), 1);
        assert_eq!(desk.pending(), [b]);
        assert!(Arc::ptr_eq(&desk.turn("a"), &desk.turn("a")));
    }

    #[test]
    fn waiting_requests_are_gathered_by_principal_capability_and_task() {
        let desk = ConsentDesk::default();
        let (a, _ra) = desk.wait("web", "web.fetch", Some(1), "a.org");
        let (_b, _rb) = desk.wait("web", "web.fetch", Some(2), "b.org");
        let (_c, _rc) = desk.wait("web", "files.read", Some(1), "/c");
        let (d, mut rd) = desk.wait("web", "web.fetch", Some(1), "d.org");
        let (e, _re) = desk.wait("web", "web.fetch", Some(1), "e.org");
        drop(e);
        let got = desk.gather("web", "web.fetch", Some(1));
        let scopes: Vec<&str> = got.iter().map(|g| g.scope.as_str()).collect();
        assert_eq!(scopes, ["a.org", "d.org"]);
        assert_eq!((got[0].id, got[1].id), (a.id, d.id));
        for g in got {
            let _ = g.reply.send(Ok(format!("named {}", g.scope)));
        }
        assert_eq!(rd.try_recv(), Ok(Ok("named d.org".to_string())));
        // The others still wait; gathered ones are not gathered twice.
        assert!(desk.gather("web", "web.fetch", Some(1)).is_empty());
        assert_eq!(desk.gather("web", "web.fetch", Some(2)).len(), 1);
    }

    #[test]
    fn a_terminal_answers_for_the_tree_it_started_until_it_leaves() {
        let desk = ConsentDesk::default();
        desk.attend(1, ":1.7");
        desk.attend(9, ":1.8");
        assert_eq!(desk.attendant(&[4, 2, 1]).as_deref(), Some(":1.7"));
        assert_eq!(desk.attendant(&[9]).as_deref(), Some(":1.8"));
        assert_eq!(desk.attendant(&[5, 3]), None);
        desk.forget_attendant(":1.7");
        assert_eq!(desk.attendant(&[4, 2, 1]), None);
        assert_eq!(desk.attendant(&[9]).as_deref(), Some(":1.8"));
    }

    #[test]
    fn silenced_tasks_are_remembered_while_they_run() {
        let desk = ConsentDesk::default();
        desk.silence(3, |_| true);
        assert_eq!(desk.silenced(&[5, 3, 1]), Some(3));
        assert_eq!(desk.silenced(&[5, 1]), None);
        // Task 3 ended: it is forgotten when another is silenced.
        desk.silence(7, |t| t != 3);
        assert_eq!(desk.silenced(&[3]), None);
        assert_eq!(desk.silenced(&[7]), Some(7));
    }
}

//! The kernel's event stream: what changed, as typed events on one channel. The core publishes;
//! the bus adapters (object exports, `PropertiesChanged`, signals), and later the panel's feed,
//! the broker and the bridges, subscribe. The core knows none of its subscribers.

use std::sync::{Arc, Mutex};

use agentos_dbus_interfaces::{AuditRecord, ConsentRequestInfo, GrantInfo};
use tokio::sync::mpsc;

use crate::tasks::Task;

/// One thing that changed in the kernel.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A task was created (its first state).
    TaskCreated(Task),
    /// A task's state, progress, message or result changed (its new state).
    TaskChanged(Task),
    /// An agent became known at run time (it registered itself).
    AgentAdded(String),
    /// A self-registered agent went away and is forgotten.
    AgentRemoved(String),
    /// An agent's instance connected.
    AgentConnected(String),
    /// An agent's instance went away.
    AgentDisconnected(String),
    /// The user gave a grant (or consented, which is recorded as one).
    GrantAdded(GrantInfo),
    /// A grant was revoked (by the user, or from the desktop's permission store).
    GrantRevoked(GrantInfo),
    /// A consent request now waits for the user; `pending` counts all that wait.
    ConsentPending {
        request: ConsentRequestInfo,
        pending: u32,
    },
    /// A consent request was answered, or given up; `pending` counts those still waiting.
    ConsentSettled { id: u64, pending: u32 },
    /// A record was appended to the audit log.
    AuditAppended(AuditRecord),
}

impl Event {
    /// The kind of the event, for subscriptions.
    pub fn kind(&self) -> Kinds {
        match self {
            Event::TaskCreated(_) | Event::TaskChanged(_) => Kinds::TASKS,
            Event::AgentAdded(_)
            | Event::AgentRemoved(_)
            | Event::AgentConnected(_)
            | Event::AgentDisconnected(_) => Kinds::AGENTS,
            Event::GrantAdded(_) | Event::GrantRevoked(_) => Kinds::GRANTS,
            Event::ConsentPending { .. } | Event::ConsentSettled { .. } => Kinds::CONSENT,
            Event::AuditAppended(_) => Kinds::AUDIT,
        }
    }
}

/// A set of event kinds a subscriber wants. Events of a kind nobody wants are not even built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds(u8);

impl Kinds {
    pub const TASKS: Kinds = Kinds(1);
    pub const AGENTS: Kinds = Kinds(2);
    pub const GRANTS: Kinds = Kinds(4);
    pub const CONSENT: Kinds = Kinds(8);
    pub const AUDIT: Kinds = Kinds(16);
    pub const ALL: Kinds = Kinds(31);

    pub fn contains(self, other: Kinds) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Kinds {
    type Output = Kinds;
    fn bitor(self, rhs: Kinds) -> Kinds {
        Kinds(self.0 | rhs.0)
    }
}

struct Subscriber {
    kinds: Kinds,
    tx: mpsc::UnboundedSender<Arc<Event>>,
}

/// The one channel of the kernel's events: every subscriber gets every event of the kinds it
/// asked for, in the order they were published. A subscriber that dropped its receiver is
/// forgotten at the next event.
#[derive(Default)]
pub struct EventHub {
    subscribers: Mutex<Vec<Subscriber>>,
}

impl EventHub {
    /// Receive every event of `kinds` from now on.
    pub fn subscribe(&self, kinds: Kinds) -> mpsc::UnboundedReceiver<Arc<Event>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().push(Subscriber { kinds, tx });
        rx
    }

    /// Whether anyone listens to `kind`.
    pub fn wanted(&self, kind: Kinds) -> bool {
        self.lock()
            .iter()
            .any(|s| s.kinds.contains(kind) && !s.tx.is_closed())
    }

    /// Publish an event to those who want its kind.
    pub fn publish(&self, event: Event) {
        let kind = event.kind();
        let mut subscribers = self.lock();
        subscribers.retain(|s| !s.tx.is_closed());
        if !subscribers.iter().any(|s| s.kinds.contains(kind)) {
            return;
        }
        let event = Arc::new(event);
        subscribers.retain(|s| !s.kinds.contains(kind) || s.tx.send(Arc::clone(&event)).is_ok());
    }

    /// Publish the event `build` makes, only if someone wants events of `kind`.
    pub fn publish_with(&self, kind: Kinds, build: impl FnOnce() -> Event) {
        if self.wanted(kind) {
            self.publish(build());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_get_the_kinds_they_asked_for_in_order() {
        let hub = EventHub::default();
        let mut agents = hub.subscribe(Kinds::AGENTS);
        let mut all = hub.subscribe(Kinds::ALL);
        hub.publish(Event::AgentAdded("a".into()));
        hub.publish(Event::ConsentSettled { id: 1, pending: 0 });
        hub.publish(Event::AgentConnected("a".into()));
        let got: Vec<String> = std::iter::from_fn(|| agents.try_recv().ok())
            .map(|e| format!("{e:?}"))
            .collect();
        assert_eq!(got, ["AgentAdded(\"a\")", "AgentConnected(\"a\")"]);
        assert_eq!(std::iter::from_fn(|| all.try_recv().ok()).count(), 3);
    }

    #[test]
    fn nothing_is_built_for_kinds_nobody_wants_and_gone_subscribers_are_dropped() {
        let hub = EventHub::default();
        let rx = hub.subscribe(Kinds::TASKS);
        hub.publish_with(Kinds::AUDIT, || unreachable!("nobody wants audit events"));
        drop(rx);
        hub.publish(Event::AgentAdded("a".into()));
        hub.publish_with(Kinds::TASKS, || Event::AgentAdded("x".into()));
        assert!(!hub.wanted(Kinds::TASKS));
    }
}

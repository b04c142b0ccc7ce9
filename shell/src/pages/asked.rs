//! Which task the Ask page follows. The kernel may tell of the asked task (its first progress
//! message, even its end) before the page has read `Delegate`'s reply, since the two come by
//! separate ways; the events that come while the page waits for the reply are kept and handed
//! over once the task's id is known, so nothing the task said is lost.

use std::collections::VecDeque;

use agentos_client::TaskEvent;

/// Events kept while a reply is awaited, at most; the oldest go first beyond it.
const KEPT: usize = 256;

#[derive(Debug, Default)]
pub struct Asked {
    task: Option<u64>,
    /// `Some` while `Delegate`'s reply is awaited.
    early: Option<VecDeque<TaskEvent>>,
}

impl Asked {
    /// A goal was handed to the kernel: forget the last task, keep events until the reply.
    pub fn begin(&mut self) {
        self.task = None;
        self.early = Some(VecDeque::new());
    }

    /// The kernel's reply named `id`: the events that came before it, in order.
    pub fn started(&mut self, id: u64) -> Vec<TaskEvent> {
        self.task = Some(id);
        self.early.take().map(Vec::from).unwrap_or_default()
    }

    /// The kernel refused the goal: nothing is followed.
    pub fn refused(&mut self) {
        self.task = None;
        self.early = None;
    }

    pub fn task(&self) -> Option<u64> {
        self.task
    }

    /// An event as it comes: handed back when a task is followed, kept while one is awaited.
    pub fn event(&mut self, ev: TaskEvent) -> Option<TaskEvent> {
        match (&mut self.early, self.task) {
            (Some(early), _) => {
                if early.len() == KEPT {
                    early.pop_front();
                }
                early.push_back(ev);
                None
            }
            (None, Some(_)) => Some(ev),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentos_dbus_interfaces::TaskState;

    fn ev(id: u64, message: &str) -> TaskEvent {
        TaskEvent {
            id,
            parent: 0,
            agent: "tester".into(),
            state: TaskState::Working,
            progress: 0.5,
            message: message.into(),
        }
    }

    #[test]
    fn events_before_the_reply_are_handed_over_in_order() {
        let mut a = Asked::default();
        assert!(a.event(ev(1, "before anything was asked")).is_none());
        a.begin();
        assert!(a.event(ev(7, "sleeping")).is_none());
        assert!(a.event(ev(8, "a child")).is_none());
        assert_eq!(a.task(), None);
        let early = a.started(7);
        let got: Vec<&str> = early.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(got, ["sleeping", "a child"]);
        assert_eq!(a.task(), Some(7));
        assert_eq!(
            a.event(ev(7, "later")).map(|e| e.message),
            Some("later".into())
        );
    }

    #[test]
    fn a_new_ask_forgets_the_last_task_and_a_refusal_keeps_nothing() {
        let mut a = Asked::default();
        a.begin();
        a.started(3);
        a.begin();
        assert_eq!(a.task(), None);
        assert!(a.event(ev(3, "the old task")).is_none());
        a.refused();
        assert!(a.event(ev(4, "after the refusal")).is_none());
        assert!(
            a.started(5).is_empty(),
            "nothing was kept after the refusal"
        );
    }

    #[test]
    fn what_is_kept_is_bounded_and_the_newest_stay() {
        let mut a = Asked::default();
        a.begin();
        for i in 0..(KEPT as u64 + 10) {
            a.event(ev(i, &i.to_string()));
        }
        let early = a.started(1);
        assert_eq!(early.len(), KEPT);
        assert_eq!(early[0].id, 10);
        assert_eq!(early.last().map(|e| e.id), Some(KEPT as u64 + 9));
    }
}

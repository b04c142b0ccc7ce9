//! The requests waiting for the user, one dialog at a time, oldest first; a request the kernel
//! closed leaves the queue (and its dialog, if it is the one shown).

use std::collections::VecDeque;

use super::request::{Answer, Shown};

/// One request waiting for an answer; `R` carries the answer back to the bus.
#[derive(Debug)]
pub struct Pending<R> {
    pub handle: String,
    pub shown: Shown,
    pub answers: Vec<Answer>,
    /// When the kernel first asked (ms since the epoch), when it said.
    pub since: Option<u64>,
    pub reply: R,
}

impl<R> Pending<R> {
    /// Whether `answer` is one this request offers (deny always is).
    pub fn offers(&self, answer: Answer) -> bool {
        answer == Answer::Deny || self.answers.contains(&answer)
    }
}

/// What became of a dismissed request.
#[derive(Debug, PartialEq, Eq)]
pub enum Dismissed {
    /// It was the one shown: close its dialog, show the next.
    Shown,
    /// It was waiting its turn.
    Waiting,
    /// Not known (answered already).
    Unknown,
}

#[derive(Debug)]
pub struct Queue<R> {
    items: VecDeque<Pending<R>>,
}

impl<R> Default for Queue<R> {
    fn default() -> Self {
        Queue {
            items: VecDeque::new(),
        }
    }
}

impl<R> Queue<R> {
    /// Add a request; true when it is to be shown now (nothing else was).
    pub fn push(&mut self, p: Pending<R>) -> bool {
        self.items.push_back(p);
        self.items.len() == 1
    }

    /// The request shown now.
    pub fn current(&self) -> Option<&Pending<R>> {
        self.items.front()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The shown request was answered: take it off (its reply is returned to send), if its
    /// handle is still the one shown.
    pub fn answer(&mut self, handle: &str) -> Option<Pending<R>> {
        if self.items.front().is_some_and(|p| p.handle == handle) {
            self.items.pop_front()
        } else {
            None
        }
    }

    /// Whether the request `handle`, if held, offers `answer`.
    pub fn offers(&self, handle: &str, answer: Answer) -> Option<bool> {
        self.items
            .iter()
            .find(|p| p.handle == handle)
            .map(|p| p.offers(answer))
    }

    /// The kernel closed the request `handle`.
    pub fn dismiss(&mut self, handle: &str) -> (Dismissed, Option<Pending<R>>) {
        match self.items.iter().position(|p| p.handle == handle) {
            Some(0) => (Dismissed::Shown, self.items.pop_front()),
            Some(i) => (Dismissed::Waiting, self.items.remove(i)),
            None => (Dismissed::Unknown, None),
        }
    }

    /// Everything still waiting (the panel is quitting).
    pub fn drain(&mut self) -> impl Iterator<Item = Pending<R>> + '_ {
        self.items.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::request::shown;

    fn p(handle: &str) -> Pending<u8> {
        Pending {
            handle: handle.into(),
            shown: shown("t", "s", "b", None, None, &[]),
            answers: vec![Answer::Once],
            since: None,
            reply: 0,
        }
    }

    #[test]
    fn a_request_offers_deny_and_what_the_kernel_offered() {
        let mut q = Queue::default();
        q.push(p("a"));
        assert_eq!(q.offers("a", Answer::Once), Some(true));
        assert_eq!(q.offers("a", Answer::Deny), Some(true));
        assert_eq!(q.offers("a", Answer::Always), Some(false));
        assert_eq!(q.offers("b", Answer::Once), None, "not held");
    }

    #[test]
    fn one_dialog_at_a_time_oldest_first() {
        let mut q = Queue::default();
        assert!(q.push(p("a")));
        assert!(!q.push(p("b")));
        assert_eq!(q.current().unwrap().handle, "a");
        // An answer for a dialog no longer shown is ignored.
        assert!(q.answer("b").is_none());
        assert_eq!(q.answer("a").unwrap().handle, "a");
        assert_eq!(q.current().unwrap().handle, "b");
    }

    #[test]
    fn the_kernel_can_close_shown_and_waiting_requests() {
        let mut q = Queue::default();
        q.push(p("a"));
        q.push(p("b"));
        q.push(p("c"));
        assert_eq!(q.dismiss("b").0, Dismissed::Waiting);
        assert_eq!(q.dismiss("a").0, Dismissed::Shown);
        assert_eq!(q.current().unwrap().handle, "c");
        assert_eq!(q.dismiss("zz").0, Dismissed::Unknown);
        assert_eq!(q.drain().count(), 1);
        assert!(q.is_empty());
    }
}

//! Answers a notification's button gave to requests this panel does not hold: a panel started
//! by that click (D-Bus activation) after the one that showed the request went away. Each is
//! kept for a while and given when the kernel asks this panel again (with the same handle),
//! but only to a request the kernel was asking before the click: any program on the session
//! bus can activate the action, and must not answer requests made after it.

use std::time::{Duration, Instant};

use super::request::Answer;

/// How long an answer is kept.
pub const KEPT: Duration = Duration::from_secs(120);
/// How many are kept at most (the oldest goes first): activations cost the activator nothing.
pub const MOST: usize = 64;

#[derive(Debug)]
struct Early {
    handle: String,
    answer: Answer,
    /// When it was given, in milliseconds since the epoch (the kernel's `since` is too).
    at_ms: u64,
    given: Instant,
}

/// The answers kept.
#[derive(Debug, Default)]
pub struct EarlyAnswers {
    items: Vec<Early>,
}

impl EarlyAnswers {
    /// Keep `answer` to `handle` (replacing an earlier one), given at `at_ms` / `now`.
    pub fn keep(&mut self, handle: &str, answer: Answer, at_ms: u64, now: Instant) {
        self.items.retain(|e| e.handle != handle);
        if self.items.len() >= MOST {
            self.items.remove(0);
        }
        self.items.push(Early {
            handle: handle.to_string(),
            answer,
            at_ms,
            given: now,
        });
    }

    /// Whether an answer to `handle` is kept.
    pub fn has(&self, handle: &str) -> bool {
        self.items.iter().any(|e| e.handle == handle)
    }

    /// The kept answer to `handle`, taken, if the kernel says it asked (`since`) before the
    /// answer was given; `None` otherwise (then the user is asked as usual).
    pub fn take(&mut self, handle: &str, since: Option<u64>) -> Option<Answer> {
        let i = self.items.iter().position(|e| e.handle == handle)?;
        let e = self.items.remove(i);
        since.filter(|s| *s <= e.at_ms).map(|_| e.answer)
    }

    /// Forget answers kept longer than [`KEPT`].
    pub fn expire(&mut self, now: Instant) {
        self.items
            .retain(|e| now.saturating_duration_since(e.given) < KEPT);
    }

    /// How long until the oldest kept answer is to be forgotten (`None`: none is kept).
    pub fn next_expiry(&self, now: Instant) -> Option<Duration> {
        self.items
            .iter()
            .map(|e| KEPT.saturating_sub(now.saturating_duration_since(e.given)))
            .min()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_applies_to_a_request_asked_before_it() {
        let now = Instant::now();
        let mut e = EarlyAnswers::default();
        e.keep("r1", Answer::Deny, 1_000, now);
        e.keep("r2", Answer::Once, 1_000, now);
        e.keep("r3", Answer::Once, 1_000, now);
        assert_eq!(e.len(), 3);
        assert_eq!(e.take("r1", Some(900)), Some(Answer::Deny));
        // Asked after the click: not this answer's request (someone guessed its handle).
        assert_eq!(e.take("r2", Some(1_001)), None);
        // The kernel did not say when: ask the user.
        assert_eq!(e.take("r3", None), None);
        assert!(e.is_empty());
        assert_eq!(e.take("r9", Some(1)), None);
    }

    #[test]
    fn answers_are_replaced_and_expire() {
        let now = Instant::now();
        let mut e = EarlyAnswers::default();
        e.keep("r1", Answer::Once, 1_000, now);
        e.keep("r1", Answer::Deny, 2_000, now);
        assert_eq!(e.len(), 1);
        assert!(e.has("r1") && !e.has("r2"));
        assert_eq!(e.next_expiry(now), Some(KEPT));
        e.expire(now + KEPT / 2);
        assert_eq!(e.len(), 1);
        assert_eq!(e.next_expiry(now + KEPT / 2), Some(KEPT / 2));
        e.keep("r2", Answer::Deny, 3_000, now + KEPT / 4);
        assert_eq!(
            e.next_expiry(now + KEPT / 2),
            Some(KEPT / 2),
            "the oldest first"
        );
        e.expire(now + KEPT);
        assert_eq!(e.len(), 1);
        e.expire(now + KEPT + KEPT / 4);
        assert!(e.is_empty());
        assert_eq!(e.next_expiry(now), None);
        for i in 0..MOST + 5 {
            e.keep(&format!("r{i}"), Answer::Deny, 1_000, now);
        }
        assert_eq!(e.len(), MOST);
        assert!(!e.has("r0") && e.has(&format!("r{}", MOST + 4)));
    }
}

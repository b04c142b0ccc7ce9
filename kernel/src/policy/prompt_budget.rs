//! The prompt budget: how many consent dialogs one agent, and one of its tasks, may put in front
//! of the user within a sliding window. Past it, a request is denied at once, without a dialog.
//! Pure: the time comes in as milliseconds.
//!
//! The numbers: a person who has answered five dialogs for one task in ten minutes is no longer
//! reading them, and a task that needs more should be granted its rights up front (from
//! `agentctl`). Requests for one capability that arrive while a dialog is open are asked together
//! in one follow-up dialog, so a task that fetches 25 hosts at once spends two prompts, not 25.
//! Ten for the whole agent lets two such tasks run their course, and stops an agent that starts
//! task after task to keep asking.

use std::collections::{HashMap, VecDeque};

/// The window prompts are counted in.
pub const PROMPT_WINDOW_MS: u64 = 10 * 60 * 1000;
/// Most dialogs one task may open within the window.
pub const MAX_PROMPTS_PER_TASK: usize = 5;
/// Most dialogs one agent may open within the window, for all its tasks (and the calls it makes
/// without a task) together.
pub const MAX_PROMPTS_PER_AGENT: usize = 10;

/// The limits of a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_task: usize,
    pub per_agent: usize,
    pub window_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            per_task: MAX_PROMPTS_PER_TASK,
            per_agent: MAX_PROMPTS_PER_AGENT,
            window_ms: PROMPT_WINDOW_MS,
        }
    }
}

/// A budget that is spent: which limit, and when the oldest prompt it counts leaves the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    pub principal: String,
    /// The task whose limit was reached; `None` when it is the agent's own limit.
    pub task: Option<u64>,
    pub limit: usize,
    pub window_ms: u64,
    /// When one more prompt fits again (ms since the epoch).
    pub free_at: u64,
}

impl Exhausted {
    /// The reason to give (and audit), with what the user can do about it: `capability` and
    /// `scope` name the request that was denied.
    pub fn reason(&self, now: u64, capability: &str, scope: &str) -> String {
        let who = &self.principal;
        let minutes = self.window_ms.div_ceil(60_000);
        let whose = match self.task {
            Some(task) => format!("for task {task}, the most one task may"),
            None => "for all its tasks together, the most one agent may".to_string(),
        };
        let wait = self.free_at.saturating_sub(now).div_ceil(1000).max(1);
        format!(
            "denied without asking: {who} has asked the user {} times in {minutes} minutes {whose}; \
             grant it instead (agentctl grant {who} {capability} {scope} session), revoke one of \
             {who}'s grants to reset the count, or wait {wait} s",
            self.limit
        )
    }
}

/// Prompts shown per agent and per task, within the window.
#[derive(Debug, Clone, Default)]
pub struct PromptBudget {
    limits: Limits,
    /// When each agent's prompts were shown, oldest first.
    agents: HashMap<String, VecDeque<u64>>,
    /// When each task's prompts were shown, oldest first (by agent, then task).
    tasks: HashMap<(String, u64), VecDeque<u64>>,
}

/// The prompts of `times` still inside the window at `now`.
fn live(times: Option<&VecDeque<u64>>, window: u64, now: u64) -> impl Iterator<Item = u64> + '_ {
    times
        .into_iter()
        .flatten()
        .copied()
        .filter(move |t| t.saturating_add(window) > now)
}

impl PromptBudget {
    pub fn new(limits: Limits) -> PromptBudget {
        PromptBudget {
            limits,
            ..PromptBudget::default()
        }
    }

    /// Whether one more prompt of `principal` (for `task`) fits now.
    pub fn check(&self, principal: &str, task: Option<u64>, now: u64) -> Result<(), Exhausted> {
        let Limits {
            per_task,
            per_agent,
            window_ms,
        } = self.limits;
        let full = |times: Option<&VecDeque<u64>>, limit: usize, task: Option<u64>| {
            let shown: Vec<u64> = live(times, window_ms, now).collect();
            (shown.len() >= limit).then(|| Exhausted {
                principal: principal.to_string(),
                task,
                limit,
                window_ms,
                // The oldest that must leave for one more to fit.
                free_at: shown
                    .get(shown.len() - limit)
                    .map_or(now, |t| t.saturating_add(window_ms)),
            })
        };
        if let Some(task) = task {
            let key = (principal.to_string(), task);
            if let Some(e) = full(self.tasks.get(&key), per_task, Some(task)) {
                return Err(e);
            }
        }
        match full(self.agents.get(principal), per_agent, None) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Count a prompt about to be shown, if it fits; otherwise say which limit it hit.
    pub fn spend(&mut self, principal: &str, task: Option<u64>, now: u64) -> Result<(), Exhausted> {
        self.forget_before(now);
        self.check(principal, task, now)?;
        self.agents
            .entry(principal.to_string())
            .or_default()
            .push_back(now);
        if let Some(task) = task {
            self.tasks
                .entry((principal.to_string(), task))
                .or_default()
                .push_back(now);
        }
        Ok(())
    }

    /// Start `principal`'s counts afresh (the user granted or revoked one of its rights).
    pub fn reset(&mut self, principal: &str) {
        self.agents.remove(principal);
        self.tasks.retain(|(p, _), _| p != principal);
    }

    /// Drop what left the window (so finished tasks are not remembered for long).
    fn forget_before(&mut self, now: u64) {
        let window = self.limits.window_ms;
        let old = |t: &u64| t.saturating_add(window) <= now;
        for times in self.agents.values_mut().chain(self.tasks.values_mut()) {
            while times.front().is_some_and(old) {
                times.pop_front();
            }
        }
        self.agents.retain(|_, t| !t.is_empty());
        self.tasks.retain(|_, t| !t.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use proptest::prelude::*;

    const MIN: u64 = 60_000;

    #[test]
    fn five_per_task_ten_per_agent_in_ten_minutes() {
        let clock = ManualClock::new(1_000_000);
        let mut b = PromptBudget::default();
        for _ in 0..5 {
            b.spend("web", Some(1), clock.now_ms()).unwrap();
            clock.advance(MIN);
        }
        let e = b.spend("web", Some(1), clock.now_ms()).unwrap_err();
        assert_eq!((e.task, e.limit), (Some(1), 5));
        // The first prompt leaves the window 10 minutes after it was shown: 5 minutes from now.
        assert_eq!(e.free_at, 1_000_000 + 10 * MIN);
        let reason = e.reason(clock.now_ms(), "web.fetch", "example.org");
        assert!(
            reason.contains("asked the user 5 times in 10 minutes for task 1"),
            "{reason}"
        );
        assert!(reason.contains("agentctl grant web web.fetch example.org session"));
        assert!(reason.contains("wait 300 s"), "{reason}");
        // Another task of the same agent still may, up to the agent's ten.
        for _ in 0..5 {
            b.spend("web", Some(2), clock.now_ms()).unwrap();
        }
        let e = b.spend("web", Some(3), clock.now_ms()).unwrap_err();
        assert_eq!((e.task, e.limit), (None, 10));
        assert!(b.spend("web", None, clock.now_ms()).is_err());
        // Another agent is not affected.
        b.spend("docs", Some(4), clock.now_ms()).unwrap();
        // Time frees the oldest: after five more minutes task 1's first prompt left the window.
        clock.advance(5 * MIN);
        assert!(b.check("web", Some(1), clock.now_ms()).is_ok());
        b.spend("web", Some(1), clock.now_ms()).unwrap();
        assert!(b.check("web", Some(1), clock.now_ms()).is_err());
    }

    #[test]
    fn a_grant_or_a_revocation_starts_the_count_afresh() {
        let mut b = PromptBudget::new(Limits {
            per_task: 1,
            per_agent: 2,
            window_ms: 1000,
        });
        b.spend("a", Some(1), 0).unwrap();
        b.spend("b", Some(2), 0).unwrap();
        assert!(b.check("a", Some(1), 1).is_err());
        b.reset("a");
        assert!(b.check("a", Some(1), 1).is_ok());
        assert!(b.check("b", Some(2), 1).is_err());
    }

    #[test]
    fn a_clock_that_went_back_keeps_the_prompts_counted() {
        let mut b = PromptBudget::new(Limits {
            per_task: 1,
            per_agent: 5,
            window_ms: 1000,
        });
        b.spend("a", Some(1), 5_000).unwrap();
        assert!(b.spend("a", Some(1), 10).is_err());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Spend(usize, Option<u64>),
        Advance(u64),
        Reset(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..2usize, proptest::option::of(1..4u64)).prop_map(|(p, t)| Op::Spend(p, t)),
            3 => (0..400u64).prop_map(Op::Advance),
            1 => (0..2usize).prop_map(Op::Reset),
        ]
    }

    proptest! {
        /// Against a model that keeps every prompt shown: a prompt is refused exactly when the
        /// window before it already holds the task's or the agent's limit.
        #[test]
        fn never_more_than_the_limits_in_any_window(ops in proptest::collection::vec(op(), 1..200)) {
            let limits = Limits { per_task: 3, per_agent: 5, window_ms: 1000 };
            let clock = ManualClock::new(0);
            let mut budget = PromptBudget::new(limits);
            let mut shown: Vec<(usize, Option<u64>, u64)> = Vec::new();
            const P: [&str; 2] = ["a", "b"];
            for op in ops {
                match op {
                    Op::Advance(ms) => clock.advance(ms),
                    Op::Reset(p) => {
                        budget.reset(P[p]);
                        shown.retain(|s| s.0 != p);
                    }
                    Op::Spend(p, task) => {
                        let now = clock.now_ms();
                        let recent = |s: &&(usize, Option<u64>, u64)| s.0 == p && s.2 + 1000 > now;
                        let of_agent = shown.iter().filter(recent).count();
                        let of_task = shown.iter().filter(recent).filter(|s| task.is_some() && s.1 == task).count();
                        let fits = of_agent < limits.per_agent && (task.is_none() || of_task < limits.per_task);
                        let spent = budget.spend(P[p], task, now);
                        prop_assert_eq!(spent.is_ok(), fits, "{:?}", spent);
                        if let Err(e) = spent {
                            prop_assert!(e.free_at > now && e.free_at <= now + 1000);
                        } else {
                            shown.push((p, task, now));
                        }
                    }
                }
            }
        }
    }
}

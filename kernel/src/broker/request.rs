//! The values the scheduler takes and gives: a request, its ticket, its start, its end, a
//! cancellation, and the errors of a refusal.

use super::budget::Window;
use super::usage::Record;

/// A request's id, chosen by the caller, unique among queued and running requests.
pub type RequestId = u64;

/// A model request to schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: RequestId,
    pub provider: String,
    /// The agent or app that asks, whose budget it is charged to.
    pub principal: String,
    /// The app the work is done for (the task's root caller), when another than `principal`:
    /// its budget is charged too, and the usage counted for it as well.
    pub app: Option<String>,
    pub task: u64,
    /// The user waits on it.
    pub interactive: bool,
    /// Prompt tokens plus the most it may generate (the `max_tokens` it is sent with), so it
    /// cannot use more: charged at submit, settled to what it used at `finish`.
    pub estimated_tokens: u64,
}

/// How a request was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Interactive,
    Background,
    /// Background work that went unserved for `age_ms`, started ahead of its turn.
    Aged,
}

/// A request admitted to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub id: RequestId,
    /// Requests of its class queued before it on its provider.
    pub ahead: usize,
}

/// A request to run now: the caller sends it, and calls `finish` when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub id: RequestId,
    pub provider: String,
    pub principal: String,
    pub task: u64,
    pub class: Class,
    /// The tokens it was charged for (its estimate): prompt and output together stay within.
    pub charged_tokens: u64,
    pub waited_ms: u64,
}

/// A request that ended, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub id: RequestId,
    pub provider: String,
    pub principal: String,
    pub task: u64,
    pub record: Record,
}

/// What a cancellation did: queued requests removed (never to start), and running ones the
/// caller must abort and then `finish` (with what they used) to free their slots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Canceled {
    pub queued: Vec<RequestId>,
    pub running: Vec<RequestId>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchedError {
    #[error("no model provider {provider:?}")]
    UnknownProvider { provider: String },
    #[error("model provider {provider:?} needs at least one slot")]
    NoSlots { provider: String },
    #[error("request {id} is already queued or running")]
    DuplicateRequest { id: RequestId },
    #[error("request {id} is not running")]
    NotRunning { id: RequestId },
    #[error("the queue of {provider:?} is full ({limit} requests{}); try again when some finished", .principal.as_ref().map(|p| format!(" of {p}")).unwrap_or_default())]
    QueueFull {
        provider: String,
        /// Set when it is the principal's own share of the queue that is full.
        principal: Option<String>,
        limit: usize,
    },
    #[error("{principal} makes more than {per_minute} model requests a minute; try again in {retry_after_ms} ms")]
    RateLimited {
        principal: String,
        per_minute: u32,
        retry_after_ms: u64,
    },
    #[error("{}", over_budget(principal, *window, *limit, *used, *requested, *retry_after_ms))]
    BudgetExhausted {
        principal: String,
        window: Window,
        limit: u64,
        used: u64,
        requested: u64,
        /// When the window starts afresh (ms since the epoch)...
        free_at: u64,
        /// ...which is this long after the refusal.
        retry_after_ms: u64,
    },
}

/// Why a request does not fit a budget, and what helps: waiting for the window to renew, or,
/// when the request alone is more than the whole budget (a request is charged its prompt and
/// the most it may answer), asking for fewer tokens or a larger budget.
fn over_budget(
    principal: &str,
    window: Window,
    limit: u64,
    used: u64,
    requested: u64,
    retry_after_ms: u64,
) -> String {
    if requested > limit {
        return format!(
            "this request may use up to {requested} model tokens (its prompt and the most it \
             may answer), more than {principal}'s whole budget of {limit} per {window}: ask for \
             fewer (max_tokens), or raise the budget in models.toml"
        );
    }
    format!(
        "{principal} has used {used} of its {limit} model tokens this {window}, and this \
         request may use up to {requested} (its prompt and the most it may answer); the budget \
         renews in {}",
        in_words(retry_after_ms)
    )
}

/// A wait as a person reads it: seconds under a minute, minutes (rounded up) under an hour,
/// then hours and minutes.
fn in_words(ms: u64) -> String {
    let secs = ms.div_ceil(1000);
    if secs < 60 {
        return format!("{secs} s");
    }
    let mins = secs.div_ceil(60);
    match (mins / 60, mins % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_larger_than_the_whole_budget_is_not_told_to_wait() {
        let over = |used, requested| SchedError::BudgetExhausted {
            principal: "sidekick".into(),
            window: Window::Hour,
            limit: 500,
            used,
            requested,
            free_at: 0,
            retry_after_ms: 2_616_000,
        };
        let waits = over(450, 100).to_string();
        assert!(
            waits.starts_with("sidekick has used 450 of its 500"),
            "{waits}"
        );
        assert!(waits.ends_with("renews in 44 min"), "{waits}");
        assert_eq!(in_words(999), "1 s");
        assert_eq!(in_words(59_000), "59 s");
        assert_eq!(in_words(60_001), "2 min");
        assert_eq!(in_words(3_600_000), "1 h");
        assert_eq!(in_words(86_000_000), "23 h 54 min");
        let never = over(0, 1590).to_string();
        assert!(
            never.contains("more than sidekick's whole budget of 500 per hour"),
            "{never}"
        );
        assert!(never.contains("max_tokens"), "{never}");
        assert!(!never.contains("renews"), "{never}");
    }
}

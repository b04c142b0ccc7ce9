//! The model broker: agents ask the kernel for inference, and the broker decides which provider
//! serves each request and when. `scheduler` holds the queue (slots per provider, interactive
//! work first, round robin, aging), `budget` the token budgets and rate limits, `usage` the
//! accounting; all three are pure, with the time passed in.
//!
//! The caller (the broker's task, to come) owns one `Scheduler`: it submits each request and
//! answers a refusal at once; after every submit, finish and cancellation, and at
//! `next_deadline`, it calls `next` and sends what starts; when a request ends (or is aborted
//! because its task was canceled) it calls `finish` with what it used.

pub mod budget;
pub mod lanes;
pub mod request;
pub mod scheduler;
pub mod usage;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod scheduler_tests;
#[cfg(test)]
mod simulation;

pub use budget::{Budget, Window};
pub use scheduler::{
    Canceled, Class, Config, Discipline, Finished, ProviderConfig, Request, RequestId, SchedError,
    Scheduler, Start, Ticket,
};
pub use usage::{Ledger, Price, Totals, Usage};

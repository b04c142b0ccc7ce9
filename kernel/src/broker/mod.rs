//! The model broker: agents ask the kernel for inference, and the broker decides which provider
//! serves each request and when. `scheduler` holds the queue (slots per provider, interactive
//! work first, round robin, aging), `budget` the token budgets and rate limits, `usage` the
//! accounting; all three are pure, with the time passed in.

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

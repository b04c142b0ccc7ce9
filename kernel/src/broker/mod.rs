//! The model broker: agents and apps ask the kernel for inference, and the broker decides which
//! provider serves each request and when, streams the answer to the caller alone, and counts
//! what it used.
//!
//! - `settings`: where local servers are looked for, the discipline, slots, budgets
//!   (`models.toml`).
//! - `catalog`, `providers`: the providers and models there are now (local servers probed,
//!   remote ones with a stored key) and which serves a request (local first); `stored_keys`: the
//!   keys as read from the Secret Service, off the kernel's thread, and when a read is reused.
//! - `scheduler`, `budget`, `usage`, `lanes`: the queue, pure, with the time passed in (slots per
//!   provider, interactive work first with a held slot, round robin, aging, budgets, usage).
//! - `service`: the broker as a part of the kernel, owner of the scheduler and the requests;
//!   `run`: one request's run, streaming JSON lines to the caller's socket; `watch`: deadlines
//!   and tasks' ends; `convert`: requests and events between the wire and the providers;
//!   `pricing`: estimated costs; `sockets`: answer sockets, one made ahead.
//!
//! The kernel's operations (`operations/models.rs`) check who asks and what they may use, then
//! submit; over a budget or into a full queue is refused at once.

pub mod budget;
pub mod catalog;
pub mod convert;
pub mod keys;
pub mod lanes;
pub mod listener;
pub mod pricing;
pub mod providers;
pub mod request;
pub mod run;
pub mod scheduler;
pub mod service;
pub mod settings;
pub mod sockets;
pub mod stored_keys;
pub mod usage;
pub mod usage_writer;
pub mod watch;

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
pub use service::{Broker, Freshness};
pub use settings::Settings;
pub use usage::{Ledger, Price, Totals, Usage};

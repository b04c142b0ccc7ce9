//! The AgentOS kernel (`agentosd`): runs agents over private connections, routes delegation
//! as task trees, checks every action against the user's grants, records every decision.
//!
//! The core owns the state in parts (`agents`, `tasks`, `rights`, `authorize::desk`, `audit`,
//! `focus`), each behind a few methods, and publishes what changes on one event stream
//! (`events`). `policy` and `tasks::tree` are plain Rust tested without a bus. `operations`
//! holds what callers can ask. `bus/` holds the thin zbus adapters: they call operations and
//! subscribe to events; the core never imports them.

pub mod admission;
pub mod agents;
pub mod audit;
pub mod audit_entry;
pub mod authorize;
pub mod broker;
pub mod bus;
pub mod caller;
pub mod clock;
pub mod config;
pub mod discovery;
pub mod events;
pub mod focus;
pub mod identity_cache;
pub mod kernel;
pub mod launcher;
pub mod logging;
pub mod manifest;
pub mod operations;
pub mod permission_store;
pub mod policy;
#[cfg(test)]
mod property_tests;
pub mod rights;
pub mod shares;
mod sync;
pub mod tasks;
pub mod trim;

pub use caller::Caller;
pub use config::Config;
pub use kernel::Kernel;

/// The desktop-service clients live in `agentos-portal`; kept at their old paths for the kernel.
pub use agentos_portal::{consent, desktop_portal, documents};

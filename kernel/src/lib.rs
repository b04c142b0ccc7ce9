//! The AgentOS kernel (`agentosd`): runs agents over private connections, routes delegation
//! as task trees, checks every action against the user's grants, records every decision.
//!
//! Policy and task state (`policy`, `tasks`) are plain Rust tested without a bus; `bus/` holds
//! the thin zbus adapters; `kernel`, `operations`, `authorize` and `agents` tie them together.

pub mod agents;
pub mod audit;
pub mod authorize;
pub mod bus;
pub mod clock;
pub mod discovery;
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
pub mod tasks;
pub mod tools;

pub use kernel::{Caller, Config, Kernel};

/// The desktop-service clients live in `agentos-portal`; kept at their old paths for the kernel.
pub use agentos_portal::{consent, desktop_portal, documents};

//! The end-to-end harness: a private `dbus-daemon` per test, the real `agentosd` on it with the
//! built-in and test agents, a scripted consent responder, and helpers that always time out.

pub mod consent;
pub mod env;

pub use consent::{ConsentReply, Responder};
pub use env::{bin, Env};

/// Every wait in a test is bounded by this.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

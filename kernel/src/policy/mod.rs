//! The permission policy: capabilities, grants and decisions, as plain Rust with no bus in it.

pub mod decision;
pub mod grants;
pub mod location;
pub mod prompt_budget;
pub mod quota;
pub mod scope;

pub use decision::{Decision, Policy, Request};
pub use grants::{Grant, GrantTable};
pub use prompt_budget::{Exhausted, PromptBudget};

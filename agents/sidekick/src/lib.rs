//! The sidekick, the agent the user talks to: it takes the user's goal, plans with a model
//! through the kernel's broker, delegates sub-goals to the other agents and uses the platform
//! tools it may, keeps each result's origin next to it (labelled untrusted for the model), and
//! answers with its sources and the children's artifacts, streaming the answer as the task's
//! progress. The loop ([`run::run`]) is pure over [`model::Model`] and [`host::Host`]; `sdk`
//! holds their implementations over the SDK's task.

pub mod conversation;
pub mod error;
pub mod evidence;
pub mod host;
pub mod model;
pub mod offer;
pub mod prompt;
pub mod reply;
pub mod run;
pub mod sdk;
pub mod window;
pub mod written;

#[cfg(test)]
mod run_failure_tests;
#[cfg(test)]
mod run_tests;
#[cfg(test)]
mod script;

//! The AgentOS agent SDK: an agent implements [`Agent`] and calls [`run`]; the SDK connects to
//! the kernel (the socket it was launched with, or self-registration), receives tasks, and
//! carries progress, tool calls, delegation, results and artifacts over the private connection.
//!
//! ```no_run
//! use agentos_sdk::{Agent, Outcome, Task};
//!
//! struct Echo;
//! impl Agent for Echo {
//!     async fn run(&self, task: Task) -> Result<Outcome, String> {
//!         task.progress(0.5, "echoing").await.map_err(|e| e.to_string())?;
//!         Ok(Outcome::text(task.goal.clone()))
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() {
//!     agentos_sdk::run_or_exit(Echo).await
//! }
//! ```

mod connect;
mod model;
mod outcome;
mod register;
mod report;
mod service;
mod task;
pub mod text_model;
pub mod untrusted;
pub mod words;

pub use agentos_client::{
    ChatError, ChatEvent, ChatMessage, ChatReply, ChatRequest, ChatStream, ToolCall, ToolDefinition,
};
pub use agentos_dbus_interfaces::inference::{class, error_kind, finish};
pub use agentos_dbus_interfaces::{AgentInfo, ArtifactInfo, Error, FileEntry, ModelInfo};
pub use connect::{run, run_or_exit, SdkError};
pub use outcome::Outcome;
pub use register::{register, stay_registered, Registration};
pub use task::{ChildOutcome, Task};

use std::future::Future;

/// An agent: what it does with a task, and (optionally) with a direct call.
pub trait Agent: Send + Sync + 'static {
    /// Work on a task until done. `Ok` completes it with a result and artifacts; `Err` fails it
    /// with a message for the user. The future is dropped if the task is canceled.
    fn run(&self, task: Task) -> impl Future<Output = Result<Outcome, String>> + Send;

    /// Answer a direct call (`org.agentos.Agent1.Call`). Not supported unless overridden.
    fn call(
        &self,
        method: &str,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, Error>> + Send {
        let _ = payload;
        let method = method.to_string();
        async move {
            Err(Error::NotSupported(format!(
                "this agent has no method {method:?}"
            )))
        }
    }
}

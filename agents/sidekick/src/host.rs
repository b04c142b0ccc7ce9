//! The kernel as the loop sees it: which agents, tools and models there are, delegating a goal
//! and waiting for the child, calling a tool, reporting progress. The SDK's task is one
//! implementation (`sdk.rs`); the tests script another.

use std::future::Future;

use agentos_dbus_interfaces::{AgentInfo, ModelInfo, ToolInfo};

/// A call to the kernel that failed; the message is for people (and the model).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HostError {
    /// The child task, when the failure came after it was made.
    pub task: Option<u64>,
    pub message: String,
}

impl HostError {
    pub fn new(message: impl Into<String>) -> HostError {
        HostError {
            task: None,
            message: message.into(),
        }
    }
}

/// How a delegated child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildReport {
    pub task: u64,
    /// The task's final state: `completed`, `failed`, `canceled`, `rejected`.
    pub state: String,
    /// Its result, or why it did not complete.
    pub text: String,
    /// Names of the artifacts it returned, with a start of the text of those that are text.
    pub artifacts: Vec<(String, Option<String>)>,
}

impl ChildReport {
    pub fn completed(&self) -> bool {
        self.state == "completed"
    }
}

pub trait Host: Sync {
    fn list_agents(&self) -> impl Future<Output = Result<Vec<AgentInfo>, HostError>> + Send;
    /// Every tool the kernel offers, each saying whether this agent declares its capability.
    fn list_tools(&self) -> impl Future<Output = Result<Vec<ToolInfo>, HostError>> + Send;
    fn list_models(&self) -> impl Future<Output = Result<Vec<ModelInfo>, HostError>> + Send;
    /// Delegate `goal` to `agent` as a child task and wait until it ends.
    fn delegate(
        &self,
        agent: &str,
        goal: &str,
    ) -> impl Future<Output = Result<ChildReport, HostError>> + Send;
    /// Call a platform tool with its arguments (a JSON object as text); the result as text.
    fn call_tool(
        &self,
        tool: &str,
        arguments: &str,
    ) -> impl Future<Output = Result<String, HostError>> + Send;
    /// Report progress; a failure to report is not the task's failure.
    fn progress(&self, fraction: f64, message: &str) -> impl Future<Output = ()> + Send;
}

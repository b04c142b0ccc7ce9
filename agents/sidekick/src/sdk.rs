//! The loop's [`Host`] and [`Model`] over the SDK's task: the kernel's `Host1` on the agent's
//! private connection, and its broker (`Host1.Chat`). Also passes completed children's
//! artifacts up to the sidekick's own task.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

use agentos_dbus_interfaces::inference::{error_kind, ChatEvent, ChatRequest};
use agentos_dbus_interfaces::{AgentInfo, ModelInfo, ToolInfo};
use agentos_sdk::{ChatError, ChatStream, ChildOutcome, Error, Outcome, Task};

use crate::host::{ChildReport, Host, HostError};
use crate::model::{Model, ModelFailure, Replies};

/// Most bytes read of a tool's data, a file it opened, or the start of a child's text artifact.
const MAX_READ: u64 = 64 * 1024;
/// Bytes of a child's text artifact shown to the model, and how many artifacts are looked at.
const ARTIFACT_EXCERPT: u64 = 2 * 1024;
const ARTIFACTS_LOOKED_AT: usize = 4;
/// Most artifacts a task may return (the kernel's limit).
const MAX_ARTIFACTS: usize = 64;

/// The kernel, for one task.
pub struct Kernel<'a> {
    task: &'a Task,
    /// Children that completed, by id, kept to adopt their artifacts.
    children: Mutex<HashMap<u64, ChildOutcome>>,
}

impl<'a> Kernel<'a> {
    pub fn new(task: &'a Task) -> Kernel<'a> {
        Kernel {
            task,
            children: Mutex::new(HashMap::new()),
        }
    }

    /// Add the artifacts of these children to `outcome`, each under its own name, or under
    /// `task<id>-<name>` when two share one. One that cannot be opened is left out, and the
    /// result says so: the answer is worth more than a missing file.
    pub async fn adopt(&self, children: &[u64], mut outcome: Outcome) -> Outcome {
        let kept: Vec<ChildOutcome> = {
            let map = self.children.lock().unwrap_or_else(|p| p.into_inner());
            children
                .iter()
                .filter_map(|c| map.get(c).cloned())
                .collect()
        };
        let mut missing = Vec::new();
        for child in kept {
            for artifact in &child.artifacts {
                if outcome.artifacts.len() >= MAX_ARTIFACTS {
                    missing.push(format!(
                        "{} of task {} (too many files)",
                        artifact.name, child.id
                    ));
                    continue;
                }
                let file = match self
                    .task
                    .open_child_artifact(child.id, &artifact.name)
                    .await
                {
                    Ok(file) => file,
                    Err(e) => {
                        missing.push(format!(
                            "{} of task {} ({})",
                            artifact.name,
                            child.id,
                            e.message()
                        ));
                        continue;
                    }
                };
                let taken = outcome.artifacts.iter().any(|(n, _)| *n == artifact.name);
                let name = if taken {
                    format!("task{}-{}", child.id, artifact.name)
                } else {
                    artifact.name.clone()
                };
                outcome = outcome.with_file(&name, file);
            }
        }
        if !missing.is_empty() {
            outcome.result.push_str(&format!(
                "\n\n(Files the agents returned that are not passed on: {}.)",
                missing.join("; ")
            ));
        }
        outcome
    }

    /// The start of a child's artifact, if it reads as text.
    async fn excerpt(&self, child: u64, name: &str) -> Option<String> {
        let file = self.task.open_child_artifact(child, name).await.ok()?;
        let bytes = read_at_most(file, ARTIFACT_EXCERPT)?;
        as_text(&bytes)
    }
}

fn read_at_most(file: impl Read, max: u64) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// Bytes as text, unless they look binary (a NUL byte).
fn as_text(bytes: &[u8]) -> Option<String> {
    if bytes.contains(&0) {
        return None;
    }
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// A tool's output as text for the model: its result, then its data, then the start of the
/// file it opened, each bounded; binary content is named, not shown.
fn tool_text(result: &str, data: &[u8], file: Option<impl Read>) -> String {
    let mut text = result.to_string();
    if !data.is_empty() {
        let data = &data[..data.len().min(MAX_READ as usize)];
        match as_text(data) {
            Some(t) => text.push_str(&format!("\n{t}")),
            None => text.push_str(&format!("\n[{} bytes of binary data]", data.len())),
        }
    }
    if let Some(file) = file {
        match read_at_most(file, MAX_READ).as_deref().map(as_text) {
            Some(Some(t)) => text.push_str(&format!("\n{t}")),
            Some(None) => text.push_str("\n[a binary file]"),
            None => text.push_str("\n[the file could not be read]"),
        }
    }
    text
}

fn host_error(e: Error) -> HostError {
    HostError::new(e.message())
}

impl Host for Kernel<'_> {
    async fn list_agents(&self) -> Result<Vec<AgentInfo>, HostError> {
        self.task.list_agents().await.map_err(host_error)
    }

    async fn list_tools(&self) -> Result<Vec<ToolInfo>, HostError> {
        self.task.list_tools().await.map_err(host_error)
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, HostError> {
        self.task.list_models().await.map_err(host_error)
    }

    async fn delegate(&self, agent: &str, goal: &str) -> Result<ChildReport, HostError> {
        let id = self.task.delegate(agent, goal).await.map_err(host_error)?;
        let child = self.task.await_child(id).await.map_err(|e| HostError {
            task: Some(id),
            message: e.message(),
        })?;
        let mut artifacts = Vec::new();
        if child.state == "completed" {
            for (i, a) in child.artifacts.iter().enumerate() {
                let excerpt = if i < ARTIFACTS_LOOKED_AT {
                    self.excerpt(id, &a.name).await
                } else {
                    None
                };
                artifacts.push((a.name.clone(), excerpt));
            }
            self.children
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, child.clone());
        }
        Ok(ChildReport {
            task: id,
            state: child.state,
            text: child.text,
            artifacts,
        })
    }

    async fn call_tool(&self, tool: &str, arguments: &str) -> Result<String, HostError> {
        let (result, data, fds) = self
            .task
            .call_tool(tool, arguments)
            .await
            .map_err(host_error)?;
        // A tool that opened a file (files.read) hands it over as an fd its result indexes.
        let index = serde_json::from_str::<serde_json::Value>(&result)
            .ok()
            .and_then(|v| v.get("fd").and_then(serde_json::Value::as_u64));
        let file = index
            .and_then(|i| fds.into_iter().nth(i as usize))
            .map(std::fs::File::from);
        Ok(tool_text(&result, &data, file))
    }

    async fn progress(&self, fraction: f64, message: &str) {
        let _ = self.task.progress(fraction.clamp(0.0, 1.0), message).await;
    }
}

/// The kernel's broker, asked on the task's behalf.
pub struct Broker<'a> {
    task: &'a Task,
}

impl<'a> Broker<'a> {
    pub fn new(task: &'a Task) -> Broker<'a> {
        Broker { task }
    }
}

/// One reply's events, read from the broker's socket (dropping it cancels the request).
pub struct Events(ChatStream);

impl Replies for Events {
    async fn next(&mut self) -> Option<Result<ChatEvent, ModelFailure>> {
        Some(self.0.next().await?.map_err(stream_failure))
    }
}

impl Model for Broker<'_> {
    type Replies = Events;

    async fn chat(&self, request: &ChatRequest) -> Result<Events, ModelFailure> {
        self.task.chat(request).await.map(Events).map_err(refusal)
    }
}

/// The kernel refused the request: named by the kind the refusal stands for.
fn refusal(e: Error) -> ModelFailure {
    let kind = match &e {
        Error::NoModel(_) => error_kind::NO_MODEL,
        Error::AccessDenied(_) => "denied",
        Error::QuotaExceeded(_) => error_kind::BUDGET,
        Error::Timeout(_) => error_kind::TIMEOUT,
        Error::Canceled(_) => error_kind::CANCELED,
        _ => error_kind::PROVIDER,
    };
    ModelFailure::new(kind, e.message())
}

fn stream_failure(e: ChatError) -> ModelFailure {
    match e {
        ChatError::Model { kind, message } => ModelFailure { kind, message },
        ChatError::Refused(e) => refusal(e),
        other => ModelFailure::broken(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_the_kernels_words_and_name_the_kind() {
        let f = refusal(Error::NoModel("add one with agentctl models add".into()));
        assert_eq!(
            f,
            ModelFailure::new(error_kind::NO_MODEL, "add one with agentctl models add")
        );
        assert_eq!(refusal(Error::AccessDenied("no".into())).kind, "denied");
        let f = stream_failure(ChatError::Model {
            kind: error_kind::CONTEXT_OVERFLOW.into(),
            message: "too long".into(),
        });
        assert_eq!(f.kind, error_kind::CONTEXT_OVERFLOW);
        assert_eq!(
            stream_failure(ChatError::EndedEarly).kind,
            error_kind::PROVIDER
        );
        assert_eq!(as_text(b"a\0b"), None);
    }

    #[test]
    fn tool_output_reads_as_text_bounded() {
        let none: Option<&[u8]> = None;
        assert_eq!(
            tool_text(r#"{"status":200}"#, b"<p>hi</p>", none),
            "{\"status\":200}\n<p>hi</p>"
        );
        assert_eq!(
            tool_text(r#"{"path":"a.txt","fd":0}"#, b"", Some(&b"file text"[..])),
            "{\"path\":\"a.txt\",\"fd\":0}\nfile text"
        );
        assert!(tool_text("{}", b"\0\x01", none).ends_with("[2 bytes of binary data]"));
        let big = vec![b'x'; 200 * 1024];
        assert_eq!(
            tool_text("{}", b"", Some(&big[..])).len(),
            3 + MAX_READ as usize
        );
        assert_eq!(as_text(b"plain").as_deref(), Some("plain"));
    }
}

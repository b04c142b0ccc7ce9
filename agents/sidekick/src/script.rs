//! A scripted model and a scripted kernel for the loop's tests, and helpers to read what was
//! asked of them.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use agentos_dbus_interfaces::inference::{ChatEvent, ChatMessage, ChatRequest, ToolCall};
use agentos_dbus_interfaces::{AgentInfo, ModelInfo, ToolInfo};
use serde_json::Value;

use crate::host::{ChildReport, Host, HostError};
use crate::model::{Model, ModelFailure, Replies};
use crate::offer::tests::{agent, tool};
use crate::run::Settings;

/// A model that answers from a script and keeps every request.
#[derive(Default)]
pub(crate) struct Script {
    replies: Mutex<VecDeque<Result<Vec<ChatEvent>, ModelFailure>>>,
    requests: Mutex<Vec<ChatRequest>>,
}

pub(crate) struct Events(VecDeque<ChatEvent>);

impl Replies for Events {
    async fn next(&mut self) -> Option<Result<ChatEvent, ModelFailure>> {
        self.0.pop_front().map(Ok)
    }
}

impl Model for Script {
    type Replies = Events;
    async fn chat(&self, request: &ChatRequest) -> Result<Events, ModelFailure> {
        assert_eq!(
            request.check(),
            Ok(()),
            "every request is one the kernel takes"
        );
        self.requests.lock().unwrap().push(request.clone());
        let next = self.replies.lock().unwrap().pop_front();
        next.unwrap_or_else(|| Err(ModelFailure::broken("the script ran out")))
            .map(|events| Events(events.into()))
    }
}

impl Script {
    pub(crate) fn new(replies: Vec<Result<Vec<ChatEvent>, ModelFailure>>) -> Script {
        Script {
            replies: Mutex::new(replies.into()),
            ..Script::default()
        }
    }
    pub(crate) fn requests(&self) -> Vec<ChatRequest> {
        self.requests.lock().unwrap().clone()
    }
}

pub(crate) fn started() -> ChatEvent {
    ChatEvent::Started {
        provider: "llama-server".into(),
        model: "qwen".into(),
        local: true,
    }
}

pub(crate) fn done(finish: &str) -> ChatEvent {
    ChatEvent::Done {
        finish: finish.into(),
    }
}

/// A reply of text in pieces.
pub(crate) fn says(pieces: &[&str]) -> Result<Vec<ChatEvent>, ModelFailure> {
    let mut events = vec![started()];
    events.extend(pieces.iter().map(|p| ChatEvent::Text {
        text: (*p).to_string(),
    }));
    events.push(done("stop"));
    Ok(events)
}

/// A reply that calls tools.
pub(crate) fn calls(calls: &[(&str, Value)]) -> Result<Vec<ChatEvent>, ModelFailure> {
    let mut events = vec![started()];
    for (i, (name, arguments)) in calls.iter().enumerate() {
        events.push(ChatEvent::ToolCall {
            call: ToolCall {
                id: format!("call{i}"),
                name: (*name).to_string(),
                arguments: arguments.clone(),
            },
        });
    }
    events.push(done("tool_calls"));
    Ok(events)
}

/// A kernel with scripted agents, tools and children, keeping what was asked of it.
pub(crate) struct Kernel {
    pub(crate) agents: Vec<AgentInfo>,
    pub(crate) tools: Vec<ToolInfo>,
    pub(crate) models: Vec<ModelInfo>,
    /// What each delegation to an agent returns, in turn (the last one repeats).
    pub(crate) children: Mutex<Vec<(String, Result<ChildReport, HostError>)>>,
    pub(crate) delegations: Mutex<Vec<(String, String)>>,
    pub(crate) tool_calls: Mutex<Vec<(String, Value)>>,
    pub(crate) progress: Mutex<Vec<String>>,
}

impl Kernel {
    pub(crate) fn new() -> Kernel {
        Kernel {
            agents: vec![
                agent("docs", "Finds and reads your documents"),
                agent("web", "Fetches a web page"),
                agent("sidekick", "The user's sidekick"),
            ],
            tools: vec![tool("web.fetch", true), tool("files.read", false)],
            models: Vec::new(),
            children: Mutex::new(Vec::new()),
            delegations: Mutex::new(Vec::new()),
            tool_calls: Mutex::new(Vec::new()),
            progress: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn child(self, agent: &str, report: Result<ChildReport, HostError>) -> Kernel {
        self.children
            .lock()
            .unwrap()
            .push((agent.to_string(), report));
        self
    }

    pub(crate) fn delegations(&self) -> Vec<(String, String)> {
        self.delegations.lock().unwrap().clone()
    }

    pub(crate) fn progress(&self) -> Vec<String> {
        self.progress.lock().unwrap().clone()
    }
}

pub(crate) fn completed(task: u64, text: &str) -> Result<ChildReport, HostError> {
    Ok(ChildReport {
        task,
        state: "completed".into(),
        text: text.into(),
        artifacts: vec![("matches.txt".into(), Some("budget.txt: 5 EUR".into()))],
    })
}

impl Host for Kernel {
    async fn list_agents(&self) -> Result<Vec<AgentInfo>, HostError> {
        Ok(self.agents.clone())
    }
    async fn list_tools(&self) -> Result<Vec<ToolInfo>, HostError> {
        Ok(self.tools.clone())
    }
    async fn list_models(&self) -> Result<Vec<ModelInfo>, HostError> {
        Ok(self.models.clone())
    }
    async fn delegate(&self, agent: &str, goal: &str) -> Result<ChildReport, HostError> {
        self.delegations
            .lock()
            .unwrap()
            .push((agent.to_string(), goal.to_string()));
        let children = self.children.lock().unwrap();
        let mine: Vec<_> = children.iter().filter(|(a, _)| a == agent).collect();
        let n = self
            .delegations()
            .iter()
            .filter(|(a, _)| a == agent)
            .count();
        match mine.get(n.saturating_sub(1)).or(mine.last()) {
            Some((_, report)) => report.clone(),
            None => Err(HostError::new(format!("no agent {agent}"))),
        }
    }
    async fn call_tool(&self, tool: &str, arguments: &str) -> Result<String, HostError> {
        let args: Value = serde_json::from_str(arguments).unwrap();
        self.tool_calls
            .lock()
            .unwrap()
            .push((tool.to_string(), args));
        Ok("<html>Example Domain</html>".into())
    }
    async fn progress(&self, _fraction: f64, message: &str) {
        self.progress.lock().unwrap().push(message.to_string());
    }
}

pub(crate) fn settings() -> Settings {
    Settings {
        progress_every: Duration::ZERO,
        ..Settings::default()
    }
}

/// The tool results of a request, as (call id, content).
pub(crate) fn results(request: &ChatRequest) -> Vec<(String, String)> {
    request
        .messages
        .iter()
        .filter_map(|m| match m {
            ChatMessage::Tool {
                call_id, content, ..
            } => Some((call_id.clone(), content.clone())),
            _ => None,
        })
        .collect()
}

pub(crate) fn tool_names(request: &ChatRequest) -> Vec<String> {
    request.tools.iter().map(|t| t.name.clone()).collect()
}

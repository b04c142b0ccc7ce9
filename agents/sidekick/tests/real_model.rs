//! The sidekick's loop against a real small model (Qwen2.5-Coder-0.5B served by llama.cpp's
//! `llama-server` with the repository's tool-call template, set up by `scripts/local-llm` and
//! started here on a private port by the workspace's `agentos_tests::local_llm`), asked through the providers' own
//! HTTP code as the kernel's broker asks it. The agents are the shipped manifests' docs and web;
//! the kernel is scripted (docs answers with its source). Without the model the test says why
//! it skips, unless `AGENTOS_REQUIRE_LOCAL_LLM=1`. Structure is asserted, not wording.

// Shared with docs and web, whose tests also ask it directly (`chat`, unused here).
#[allow(dead_code)]
#[path = "../../docs/tests/support/llama.rs"]
mod llama;

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use agentos_agent_sidekick::host::{ChildReport, Host, HostError};
use agentos_agent_sidekick::model::{Model, ModelFailure, Replies};
use agentos_agent_sidekick::run::{run, Settings};
use agentos_dbus_interfaces::inference::{self as wire, ChatMessage};
use agentos_dbus_interfaces::{AgentInfo, ModelInfo, ToolInfo};
use agentos_models as models;
use futures_util::StreamExt;

/// The real model, asked through the OpenAI-compatible provider; keeps the tools each request
/// offered.
struct Real {
    provider: models::OpenAi,
    offered: Mutex<Vec<Vec<String>>>,
}

struct Events(models::ChatStream);

impl Replies for Events {
    async fn next(&mut self) -> Option<Result<wire::ChatEvent, ModelFailure>> {
        loop {
            let event = match self.0.next().await? {
                Ok(event) => event,
                Err(e) => return Some(Err(ModelFailure::broken(e.to_string()))),
            };
            let event = match event {
                models::ChatEvent::TextDelta(text) => wire::ChatEvent::Text { text },
                models::ChatEvent::ToolCallFinished { call, .. } => wire::ChatEvent::ToolCall {
                    call: wire::ToolCall {
                        id: call.id,
                        name: call.name,
                        arguments: call.arguments,
                    },
                },
                models::ChatEvent::Done { finish } => wire::ChatEvent::Done {
                    finish: match finish {
                        models::FinishReason::Stop => "stop".into(),
                        models::FinishReason::Length => "length".into(),
                        models::FinishReason::ToolCalls => "tool_calls".into(),
                        models::FinishReason::ContentFilter => "content_filter".into(),
                        models::FinishReason::Other(s) => s,
                    },
                },
                _ => continue,
            };
            return Some(Ok(event));
        }
    }
}

impl Model for Real {
    type Replies = Events;

    async fn chat(&self, request: &wire::ChatRequest) -> Result<Events, ModelFailure> {
        self.offered
            .lock()
            .unwrap()
            .push(request.tools.iter().map(|t| t.name.clone()).collect());
        let messages = request
            .messages
            .iter()
            .map(|m| match m {
                ChatMessage::System { content } => models::Message::system(content),
                ChatMessage::User { content } => models::Message::user(content),
                ChatMessage::Assistant {
                    content,
                    tool_calls,
                } => models::Message::assistant(
                    content,
                    tool_calls
                        .iter()
                        .map(|c| models::ToolCall {
                            id: c.id.clone(),
                            name: c.name.clone(),
                            arguments: c.arguments.clone(),
                            signature: None,
                        })
                        .collect(),
                ),
                ChatMessage::Tool {
                    call_id,
                    name,
                    content,
                } => models::Message::Tool {
                    call_id: call_id.clone(),
                    name: name.clone(),
                    content: content.clone(),
                },
            })
            .collect();
        let asked = models::ChatRequest {
            model: llama::MODEL_ALIAS.into(),
            messages,
            tools: request
                .tools
                .iter()
                .map(|t| models::ToolSpec {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters: t.parameters.clone(),
                })
                .collect(),
            temperature: request.temperature,
            max_tokens: request.max_tokens,
        };
        self.provider
            .chat(&asked, None)
            .await
            .map(Events)
            .map_err(|e| ModelFailure::broken(e.to_string()))
    }
}

/// A kernel with the shipped docs and web agents; docs answers the budget question.
struct Kernel {
    agents: Vec<AgentInfo>,
    delegations: Mutex<Vec<(String, String)>>,
}

/// An agent as its shipped manifest describes it.
fn shipped(id: &str) -> AgentInfo {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../packaging/agents/{id}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let m: toml::Table = toml::from_str(&text).unwrap();
    let s = |k: &str| {
        m.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let list = |k: &str| {
        m.get(k)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    AgentInfo {
        id: s("id"),
        name: s("name"),
        description: s("description"),
        path: format!("/org/agentos/Kernel/agents/{id}")
            .try_into()
            .unwrap(),
        capabilities: list("capabilities"),
        handles: list("handles"),
        connected: false,
    }
}

impl Host for Kernel {
    async fn list_agents(&self) -> Result<Vec<AgentInfo>, HostError> {
        Ok(self.agents.clone())
    }
    /// The kernel's tools, each declared by the shipped sidekick (so that it can hold the
    /// rights its children use); docs and web are for them, so none is offered.
    async fn list_tools(&self) -> Result<Vec<ToolInfo>, HostError> {
        let tool = |name: &str| ToolInfo {
            name: name.into(),
            capability: name.into(),
            description: format!("the platform's {name}"),
            parameters: r#"{"type":"object","properties":{}}"#.into(),
            declared: true,
        };
        Ok(vec![
            tool("files.list"),
            tool("files.read"),
            tool("web.fetch"),
        ])
    }
    async fn list_models(&self) -> Result<Vec<ModelInfo>, HostError> {
        Ok(vec![ModelInfo {
            provider: "llama-server".into(),
            model: llama::MODEL_ALIAS.into(),
            local: true,
            reachable: true,
            context: 4096,
            slots: 1,
        }])
    }
    async fn delegate(&self, agent: &str, goal: &str) -> Result<ChildReport, HostError> {
        let n = {
            let mut d = self.delegations.lock().unwrap();
            d.push((agent.to_string(), goal.to_string()));
            d.len() as u64
        };
        if agent != "docs" {
            return Ok(ChildReport {
                task: 100 + n,
                state: "failed".into(),
                text: "the goal contains no http(s) URL".into(),
                artifacts: Vec::new(),
            });
        }
        Ok(ChildReport {
            task: 100 + n,
            state: "completed".into(),
            text: "The budget for 2026 is 42 thousand euros [budget.txt].\n\nSources:\n- /home/u/Documents/budget.txt".into(),
            artifacts: Vec::new(),
        })
    }
    async fn call_tool(&self, tool: &str, _arguments: &str) -> Result<String, HostError> {
        Err(HostError::new(format!("no tool {tool} in this test")))
    }
    async fn progress(&self, _fraction: f64, _message: &str) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_model_delegates_to_docs_and_the_answer_cites_the_file() {
    let Some(server) = llama::start_or_skip().await else {
        return;
    };
    let http = models::Http::new(models::Limits::default()).unwrap();
    let model = Real {
        provider: models::OpenAi::new(http, format!("{}/v1", server.url()), None),
        offered: Mutex::new(Vec::new()),
    };
    let kernel = Kernel {
        agents: vec![shipped("docs"), shipped("sidekick"), shipped("web")],
        delegations: Mutex::new(Vec::new()),
    };
    let answer = tokio::time::timeout(
        Duration::from_secs(600),
        run(
            "What is the budget for 2026? Look in my documents.",
            &model,
            &kernel,
            &Settings::default(),
        ),
    )
    .await
    .expect("an answer within 10 minutes")
    .unwrap();
    let delegations = kernel.delegations.lock().unwrap().clone();
    let offered = model.offered.lock().unwrap().clone();
    eprintln!(
        "delegations: {delegations:?}\noffered: {offered:?}\nanswer:\n{}",
        answer.text
    );
    assert_eq!(
        offered[0],
        ["delegate_to_docs", "delegate_to_web"],
        "never itself"
    );
    let (agent, goal) = delegations.first().expect("the model delegated");
    assert_eq!(agent, "docs");
    assert!(goal.to_lowercase().contains("budget"), "{goal}");
    assert!(answer.text.contains("42"), "{}", answer.text);
    assert!(
        answer
            .text
            .contains("Sources:\n- agent \"docs\" (task 101)")
            && answer.text.contains("\n  - /home/u/Documents/budget.txt"),
        "{}",
        answer.text
    );
    if offered.len() > 1 && !offered.last().unwrap().is_empty() {
        assert!(answer.steps < Settings::default().max_steps);
    }
    drop(server);
}

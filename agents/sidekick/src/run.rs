//! The sidekick's loop: offer the other agents and the declared platform tools to the model, run
//! the calls it makes (delegations through the kernel, tool calls), give it the results with
//! their origins, and repeat for at most a few steps; then ask for the final answer with no
//! tools offered, streaming it as the task's progress. A reply that begins as a tool call but
//! cannot be read is never the answer: the model is asked once more, and told why; a second one
//! fails the task, saying so. Pure over [`Model`] and [`Host`].

use std::time::Duration;

use agentos_dbus_interfaces::inference::{error_kind, finish, ChatRequest, ToolCall};
use agentos_dbus_interfaces::text::display_safe;
use serde_json::{Map, Value};

use crate::conversation::{CallResult, Conversation, Step};
use crate::error::SidekickError;
use crate::evidence::{Evidence, Origin, Status};
use crate::host::Host;
use crate::model::Model;
use crate::offer::{Action, Offer};
use crate::prompt;
use crate::reply::{receive, Reply, Showing};
use crate::window::{tokens, Window};
use crate::written;

/// Calls of one reply that are run; a model that makes more has the rest left out.
pub const MAX_CALLS_PER_STEP: usize = 8;

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The sidekick's own agent id (not offered to itself).
    pub self_id: String,
    /// Steps with tools before the final answer is asked for.
    pub max_steps: usize,
    /// Least time between two progress reports of a streaming answer.
    pub progress_every: Duration,
    /// Bytes of a streaming answer shown in a progress message (the kernel takes 4096).
    pub progress_bytes: usize,
    /// The model or class asked for (`None`: the broker's default, a local model first).
    pub model: Option<String>,
    pub temperature: Option<f32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            self_id: "sidekick".into(),
            max_steps: 8,
            progress_every: Duration::from_millis(150),
            progress_bytes: 4000,
            model: None,
            temperature: Some(0.0),
        }
    }
}

/// What the sidekick found.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The task's result: the answer and the sources it used.
    pub text: String,
    /// Where the results came from, in the order first used.
    pub sources: Vec<Origin>,
    /// Children that completed with artifacts, to adopt.
    pub children: Vec<u64>,
    /// Steps with tool calls that ran.
    pub steps: usize,
}

/// Work towards `goal` and answer it.
pub async fn run<M: Model, H: Host>(
    goal: &str,
    model: &M,
    host: &H,
    settings: &Settings,
) -> Result<Answer, SidekickError> {
    host.progress(0.01, "looking at the agents and tools").await;
    let agents = host.list_agents().await.unwrap_or_default();
    let tools = host.list_tools().await.unwrap_or_default();
    let models = host.list_models().await.unwrap_or_default();
    let mut window = Window::guess(&models);
    let offer = Offer::build(&settings.self_id, &agents, &tools);
    let names = offer.names();
    let mut loop_ = Loop {
        conversation: Conversation::new(prompt::system_prompt(&offer), goal),
        sources: Vec::new(),
        children: Vec::new(),
        made: Vec::new(),
    };
    let mut answer: Option<Reply> = None;
    let mut failed: Option<SidekickError> = None;
    let mut steps = 0;
    // Whether the model was just asked once more after a call it did not finish writing (two
    // in a row end the run).
    let mut asked_again = false;
    if !offer.is_empty() {
        let definitions = offer.definitions();
        let tools_tokens = tokens(&serde_json::to_string(&definitions).unwrap_or_default());
        for step in 0..settings.max_steps {
            let fraction = 0.05 + 0.8 * step as f64 / settings.max_steps as f64;
            loop_
                .conversation
                .fit(window.prompt_budget().saturating_sub(tools_tokens));
            let request = loop_.request(definitions.clone(), window, settings);
            let showing = showing(fraction, settings);
            let mut reply = match receive(model, &request, host, showing).await {
                Ok(reply) => reply,
                // A model that cannot call tools still answers from what it knows.
                Err(f) if f.kind == error_kind::TOOLS_NOT_SUPPORTED && step == 0 => break,
                // What was found so far is still worth giving (see below).
                Err(f) => {
                    failed = Some(SidekickError::Model(f));
                    break;
                }
            };
            if let Some(w) = Window::of(&models, &reply.provider, &reply.model) {
                window = w;
            }
            if reply.calls.is_empty() {
                take_written_calls(&mut reply, &offer, step);
            }
            if reply.calls.is_empty() && written::unreadable(&reply.text, &names) {
                // A call the model did not finish writing is no answer: it is told so, once.
                if asked_again {
                    failed = Some(SidekickError::UnfinishedCall);
                    break;
                }
                asked_again = true;
                loop_
                    .conversation
                    .unread(&reply.text, prompt::UNREADABLE_CALL);
                continue;
            }
            // A readable reply: a later broken call gets its one more try too.
            asked_again = false;
            if reply.calls.is_empty() {
                // An answer; unless it is only a call written as text, then the final turn
                // asks for one.
                if !prompt::clean_answer(&reply.text, &names).is_empty() {
                    answer = Some(reply);
                }
                break;
            }
            reply.calls.truncate(MAX_CALLS_PER_STEP);
            name_calls(&mut reply.calls, step);
            if reply.calls.iter().all(|c| loop_.made.contains(&key(c))) {
                // Only calls already made: small models do this when they have what they
                // need. Time for the answer.
                break;
            }
            let mut results = Vec::with_capacity(reply.calls.len());
            for call in &reply.calls {
                let evidence = if loop_.made.contains(&key(call)) {
                    Evidence::failed(
                        Origin::Sidekick {
                            tool: call.name.clone(),
                        },
                        "not run again: this call was already made with the same arguments, \
                         and its result is above",
                    )
                } else {
                    loop_.made.push(key(call));
                    loop_.execute(call, &offer, host, fraction, window).await
                };
                results.push(CallResult {
                    call_id: call.id.clone(),
                    tool: call.name.clone(),
                    evidence,
                });
            }
            loop_.conversation.push(Step {
                text: reply.text,
                calls: reply.calls,
                results,
            });
            steps += 1;
        }
    }
    let reply = match (answer, failed) {
        (Some(reply), _) => Ok(reply),
        (None, Some(f)) => Err(f),
        (None, None) => {
            loop_
                .conversation
                .close(prompt::answer_prompt(), prompt::CLOSING);
            loop_.conversation.fit(window.prompt_budget());
            let request = loop_.request(Vec::new(), window, settings);
            receive(model, &request, host, showing(0.9, settings))
                .await
                .map_err(SidekickError::Model)
                .and_then(|reply| finished(reply, &names))
        }
    };
    let results = || {
        loop_
            .conversation
            .steps()
            .iter()
            .flat_map(|s| s.results.iter().map(|r| &r.evidence))
    };
    let reply = match reply {
        Ok(reply) => reply,
        // A model that fails after the tools brought something back (rate limited, too slow,
        // out of window) does not take the results and the children's files down with it.
        // (What was found is in the sources, which keep those of steps dropped to fit the
        // window.)
        Err(e) if !e.canceled() && !loop_.sources.is_empty() => {
            let why = e.to_string();
            let said = prompt::model_failed_answer(&why, results());
            return Ok(Answer {
                text: prompt::outcome_text(&said, &loop_.sources),
                sources: loop_.sources,
                children: loop_.children,
                steps,
            });
        }
        Err(e) => return Err(e),
    };
    let said = prompt::clean_answer(&reply.text, &names);
    let cut = reply.finish == finish::LENGTH;
    let said = if said.is_empty() {
        prompt::fallback_answer(results())
    } else if cut {
        format!("{said}\n\n(The answer stops here: the model reached its length limit.)")
    } else if reply.finish == crate::reply::REPEATING {
        format!("{said}\n\n(The answer stops here: the model began repeating itself.)")
    } else if reply.finish == crate::reply::TOO_LONG {
        format!(
            "{said}\n\n(The answer stops here: it reached the {} KiB one answer may take.)",
            crate::reply::MAX_REPLY_BYTES / 1024
        )
    } else {
        said
    };
    // Every call failed (nothing found, in the steps kept or those dropped): the model's words
    // are a guess, and the user is told why there is nothing better.
    let said = if loop_.sources.is_empty() {
        prompt::unsourced_answer(&said, results()).unwrap_or(said)
    } else {
        said
    };
    Ok(Answer {
        text: prompt::outcome_text(&said, &loop_.sources),
        sources: loop_.sources,
        children: loop_.children,
        steps,
    })
}

fn showing(fraction: f64, settings: &Settings) -> Showing {
    Showing {
        fraction,
        every: settings.progress_every,
        max_bytes: settings.progress_bytes,
    }
}

/// Whether a goal the model wrote is text it copied from the prompt instead of the user's
/// question (the example question, or a tool's description or a part of one): a small model
/// does that, and the prompt asks for the user's question word for word, which is then passed
/// on instead.
fn copied(goal: &str, offer: &Offer) -> bool {
    const SHORTEST: usize = 16;
    goal == prompt::EXAMPLE_QUESTION
        || (goal.len() >= SHORTEST
            && offer
                .definitions()
                .iter()
                .any(|d| d.description.contains(goal)))
}

/// The final turn's reply, unless it began as a call to one of the tools `names` that could
/// not be read: that turn offers no tools, so there is no asking again, and it is no answer.
/// (With no tools at all, JSON cut short is only an answer cut short.)
fn finished(reply: Reply, names: &[&str]) -> Result<Reply, SidekickError> {
    if !names.is_empty() && written::unreadable(&reply.text, names) {
        return Err(SidekickError::UnfinishedCall);
    }
    Ok(reply)
}

/// Calls of offered tools the model wrote as text become its calls (see `written`).
fn take_written_calls(reply: &mut Reply, offer: &Offer, step: usize) {
    let (rest, written) = written::split(&reply.text, &offer.names());
    let calls: Vec<ToolCall> = written
        .into_iter()
        .filter(|(name, _)| offer.action(name).is_some())
        .enumerate()
        .map(|(i, (name, arguments))| ToolCall {
            id: format!("written_{step}_{i}"),
            name,
            arguments,
        })
        .collect();
    if !calls.is_empty() {
        reply.calls = calls;
        reply.text = rest;
    }
}

/// A call as compared with the calls made before: the tool and its arguments.
fn key(call: &ToolCall) -> (String, String) {
    (call.name.clone(), call.arguments.to_string())
}

/// Every call gets an id of its own (a provider that sends none, or the same twice, would
/// leave results that answer no call).
fn name_calls(calls: &mut [ToolCall], step: usize) {
    for i in 0..calls.len() {
        let taken = calls[..i].iter().any(|c| c.id == calls[i].id);
        if calls[i].id.trim().is_empty() || taken {
            calls[i].id = format!("sidekick_{step}_{i}");
        }
    }
}

/// The loop's state between steps.
struct Loop {
    conversation: Conversation,
    sources: Vec<Origin>,
    children: Vec<u64>,
    /// Calls made so far (tool and arguments).
    made: Vec<(String, String)>,
}

impl Loop {
    fn request(
        &self,
        tools: Vec<agentos_dbus_interfaces::inference::ToolDefinition>,
        window: Window,
        settings: &Settings,
    ) -> ChatRequest {
        ChatRequest {
            tools,
            model: settings.model.clone(),
            temperature: settings.temperature,
            max_tokens: Some(window.reply_tokens()),
            ..ChatRequest::new(self.conversation.messages())
        }
    }

    /// Run one call; whatever happens becomes its evidence (a failure is a result the model
    /// reads, not the sidekick's failure).
    async fn execute<H: Host>(
        &mut self,
        call: &ToolCall,
        offer: &Offer,
        host: &H,
        fraction: f64,
        window: Window,
    ) -> Evidence {
        let mine = || Origin::Sidekick {
            tool: call.name.clone(),
        };
        let mut evidence = match (offer.action(&call.name), call.arguments.as_object()) {
            (None, _) => Evidence::failed(
                mine(),
                format!(
                    "there is no tool named {:?}; the tools are: {}",
                    display_safe(&call.name, 80),
                    offer.names().join(", ")
                ),
            ),
            (Some(_), None) => Evidence::failed(
                mine(),
                format!(
                    "the arguments are not a JSON object of the tool's parameters: {}",
                    display_safe(&call.arguments.to_string(), 200)
                ),
            ),
            (Some(Action::Delegate { agent }), Some(args)) => {
                match args.get("goal").and_then(Value::as_str).map(str::trim) {
                    Some(goal) if !goal.is_empty() => {
                        let goal = if copied(goal, offer) {
                            self.conversation.asked().to_string()
                        } else {
                            goal.to_string()
                        };
                        self.delegate(agent, &goal, host, fraction).await
                    }
                    _ => Evidence::failed(
                        mine(),
                        "the argument \"goal\" (a non-empty string) is missing",
                    ),
                }
            }
            (Some(Action::Platform { tool }), Some(args)) => {
                let origin = Origin::Tool {
                    name: tool.clone(),
                    target: target(args),
                };
                let what = match &origin {
                    Origin::Tool {
                        target: Some(t), ..
                    } => format!("using {tool}: {}", display_safe(t, 300)),
                    _ => format!("using {tool}"),
                };
                host.progress(fraction, &what).await;
                match host
                    .call_tool(tool, &Value::Object(args.clone()).to_string())
                    .await
                {
                    Ok(text) => Evidence::ok(origin, text),
                    Err(e) => Evidence::failed(origin, e.message),
                }
            }
        };
        evidence.cut_to(window.result_bytes());
        if evidence.status == Status::Ok && !self.sources.contains(&evidence.origin) {
            self.sources.push(evidence.origin.clone());
        }
        evidence
    }

    async fn delegate<H: Host>(
        &mut self,
        agent: &str,
        goal: &str,
        host: &H,
        fraction: f64,
    ) -> Evidence {
        host.progress(
            fraction,
            &format!("asking {agent}: {}", display_safe(goal, 300)),
        )
        .await;
        let origin = |task, cites| Origin::Agent {
            id: agent.to_string(),
            task,
            goal: goal.to_string(),
            cites,
        };
        match host.delegate(agent, goal).await {
            Ok(child) if child.completed() => {
                if !child.artifacts.is_empty() {
                    self.children.push(child.task);
                }
                let mut text = child.text.clone();
                for (name, excerpt) in &child.artifacts {
                    match excerpt {
                        Some(ex) => text.push_str(&format!(
                            "\n[artifact {}, beginning:]\n{ex}",
                            display_safe(name, 100)
                        )),
                        None => text.push_str(&format!("\n[artifact {}]", display_safe(name, 100))),
                    }
                }
                let cites = crate::evidence::cited(&child.text);
                Evidence::ok(origin(Some(child.task), cites), text)
            }
            Ok(child) => Evidence::failed(
                origin(Some(child.task), Vec::new()),
                format!("the task ended {}: {}", child.state, child.text),
            ),
            Err(e) => Evidence::failed(origin(e.task, Vec::new()), e.message),
        }
    }
}

/// What a platform call touches, from its arguments: a URL, or a file or folder.
fn target(args: &Map<String, Value>) -> Option<String> {
    let s = |k: &str| {
        args.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    if let Some(url) = s("url") {
        return Some(url.to_string());
    }
    match (s("folder"), s("path")) {
        (Some(folder), Some(path)) => Some(format!("{}/{path}", folder.trim_end_matches('/'))),
        (Some(folder), None) => Some(folder.to_string()),
        (None, Some(path)) => Some(path.to_string()),
        (None, None) => None,
    }
}

//! Between the wire and the providers: a caller's request (`inference::ChatRequest`) becomes the
//! providers' request, and their events become the caller's (`inference::ChatEvent`).
//!
//! Tool names are made safe for every provider (OpenAI and Anthropic take only letters, digits,
//! `_` and `-`; `files.read` is sent as `files_read`) and turned back in the calls the model
//! makes. Gemini makes up its calls' ids (`call_0` in every reply), so the broker gives them ids
//! unique to the request, and keeps Gemini's thought signatures by those ids, to send them back
//! with the calls when a later request carries them.

use std::collections::{HashMap, VecDeque};

use agentos_dbus_interfaces::inference::{self as wire, error_kind, finish};
use agentos_models::{ChatEvent, FinishReason, Message, ModelError, ToolCall, ToolSpec};

/// The tools' names as sent, and back.
#[derive(Debug, Clone, Default)]
pub struct ToolNames {
    sent: HashMap<String, String>,
    back: HashMap<String, String>,
}

fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

impl ToolNames {
    /// Safe, distinct names for `names`.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> ToolNames {
        let mut t = ToolNames::default();
        for name in names {
            if t.sent.contains_key(name) {
                continue;
            }
            let base = safe(name);
            let mut candidate = base.clone();
            let mut n = 2;
            while t.back.contains_key(&candidate) {
                let suffix = format!("_{n}");
                let keep = base.len().min(64 - suffix.len());
                candidate = format!("{}{suffix}", &base[..keep]);
                n += 1;
            }
            t.sent.insert(name.to_string(), candidate.clone());
            t.back.insert(candidate, name.to_string());
        }
        t
    }

    /// The name `name` is sent as.
    pub fn to_provider(&self, name: &str) -> String {
        self.sent.get(name).cloned().unwrap_or_else(|| safe(name))
    }

    /// The caller's name of a tool the model called (as it came when it is none of them).
    pub fn to_caller(&self, name: &str) -> String {
        self.back
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }
}

/// Gemini's thought signatures by the principal whose request made the call and the call's id,
/// the most recent ones kept: a caller naming another's call id in its history gets nothing.
#[derive(Debug, Default)]
pub struct Signatures {
    by_id: HashMap<(String, String), String>,
    order: VecDeque<(String, String)>,
}

/// How many signatures are kept.
const SIGNATURES: usize = 4096;

impl Signatures {
    pub fn keep(&mut self, owner: &str, id: &str, signature: String) {
        let key = (owner.to_string(), id.to_string());
        if self.by_id.insert(key.clone(), signature).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > SIGNATURES {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    pub fn get(&self, owner: &str, id: &str) -> Option<String> {
        self.by_id
            .get(&(owner.to_string(), id.to_string()))
            .cloned()
    }
}

/// The providers' request for `req` of `owner`, sent to `model` (with `owner`'s signatures).
pub fn request(
    req: &wire::ChatRequest,
    model: &str,
    max_tokens: Option<u32>,
    signatures: &Signatures,
    owner: &str,
) -> (agentos_models::ChatRequest, ToolNames) {
    let names = ToolNames::new(req.tools.iter().map(|t| t.name.as_str()));
    let messages = req
        .messages
        .iter()
        .map(|m| match m {
            wire::ChatMessage::System { content } => Message::system(content.clone()),
            wire::ChatMessage::User { content } => Message::user(content.clone()),
            wire::ChatMessage::Assistant {
                content,
                tool_calls,
            } => Message::assistant(
                content.clone(),
                tool_calls
                    .iter()
                    .map(|c| ToolCall {
                        id: c.id.clone(),
                        name: names.to_provider(&c.name),
                        arguments: c.arguments.clone(),
                        signature: signatures.get(owner, &c.id),
                    })
                    .collect(),
            ),
            wire::ChatMessage::Tool {
                call_id,
                name,
                content,
            } => Message::Tool {
                call_id: call_id.clone(),
                name: names.to_provider(name),
                content: content.clone(),
            },
        })
        .collect();
    let tools = req
        .tools
        .iter()
        .map(|t| ToolSpec {
            name: names.to_provider(&t.name),
            description: t.description.clone(),
            parameters: t.parameters.clone(),
        })
        .collect();
    let request = agentos_models::ChatRequest {
        model: model.to_string(),
        messages,
        tools,
        temperature: req.temperature,
        max_tokens,
    };
    (request, names)
}

/// The word for why a model stopped.
pub fn finish_word(reason: &FinishReason) -> String {
    match reason {
        FinishReason::Stop => finish::STOP.into(),
        FinishReason::Length => finish::LENGTH.into(),
        FinishReason::ToolCalls => finish::TOOL_CALLS.into(),
        FinishReason::ContentFilter => finish::CONTENT_FILTER.into(),
        FinishReason::Other(word) => word.clone(),
    }
}

/// The kind of a provider's error.
pub fn error_kind(e: &ModelError) -> &'static str {
    match e {
        ModelError::WrongKey { .. } => error_kind::WRONG_KEY,
        ModelError::Unreachable { .. } => error_kind::UNREACHABLE,
        ModelError::UnknownModel { .. } => error_kind::UNKNOWN_MODEL,
        ModelError::ContextOverflow { .. } => error_kind::CONTEXT_OVERFLOW,
        ModelError::ToolsNotSupported { .. } => error_kind::TOOLS_NOT_SUPPORTED,
        ModelError::RateLimited { .. } => error_kind::RATE_LIMITED,
        ModelError::Timeout { .. } => error_kind::TIMEOUT,
        ModelError::Canceled => error_kind::CANCELED,
        _ => error_kind::PROVIDER,
    }
}

/// A provider's error as the caller reads it, naming the provider.
pub fn error_event(provider: &str, e: &ModelError) -> wire::ChatEvent {
    let message = match e {
        // Which key, in the command that replaces it.
        ModelError::WrongKey { status } => match add_command(provider) {
            Some(command) => format!(
                "{provider}: the model server refused the API key (HTTP {status}): store the \
                 right one with `{command}`"
            ),
            // A local server that wants a key of its own: none of AgentOS's to replace.
            None => format!(
                "{provider}: the model server refused the request (HTTP {status}): it asks for \
                 a key AgentOS does not send to local servers"
            ),
        },
        e => format!("{provider}: {e}"),
    };
    wire::ChatEvent::Error {
        kind: error_kind(e).into(),
        message,
    }
}

/// The `agentctl models add` command that stores `provider`'s key (`kind[:account]`, as the
/// catalog names it); none for a provider whose keys AgentOS does not keep (a local server).
fn add_command(provider: &str) -> Option<String> {
    let (kind, account) = super::catalog::split_name(provider);
    let kind = agentos_portal::secrets::Provider::parse(kind).ok()?;
    let mut command = format!("agentctl models add {kind}");
    if let Some(account) = account {
        command.push_str(&format!(" --account {account}"));
    }
    if kind.needs_base_url() {
        command.push_str(" --base-url URL");
    }
    Some(command)
}

/// Turns one request's provider events into the caller's.
#[derive(Debug)]
pub struct Events {
    names: ToolNames,
    /// Set for Gemini: `<prefix><n>` becomes each call's id.
    unique_ids: Option<String>,
    calls: usize,
    /// The principal whose request this is (its calls' signatures are kept as its).
    owner: String,
}

impl Events {
    pub fn new(names: ToolNames, unique_ids: Option<String>, owner: String) -> Events {
        Events {
            names,
            unique_ids,
            owner,
            calls: 0,
        }
    }

    /// The caller's event for a provider's, if it gets one (fragments of calls do not: calls
    /// go out whole). A thought signature that came with a call is kept in `signatures`.
    pub fn convert(
        &mut self,
        e: ChatEvent,
        signatures: &mut Signatures,
    ) -> Option<wire::ChatEvent> {
        match e {
            ChatEvent::TextDelta(text) if text.is_empty() => None,
            ChatEvent::TextDelta(text) => Some(wire::ChatEvent::Text { text }),
            ChatEvent::ToolCallStarted { .. } | ChatEvent::ToolCallArguments { .. } => None,
            ChatEvent::ToolCallFinished { call, .. } => {
                let id = match &self.unique_ids {
                    Some(prefix) => format!("{prefix}{}", self.calls),
                    None => call.id,
                };
                self.calls += 1;
                if let Some(sig) = call.signature {
                    signatures.keep(&self.owner, &id, sig);
                }
                Some(wire::ChatEvent::ToolCall {
                    call: wire::ToolCall {
                        id,
                        name: self.names.to_caller(&call.name),
                        arguments: call.arguments,
                    },
                })
            }
            ChatEvent::Usage(u) => Some(wire::ChatEvent::Usage {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                estimated: u.estimated,
            }),
            ChatEvent::Done { finish } => Some(wire::ChatEvent::Done {
                finish: finish_word(&finish),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_names_are_safe_distinct_and_turned_back() {
        let t = ToolNames::new(["files.read", "files_read", "web.fetch", "files.read"]);
        assert_eq!(t.to_provider("files.read"), "files_read");
        assert_eq!(t.to_provider("files_read"), "files_read_2");
        assert_eq!(t.to_caller("files_read"), "files.read");
        assert_eq!(t.to_caller("files_read_2"), "files_read");
        assert_eq!(t.to_caller("web_fetch"), "web.fetch");
        assert_eq!(t.to_caller("unknown"), "unknown");
        let long = "a.".repeat(40);
        let t = ToolNames::new([long.as_str(), &long.replace('.', "_")]);
        assert!(t.to_provider(&long).len() <= 64);
        assert_ne!(t.to_provider(&long), t.to_provider(&long.replace('.', "_")));
    }

    #[test]
    fn a_request_keeps_its_turns_and_gets_the_signatures_back() {
        let mut sigs = Signatures::default();
        sigs.keep("docs", "g1_0", "sig".into());
        let call = wire::ToolCall {
            id: "g1_0".into(),
            name: "files.read".into(),
            arguments: json!({"path": "a"}),
        };
        let req = wire::ChatRequest {
            tools: vec![wire::ToolDefinition {
                name: "files.read".into(),
                description: "read".into(),
                parameters: json!({"type": "object"}),
            }],
            temperature: Some(0.0),
            ..wire::ChatRequest::new(vec![
                wire::ChatMessage::system("s"),
                wire::ChatMessage::user("u"),
                wire::ChatMessage::assistant("", vec![call.clone()]),
                wire::ChatMessage::tool_result(&call, "text"),
            ])
        };
        let (r, _) = request(&req, "m", Some(64), &sigs, "docs");
        assert_eq!(r.model, "m");
        assert_eq!(r.max_tokens, Some(64));
        assert_eq!(r.tools[0].name, "files_read");
        match &r.messages[2] {
            Message::Assistant { tool_calls, .. } => {
                assert_eq!(tool_calls[0].name, "files_read");
                assert_eq!(tool_calls[0].signature.as_deref(), Some("sig"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&r.messages[3], Message::Tool { name, call_id, .. } if name == "files_read" && call_id == "g1_0")
        );
        // Another principal naming that call in its history gets no signature.
        let (r, _) = request(&req, "m", Some(64), &sigs, "web");
        match &r.messages[2] {
            Message::Assistant { tool_calls, .. } => assert_eq!(tool_calls[0].signature, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gemini_calls_get_unique_ids_and_their_signatures_are_kept() {
        let mut sigs = Signatures::default();
        let mut ev = Events::new(
            ToolNames::new(["web.fetch"]),
            Some("g7_".into()),
            "web".into(),
        );
        let call = |sig: Option<&str>| ChatEvent::ToolCallFinished {
            index: 0,
            call: ToolCall {
                id: "call_0".into(),
                name: "web_fetch".into(),
                arguments: json!({}),
                signature: sig.map(str::to_string),
            },
        };
        let a = ev.convert(call(Some("s1")), &mut sigs).unwrap();
        let b = ev.convert(call(None), &mut sigs).unwrap();
        let ids: Vec<String> = [a, b]
            .into_iter()
            .map(|e| match e {
                wire::ChatEvent::ToolCall { call } => {
                    assert_eq!(call.name, "web.fetch");
                    call.id
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["g7_0", "g7_1"]);
        assert_eq!(sigs.get("web", "g7_0").as_deref(), Some("s1"));
        assert_eq!(sigs.get("docs", "g7_0"), None);
        assert_eq!(sigs.get("web", "g7_1"), None);
        assert_eq!(
            ev.convert(ChatEvent::TextDelta(String::new()), &mut sigs),
            None
        );
    }

    #[test]
    fn signatures_are_bounded() {
        let mut sigs = Signatures::default();
        for i in 0..SIGNATURES + 10 {
            sigs.keep("a", &i.to_string(), "s".into());
        }
        assert_eq!(sigs.get("a", "0"), None);
        assert!(sigs.get("a", &(SIGNATURES + 9).to_string()).is_some());
        assert_eq!(sigs.by_id.len(), SIGNATURES);
    }

    #[test]
    fn errors_are_kinds_and_name_the_provider() {
        let e = ModelError::WrongKey { status: 401 };
        assert_eq!(
            error_event("anthropic:work", &e),
            wire::ChatEvent::Error {
                kind: "wrong_key".into(),
                message: "anthropic:work: the model server refused the API key (HTTP 401): \
                          store the right one with `agentctl models add anthropic --account work`"
                    .into(),
            }
        );
        assert_eq!(
            add_command("openai-compatible").as_deref(),
            Some("agentctl models add openai-compatible --base-url URL")
        );
        assert_eq!(add_command("llama-server"), None);
        assert!(matches!(
            error_event("llama-server", &ModelError::WrongKey { status: 401 }),
            wire::ChatEvent::Error { message, .. } if !message.contains("agentctl")
        ));
        let e = ModelError::Unreachable {
            address: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        };
        assert!(matches!(
            error_event("openai", &e),
            wire::ChatEvent::Error { message, .. } if message == format!("openai: {e}")
        ));
        assert_eq!(
            error_kind(&ModelError::Protocol { detail: "x".into() }),
            "provider"
        );
    }
}

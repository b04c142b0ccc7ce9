//! Inference through the kernel, as it crosses the wire: what a caller asks a model for
//! ([`ChatRequest`], JSON in `Models1.Chat` and `Host1.Chat`) and what streams back to that caller
//! alone ([`ChatEvent`], one JSON object per line on the socket those calls return). The caller
//! reads the socket to its end; closing it cancels the request and frees the provider's slot.
//! Serde types and their limits only: no I/O.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most bytes of a request's JSON (messages, tools and all).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Most messages in one request.
pub const MAX_MESSAGES: usize = 1024;
/// Most tool definitions in one request.
pub const MAX_TOOLS: usize = 128;

/// Model names that choose by kind rather than by name (`ChatRequest::model`).
pub mod class {
    /// Any local model (the default policy prefers local models anyway).
    pub const LOCAL: &str = "local";
    /// The smallest local model.
    pub const LOCAL_SMALL: &str = "local-small";
    /// A remote provider's model (needs `model.remote` on that provider).
    pub const REMOTE: &str = "remote";
}

/// A chat completion asked of the kernel's broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Tools the model may call, each with a JSON Schema of its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    /// `None`: the default policy (a local model first). Else a class (see [`class`]), or a
    /// model as `provider/model` (`llama-server/qwen2.5-coder-0.5b`, `anthropic/claude-…`), or a
    /// model name any provider offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The user waits on this answer (a bus caller's own question). Agents' requests are
    /// interactive when the user watches their task (`Kernel1.SetFocus`); this field is ignored
    /// for them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub interactive: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ChatRequest {
    /// A request with these messages and nothing else set.
    pub fn new(messages: Vec<ChatMessage>) -> ChatRequest {
        ChatRequest {
            messages,
            tools: Vec::new(),
            model: None,
            temperature: None,
            max_tokens: None,
            interactive: false,
        }
    }

    /// What is wrong with this request, in words for the caller, if anything.
    pub fn check(&self) -> Result<(), String> {
        if self.messages.is_empty() {
            return Err("a chat request needs at least one message".into());
        }
        if self.messages.len() > MAX_MESSAGES {
            return Err(format!(
                "a chat request holds at most {MAX_MESSAGES} messages, not {}",
                self.messages.len()
            ));
        }
        if self.tools.len() > MAX_TOOLS {
            return Err(format!(
                "a chat request offers at most {MAX_TOOLS} tools, not {}",
                self.tools.len()
            ));
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(format!("temperature must be between 0 and 2, not {t}"));
            }
        }
        if self.max_tokens == Some(0) {
            return Err("max_tokens must be at least 1".into());
        }
        for tool in &self.tools {
            if tool.name.is_empty() || tool.name.len() > 64 {
                return Err("a tool's name must be 1 to 64 characters".into());
            }
            if !tool
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return Err(format!(
                    "tool name {:?} may hold only letters, digits, '_', '-' and '.'",
                    tool.name
                ));
            }
            if !tool.parameters.is_object() {
                return Err(format!(
                    "tool {:?}: parameters must be a JSON Schema object",
                    tool.name
                ));
            }
        }
        Ok(())
    }

    /// Parse and check a request's JSON.
    pub fn from_json(json: &str) -> Result<ChatRequest, String> {
        if json.len() > MAX_REQUEST_BYTES {
            return Err(format!(
                "a chat request is at most {MAX_REQUEST_BYTES} bytes of JSON, not {}",
                json.len()
            ));
        }
        let request: ChatRequest = serde_json::from_str(json)
            .map_err(|e| format!("the chat request is not valid: {e}"))?;
        request.check()?;
        Ok(request)
    }

    /// The request as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase", deny_unknown_fields)]
pub enum ChatMessage {
    System {
        content: String,
    },
    User {
        content: String,
    },
    Assistant {
        #[serde(default)]
        content: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// A tool's result, answering the assistant's call `call_id`.
    Tool {
        call_id: String,
        name: String,
        content: String,
    },
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> ChatMessage {
        ChatMessage::System {
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> ChatMessage {
        ChatMessage::User {
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> ChatMessage {
        ChatMessage::Assistant {
            content: content.into(),
            tool_calls,
        }
    }

    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> ChatMessage {
        ChatMessage::Tool {
            call_id: call.id.clone(),
            name: call.name.clone(),
            content: content.into(),
        }
    }
}

/// A call the model made to one of the offered tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments, parsed; an object when the model produced valid JSON.
    pub arguments: Value,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    /// A JSON Schema object describing the arguments.
    pub parameters: Value,
}

/// Why a model stopped.
pub mod finish {
    pub const STOP: &str = "stop";
    pub const LENGTH: &str = "length";
    pub const TOOL_CALLS: &str = "tool_calls";
    pub const CONTENT_FILTER: &str = "content_filter";
}

/// Kinds of [`ChatEvent::Error`], stable for programs; the message is for people.
pub mod error_kind {
    /// No model is configured or found; the message says how to add one.
    pub const NO_MODEL: &str = "no_model";
    /// The provider refused the key.
    pub const WRONG_KEY: &str = "wrong_key";
    /// The provider could not be reached.
    pub const UNREACHABLE: &str = "unreachable";
    /// The provider does not know the model.
    pub const UNKNOWN_MODEL: &str = "unknown_model";
    /// The conversation does not fit the model's window.
    pub const CONTEXT_OVERFLOW: &str = "context_overflow";
    /// The model cannot call tools.
    pub const TOOLS_NOT_SUPPORTED: &str = "tools_not_supported";
    /// The provider is rate limiting, after retries.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The provider took too long.
    pub const TIMEOUT: &str = "timeout";
    /// The provider failed (5xx) or spoke a broken protocol.
    pub const PROVIDER: &str = "provider";
    /// The request was canceled (its task ended, or the caller canceled it).
    pub const CANCELED: &str = "canceled";
    /// The caller or agent is over its token budget or rate.
    pub const BUDGET: &str = "budget";
}

/// What streams back, one JSON object per line. A stream ends with exactly one `done` or
/// `error`, after which the kernel closes its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The request got a slot: which provider and model serve it.
    Started {
        provider: String,
        model: String,
        local: bool,
    },
    /// Text of the answer, in order.
    Text { text: String },
    /// A whole tool call (its arguments complete).
    ToolCall { call: ToolCall },
    /// Tokens used; `estimated` when the server reported none and the kernel counted.
    Usage {
        input_tokens: u64,
        output_tokens: u64,
        estimated: bool,
    },
    /// The answer is complete; `finish` is one of [`finish`] or the provider's own word.
    Done { finish: String },
    /// The request failed; `kind` is one of [`error_kind`].
    Error { kind: String, message: String },
}

impl ChatEvent {
    /// The event as one line of JSON, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// Whether the stream ends with this event.
    pub fn is_last(&self) -> bool {
        matches!(self, ChatEvent::Done { .. } | ChatEvent::Error { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_are_checked() {
        let json = r#"{"messages":[{"role":"system","content":"be brief"},
            {"role":"user","content":"hi"},
            {"role":"assistant","content":"","tool_calls":[{"id":"c1","name":"files.read","arguments":{"path":"a"}}]},
            {"role":"tool","call_id":"c1","name":"files.read","content":"text"}],
            "tools":[{"name":"files.read","description":"read","parameters":{"type":"object"}}],
            "model":"local-small","temperature":0,"max_tokens":64}"#;
        let r = ChatRequest::from_json(json).unwrap();
        assert_eq!(r.messages.len(), 4);
        assert_eq!(ChatRequest::from_json(&r.to_json()).unwrap(), r);
        assert!(ChatRequest::from_json(r#"{"messages":[]}"#).is_err());
        assert!(ChatRequest::from_json(
            r#"{"messages":[{"role":"user","content":"x"}],"temperature":9}"#
        )
        .is_err());
        assert!(ChatRequest::from_json(
            r#"{"messages":[{"role":"user","content":"x"}],"key":"sk"}"#
        )
        .is_err());
        assert!(ChatRequest::from_json(r#"{"messages":[{"role":"root","content":"x"}]}"#).is_err());
        let bad_tool = r#"{"messages":[{"role":"user","content":"x"}],
            "tools":[{"name":"a b","description":"","parameters":{}}]}"#;
        assert!(ChatRequest::from_json(bad_tool).is_err());
    }

    #[test]
    fn events_are_lines_with_a_type() {
        let e = ChatEvent::Text {
            text: "a\nb".into(),
        };
        let line = e.to_line();
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert_eq!(line, "{\"type\":\"text\",\"text\":\"a\\nb\"}\n");
        let back: ChatEvent = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(back, e);
        assert!(ChatEvent::Done {
            finish: "stop".into()
        }
        .is_last());
        assert!(!e.is_last());
    }
}

//! The OpenAI-compatible chat API (OpenAI, Ollama, llama.cpp's `llama-server`, vLLM, LM Studio):
//! `POST {base}/chat/completions` streamed, tool-call fragments assembled by index, usage from
//! the last chunk (asked for with `stream_options.include_usage`) or counted when none comes.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::chat::{ApiKey, ChatRequest, Message, ToolCall};
use crate::classify::{classify, Failure};
use crate::count;
use crate::error::ModelError;
use crate::event::{ChatEvent, FinishReason, Usage};
use crate::sent::OnSent;
use crate::stream::{events, next_call, parse, ChatStream, Decoder};
use crate::transport::{parse_url, Http};

/// A server speaking the OpenAI chat API.
#[derive(Debug, Clone)]
pub struct OpenAi {
    http: Http,
    /// `{base}/chat/completions`, parsed once; the base is up to and including the version,
    /// e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    chat_url: Result<reqwest::Url, ModelError>,
    key: Option<ApiKey>,
}

impl OpenAi {
    pub fn new(http: Http, base_url: impl Into<String>, key: Option<ApiKey>) -> Self {
        let base = base_url.into();
        OpenAi {
            http,
            chat_url: parse_url(&format!("{}/chat/completions", base.trim_end_matches('/'))),
            key,
        }
    }

    /// Ask for a streamed reply; `on_sent`, if given, is told when the request goes on the wire.
    pub async fn chat(
        &self,
        request: &ChatRequest,
        on_sent: Option<OnSent>,
    ) -> Result<ChatStream, ModelError> {
        let url = self.chat_url.as_ref().map_err(Clone::clone)?;
        let body = body(request);
        let auth = self.key.as_ref().map(|k| format!("Bearer {}", k.expose()));
        let mut headers = vec![("accept", "text/event-stream")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth.as_str()));
        }
        let key = self.key.as_ref().map(ApiKey::expose);
        let (resp, started) = self
            .http
            .post(url, &headers, &body, &request.model, key, on_sent)
            .await?;
        let decoder = OpenAiDecoder {
            model: request.model.clone(),
            key: key.map(str::to_owned),
            prompt_tokens: count::prompt_tokens(request),
            ..OpenAiDecoder::default()
        };
        Ok(events(resp, decoder, self.http.limits, started))
    }
}

/// The JSON body a request is sent as (public for tests of the wire format).
#[doc(hidden)]
pub fn body_for_test(request: &ChatRequest) -> Value {
    body(request)
}

/// The request's JSON body.
pub(crate) fn body(request: &ChatRequest) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| match m {
            Message::System { text } => json!({"role": "system", "content": text}),
            Message::User { text } => json!({"role": "user", "content": text}),
            Message::Assistant { text, tool_calls } => {
                let mut v = json!({"role": "assistant", "content": text});
                if !tool_calls.is_empty() {
                    v["tool_calls"] = tool_calls
                        .iter()
                        .map(|c| {
                            json!({"id": c.id, "type": "function", "function":
                                {"name": c.name, "arguments": sent_arguments(&c.arguments).to_string()}})
                        })
                        .collect();
                }
                v
            }
            Message::Tool {
                call_id, content, ..
            } => json!({"role": "tool", "tool_call_id": call_id, "content": content}),
        })
        .collect();
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function":
                    {"name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect();
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(n) = request.max_tokens {
        body["max_tokens"] = json!(n);
    }
    body
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<CallFragment>,
}

#[derive(Deserialize)]
struct CallFragment {
    index: Option<usize>,
    id: Option<String>,
    function: Option<FunctionFragment>,
}

#[derive(Deserialize)]
struct FunctionFragment {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// A tool call whose fragments are still arriving.
#[derive(Default)]
struct Partial {
    id: String,
    name: String,
    arguments: String,
    started: bool,
}

#[derive(Default)]
struct OpenAiDecoder {
    model: String,
    key: Option<String>,
    prompt_tokens: u64,
    /// Calls by the server's index.
    calls: BTreeMap<usize, Partial>,
    /// The server's index -> ours.
    ours: HashMap<usize, usize>,
    /// The server's indexes, in order of first appearance (ours).
    order: Vec<usize>,
    generated: String,
    finish: Option<String>,
    usage: Option<Usage>,
}

impl OpenAiDecoder {
    fn fragment(
        &mut self,
        f: CallFragment,
        out: &mut VecDeque<ChatEvent>,
    ) -> Result<(), ModelError> {
        let server_index = f.index.unwrap_or(self.order.len());
        let index = match self.ours.get(&server_index) {
            Some(index) => *index,
            None => {
                let index = next_call(self.order.len())?;
                self.order.push(server_index);
                self.ours.insert(server_index, index);
                index
            }
        };
        let call = self.calls.entry(server_index).or_default();
        if let Some(id) = f.id.filter(|s| !s.is_empty()) {
            call.id = id;
        }
        let (name, args) = match f.function {
            Some(func) => (func.name, func.arguments),
            None => (None, None),
        };
        if let Some(name) = name.filter(|s| !s.is_empty()) {
            call.name.push_str(&name);
        }
        if !call.started && !call.name.is_empty() {
            call.started = true;
            if call.id.is_empty() {
                call.id = format!("call_{index}");
            }
            out.push_back(ChatEvent::ToolCallStarted {
                index,
                id: call.id.clone(),
                name: call.name.clone(),
            });
        }
        if let Some(args) = args.filter(|s| !s.is_empty()) {
            call.arguments.push_str(&args);
            self.generated.push_str(&args);
            out.push_back(ChatEvent::ToolCallArguments {
                index,
                fragment: args,
            });
        }
        Ok(())
    }

    fn finish_calls(&mut self, out: &mut VecDeque<ChatEvent>) -> Result<(), ModelError> {
        for (index, server_index) in self.order.iter().enumerate() {
            let Some(call) = self.calls.remove(server_index) else {
                continue;
            };
            if call.name.is_empty() {
                return Err(ModelError::Protocol {
                    detail: "a tool call came without a name".into(),
                });
            }
            let arguments = parse_arguments(&call.arguments);
            out.push_back(ChatEvent::ToolCallFinished {
                index,
                call: ToolCall {
                    id: call.id,
                    name: call.name,
                    arguments,
                    signature: None,
                },
            });
        }
        Ok(())
    }
}

/// A tool call's arguments as JSON (none at all means an empty object). Text that is not JSON
/// (a model that stopped mid-object, say) is kept as a JSON string: the caller sees arguments
/// that are not an object and can tell the model so, instead of losing the whole reply.
pub(crate) fn parse_arguments(text: &str) -> Value {
    if text.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// A past call's arguments as a request carries them back: APIs take only an object there, so
/// anything else (arguments that were not JSON) goes back empty.
pub(crate) fn sent_arguments(arguments: &Value) -> Value {
    if arguments.is_object() {
        arguments.clone()
    } else {
        json!({})
    }
}

/// A request whose one past message is a call with arguments that were not JSON (for each
/// API's tests of [`sent_arguments`]).
#[cfg(test)]
pub(crate) fn past_call_not_json() -> crate::ChatRequest {
    let call = ToolCall {
        id: "c1".into(),
        name: "ask_docs".into(),
        arguments: Value::String("{\"goal\": \"x".into()),
        signature: None,
    };
    crate::ChatRequest::new(
        "m",
        vec![crate::chat::Message::Assistant {
            text: String::new(),
            tool_calls: vec![call],
        }],
    )
}

impl Decoder for OpenAiDecoder {
    fn event(
        &mut self,
        _event: &str,
        data: &str,
        out: &mut VecDeque<ChatEvent>,
    ) -> Result<bool, ModelError> {
        if data.trim() == "[DONE]" {
            return Ok(true);
        }
        let chunk: Chunk = parse(data)?;
        if let Some(error) = chunk.error {
            return Err(stream_error(&error, &self.model, self.key.as_deref()));
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(Usage {
                input_tokens: u.prompt_tokens,
                output_tokens: u.completion_tokens,
                estimated: false,
            });
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                self.generated.push_str(&text);
                out.push_back(ChatEvent::TextDelta(text));
            }
            for f in choice.delta.tool_calls {
                self.fragment(f, out)?;
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(reason);
            }
        }
        Ok(false)
    }

    fn end(&mut self, complete: bool, out: &mut VecDeque<ChatEvent>) -> Result<(), ModelError> {
        // Some servers close without `[DONE]`: a finish reason seen is end enough.
        let Some(reason) = self.finish.take() else {
            return Err(ModelError::Protocol {
                detail: if complete {
                    "the reply ended without saying why".into()
                } else {
                    "the stream ended before the reply was complete".into()
                },
            });
        };
        let had_calls = !self.order.is_empty();
        self.finish_calls(out)?;
        let usage = self.usage.unwrap_or(Usage {
            input_tokens: self.prompt_tokens,
            output_tokens: count::approx_tokens(&self.generated),
            estimated: true,
        });
        out.push_back(ChatEvent::Usage(usage));
        let finish = match reason.as_str() {
            _ if had_calls => FinishReason::ToolCalls,
            "stop" => FinishReason::Stop,
            "length" => FinishReason::Length,
            "tool_calls" | "function_call" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            other => FinishReason::Other(other.to_owned()),
        };
        out.push_back(ChatEvent::Done { finish });
        Ok(())
    }
}

/// An error object sent inside the stream (vLLM, OpenAI, llama.cpp do), named as its status
/// would be.
fn stream_error(error: &Value, model: &str, key: Option<&str>) -> ModelError {
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(500);
    classify(Failure {
        status,
        body: &error.to_string(),
        model,
        key,
        retry_after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_that_are_not_json_come_as_a_string_not_an_error() {
        assert_eq!(parse_arguments(""), json!({}));
        assert_eq!(parse_arguments(r#"{"goal": "x"}"#), json!({"goal": "x"}));
        assert_eq!(
            parse_arguments(r#"{"goal": "x"#),
            Value::String(r#"{"goal": "x"#.into())
        );
    }

    #[test]
    fn a_call_with_broken_arguments_finishes_and_the_reply_goes_on() {
        let mut d = OpenAiDecoder::default();
        let mut out = VecDeque::new();
        let chunk = json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1",
            "function": {"name": "ask_docs", "arguments": "{\"goal\": \"x"}}]},
            "finish_reason": "tool_calls"}]});
        d.event("", &chunk.to_string(), &mut out).unwrap();
        d.end(true, &mut out).unwrap();
        let call = out
            .iter()
            .find_map(|e| match e {
                ChatEvent::ToolCallFinished { call, .. } => Some(call.clone()),
                _ => None,
            })
            .expect("the call finishes");
        assert_eq!(call.name, "ask_docs");
        assert_eq!(call.arguments, Value::String("{\"goal\": \"x".into()));
        assert!(matches!(out.back(), Some(ChatEvent::Done { .. })));
        // Sent back in the history, such a call carries an empty object.
        let request = ChatRequest::new(
            "m",
            vec![Message::Assistant {
                text: String::new(),
                tool_calls: vec![call],
            }],
        );
        let sent = &body(&request)["messages"][0]["tool_calls"][0]["function"]["arguments"];
        assert_eq!(sent, "{}");
    }
}

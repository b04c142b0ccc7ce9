//! The Anthropic Messages API: `POST {base}/v1/messages` streamed, the key in `x-api-key`, the
//! system prompt as its own field, tool arguments arriving as `input_json_delta` fragments.

use std::collections::{BTreeMap, VecDeque};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::chat::{ApiKey, ChatRequest, Message, ToolCall};
use crate::classify::{classify, Failure};
use crate::error::ModelError;
use crate::event::{ChatEvent, FinishReason, Usage};
use crate::openai::{parse_arguments, sent_arguments};
use crate::sent::OnSent;
use crate::stream::{events, next_call, parse, ChatStream, Decoder};
use crate::transport::{parse_url, Http};

/// The API version this code speaks.
const API_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; this is asked when the request sets none.
const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The Anthropic Messages API.
#[derive(Debug, Clone)]
pub struct Anthropic {
    http: Http,
    /// `{base}/v1/messages`, parsed once; the base is e.g. `https://api.anthropic.com`.
    messages_url: Result<reqwest::Url, ModelError>,
    key: ApiKey,
}

impl Anthropic {
    pub fn new(http: Http, base_url: impl Into<String>, key: ApiKey) -> Self {
        let base = base_url.into();
        Anthropic {
            http,
            messages_url: parse_url(&format!("{}/v1/messages", base.trim_end_matches('/'))),
            key,
        }
    }

    /// Ask for a streamed reply; `on_sent`, if given, is told when the request goes on the wire.
    pub async fn chat(
        &self,
        request: &ChatRequest,
        on_sent: Option<OnSent>,
    ) -> Result<ChatStream, ModelError> {
        let url = self.messages_url.as_ref().map_err(Clone::clone)?;
        let body = body(request);
        let headers = [
            ("x-api-key", self.key.expose()),
            ("anthropic-version", API_VERSION),
            ("accept", "text/event-stream"),
        ];
        let (resp, started) = self
            .http
            .post(
                url,
                &headers,
                &body,
                &request.model,
                Some(self.key.expose()),
                on_sent,
            )
            .await?;
        let decoder = AnthropicDecoder {
            model: request.model.clone(),
            key: self.key.expose().to_owned(),
            ..AnthropicDecoder::default()
        };
        Ok(events(resp, decoder, self.http.limits, started))
    }
}

/// The request's JSON body: system text apart, consecutive messages of one role merged (the
/// API wants user and assistant to alternate; tool results are user content).
pub(crate) fn body(request: &ChatRequest) -> Value {
    let mut system = Vec::new();
    let mut messages: Vec<(&str, Vec<Value>)> = Vec::new();
    for m in &request.messages {
        let (role, blocks) = match m {
            Message::System { text } => {
                system.push(text.as_str());
                continue;
            }
            Message::User { text } => ("user", vec![json!({"type": "text", "text": text})]),
            Message::Assistant { text, tool_calls } => {
                let mut blocks = Vec::new();
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for c in tool_calls {
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name,
                        "input": sent_arguments(&c.arguments)}));
                }
                ("assistant", blocks)
            }
            Message::Tool {
                call_id, content, ..
            } => (
                "user",
                vec![json!({"type": "tool_result", "tool_use_id": call_id, "content": content})],
            ),
        };
        match messages.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => messages.push((role, blocks)),
        }
    }
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages
            .into_iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect::<Vec<_>>(),
        "stream": true,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    body
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    index: Option<usize>,
    message: Option<StartMessage>,
    content_block: Option<Block>,
    delta: Option<Value>,
    usage: Option<WireUsage>,
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct StartMessage {
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

struct OpenCall {
    ours: usize,
    id: String,
    name: String,
    json: String,
}

#[derive(Default)]
struct AnthropicDecoder {
    model: String,
    key: String,
    /// Tool-use blocks open, by block index.
    open: BTreeMap<usize, OpenCall>,
    calls: usize,
    usage: Usage,
    stop: Option<String>,
}

impl Decoder for AnthropicDecoder {
    fn event(
        &mut self,
        _event: &str,
        data: &str,
        out: &mut VecDeque<ChatEvent>,
    ) -> Result<bool, ModelError> {
        // The `type` inside the data names the event as the `event:` line does.
        let ev: Envelope = parse(data)?;
        match ev.kind.as_str() {
            "message_start" => {
                if let Some(u) = ev.message.and_then(|m| m.usage) {
                    self.usage.input_tokens = u.input_tokens.unwrap_or(0);
                    self.usage.output_tokens = u.output_tokens.unwrap_or(0);
                }
            }
            "content_block_start" => {
                let (Some(index), Some(block)) = (ev.index, ev.content_block) else {
                    return Err(protocol("a content block started without its index"));
                };
                if block.kind == "tool_use" {
                    let ours = next_call(self.calls)?;
                    self.calls += 1;
                    let id = block.id.unwrap_or_else(|| format!("call_{ours}"));
                    let name = block
                        .name
                        .ok_or_else(|| protocol("a tool call came without a name"))?;
                    out.push_back(ChatEvent::ToolCallStarted {
                        index: ours,
                        id: id.clone(),
                        name: name.clone(),
                    });
                    self.open.insert(
                        index,
                        OpenCall {
                            ours,
                            id,
                            name,
                            json: String::new(),
                        },
                    );
                }
            }
            "content_block_delta" => {
                let delta = ev.delta.unwrap_or(Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        if let Some(text) = delta.get("text").and_then(Value::as_str) {
                            if !text.is_empty() {
                                out.push_back(ChatEvent::TextDelta(text.to_owned()));
                            }
                        }
                    }
                    Some("input_json_delta") => {
                        let fragment = delta
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        let call = ev
                            .index
                            .and_then(|i| self.open.get_mut(&i))
                            .ok_or_else(|| protocol("arguments came for no open tool call"))?;
                        if !fragment.is_empty() {
                            call.json.push_str(fragment);
                            out.push_back(ChatEvent::ToolCallArguments {
                                index: call.ours,
                                fragment: fragment.to_owned(),
                            });
                        }
                    }
                    // Thinking and its signature are not part of the answer.
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(call) = ev.index.and_then(|i| self.open.remove(&i)) {
                    let arguments = parse_arguments(&call.json);
                    out.push_back(ChatEvent::ToolCallFinished {
                        index: call.ours,
                        call: ToolCall {
                            id: call.id,
                            name: call.name,
                            arguments,
                            signature: None,
                        },
                    });
                }
            }
            "message_delta" => {
                if let Some(reason) = ev
                    .delta
                    .as_ref()
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop = Some(reason.to_owned());
                }
                if let Some(u) = ev.usage {
                    // Cumulative counts.
                    if let Some(n) = u.output_tokens {
                        self.usage.output_tokens = n;
                    }
                    if let Some(n) = u.input_tokens {
                        self.usage.input_tokens = n;
                    }
                }
            }
            "message_stop" => return Ok(true),
            "error" => {
                let e = ev.error.unwrap_or(WireError {
                    kind: "api_error".into(),
                    message: String::new(),
                });
                let status = match e.kind.as_str() {
                    "authentication_error" => 401,
                    "permission_error" => 403,
                    "not_found_error" => 404,
                    "rate_limit_error" => 429,
                    "overloaded_error" => 529,
                    "invalid_request_error" => 400,
                    _ => 500,
                };
                return Err(classify(Failure {
                    status,
                    body: &format!("{}: {}", e.kind, e.message),
                    model: &self.model,
                    key: Some(&self.key),
                    retry_after: None,
                }));
            }
            // "ping", and event types added later.
            _ => {}
        }
        Ok(false)
    }

    fn end(&mut self, complete: bool, out: &mut VecDeque<ChatEvent>) -> Result<(), ModelError> {
        if !complete {
            return Err(protocol("the stream ended before the reply was complete"));
        }
        out.push_back(ChatEvent::Usage(self.usage));
        let finish = match self.stop.as_deref() {
            Some("end_turn") | Some("stop_sequence") | None => FinishReason::Stop,
            Some("max_tokens") => FinishReason::Length,
            Some("tool_use") => FinishReason::ToolCalls,
            Some("refusal") => FinishReason::ContentFilter,
            Some(other) => FinishReason::Other(other.to_owned()),
        };
        out.push_back(ChatEvent::Done { finish });
        Ok(())
    }
}

pub(crate) fn protocol(detail: &str) -> ModelError {
    ModelError::Protocol {
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_past_call_whose_arguments_were_not_json_is_sent_with_an_empty_input() {
        let request = crate::openai::past_call_not_json();
        assert_eq!(
            body(&request)["messages"][0]["content"][0]["input"],
            json!({})
        );
    }
}

//! The Gemini API: `POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`, the key
//! in `x-goog-api-key`; function calls arrive whole as `functionCall` parts (with thought
//! signatures, kept to be sent back), `usageMetadata` is cumulative (the last one counts).

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::anthropic::protocol;
use crate::chat::{ApiKey, ChatRequest, Message, ToolCall};
use crate::classify::{classify, Failure};
use crate::count;
use crate::error::ModelError;
use crate::event::{ChatEvent, FinishReason, Usage};
use crate::gemini_schema::for_gemini;
use crate::openai::sent_arguments;
use crate::sent::OnSent;
use crate::stream::{events, next_call, parse, ChatStream, Decoder};
use crate::transport::{parse_url, Http};

/// The Gemini API.
#[derive(Debug, Clone)]
pub struct Gemini {
    http: Http,
    /// E.g. `https://generativelanguage.googleapis.com`.
    base_url: String,
    key: ApiKey,
}

/// Whether `model` is a model's name and nothing more: it goes into the request's path, where a
/// `\\` or a `..` would lead elsewhere on the server (with the user's key).
fn model_name(model: &str) -> bool {
    !model.is_empty()
        && model.len() <= 128
        && model.chars().any(|c| c.is_ascii_alphanumeric())
        && model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

impl Gemini {
    pub fn new(http: Http, base_url: impl Into<String>, key: ApiKey) -> Self {
        Gemini {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            key,
        }
    }

    /// Ask for a streamed reply; `on_sent`, if given, is told when the request goes on the wire.
    pub async fn chat(
        &self,
        request: &ChatRequest,
        on_sent: Option<OnSent>,
    ) -> Result<ChatStream, ModelError> {
        if !model_name(&request.model) {
            return Err(ModelError::UnknownModel {
                model: request.model.clone(),
            });
        }
        let url = parse_url(&format!(
            "{}/v1beta/models/{}:streamGenerateContent?alt=sse",
            self.base_url, request.model
        ))?;
        let body = body(request);
        let headers = [
            ("x-goog-api-key", self.key.expose()),
            ("accept", "text/event-stream"),
        ];
        let (resp, started) = self
            .http
            .post(
                &url,
                &headers,
                &body,
                &request.model,
                Some(self.key.expose()),
                on_sent,
            )
            .await?;
        let decoder = GeminiDecoder {
            model: request.model.clone(),
            key: self.key.expose().to_owned(),
            prompt_tokens: count::prompt_tokens(request),
            ..GeminiDecoder::default()
        };
        Ok(events(resp, decoder, self.http.limits, started))
    }
}

/// A tool's result as the object `functionResponse.response` must be: the result itself when
/// it is a JSON object, else `{"content": result}`.
fn response_object(content: &str) -> Value {
    match serde_json::from_str::<Value>(content) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "content": content }),
    }
}

/// The request's JSON body.
pub(crate) fn body(request: &ChatRequest) -> Value {
    let mut system = Vec::new();
    let mut contents: Vec<(&str, Vec<Value>)> = Vec::new();
    for m in &request.messages {
        let (role, parts) = match m {
            Message::System { text } => {
                system.push(json!({ "text": text }));
                continue;
            }
            Message::User { text } => ("user", vec![json!({ "text": text })]),
            Message::Assistant { text, tool_calls } => {
                let mut parts = Vec::new();
                if !text.is_empty() {
                    parts.push(json!({ "text": text }));
                }
                for c in tool_calls {
                    let mut part = json!({"functionCall": {"name": c.name, "args": sent_arguments(&c.arguments)}});
                    if let Some(sig) = &c.signature {
                        part["thoughtSignature"] = json!(sig);
                    }
                    parts.push(part);
                }
                ("model", parts)
            }
            Message::Tool { name, content, .. } => (
                "user",
                vec![json!({"functionResponse":
                    {"name": name, "response": response_object(content)}})],
            ),
        };
        match contents.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    let mut body = json!({
        "contents": contents
            .into_iter()
            .map(|(role, parts)| json!({"role": role, "parts": parts}))
            .collect::<Vec<_>>(),
    });
    if !system.is_empty() {
        body["systemInstruction"] = json!({ "parts": system });
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({"name": t.name, "description": t.description,
                    "parameters": for_gemini(&t.parameters)})
            })
            .collect();
        body["tools"] = json!([{ "functionDeclarations": declarations }]);
    }
    let mut config = serde_json::Map::new();
    if let Some(t) = request.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(n) = request.max_tokens {
        config.insert("maxOutputTokens".into(), json!(n));
    }
    if !config.is_empty() {
        body["generationConfig"] = Value::Object(config);
    }
    body
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    #[serde(default)]
    candidates: Vec<Candidate>,
    usage_metadata: Option<WireUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    function_call: Option<FunctionCall>,
    thought_signature: Option<String>,
}

#[derive(Deserialize)]
struct FunctionCall {
    id: Option<String>,
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
}

#[derive(Default)]
struct GeminiDecoder {
    model: String,
    key: String,
    calls: usize,
    prompt_tokens: u64,
    /// What was generated, counted if the server reports no usage.
    generated: String,
    usage: Option<Usage>,
    finish: Option<String>,
}

impl Decoder for GeminiDecoder {
    fn event(
        &mut self,
        _event: &str,
        data: &str,
        out: &mut VecDeque<ChatEvent>,
    ) -> Result<bool, ModelError> {
        let chunk: Chunk = parse(data)?;
        if let Some(error) = chunk.error {
            let status = error
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(500);
            return Err(classify(Failure {
                status,
                body: &error.to_string(),
                model: &self.model,
                key: Some(&self.key),
                retry_after: None,
            }));
        }
        if let Some(u) = chunk.usage_metadata {
            // Each chunk carries the totals so far: the last one is the reply's.
            self.usage = Some(Usage {
                input_tokens: u.prompt_token_count,
                output_tokens: u.candidates_token_count + u.thoughts_token_count,
                estimated: false,
            });
        }
        for candidate in chunk.candidates.into_iter().take(1) {
            for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                if let Some(call) = part.function_call {
                    let index = next_call(self.calls)?;
                    self.calls += 1;
                    let id = call.id.unwrap_or_else(|| format!("call_{index}"));
                    let arguments = call.args.unwrap_or_else(|| json!({}));
                    out.push_back(ChatEvent::ToolCallStarted {
                        index,
                        id: id.clone(),
                        name: call.name.clone(),
                    });
                    let fragment = arguments.to_string();
                    self.generated.push_str(&fragment);
                    out.push_back(ChatEvent::ToolCallArguments { index, fragment });
                    out.push_back(ChatEvent::ToolCallFinished {
                        index,
                        call: ToolCall {
                            id,
                            name: call.name,
                            arguments,
                            signature: part.thought_signature,
                        },
                    });
                } else if let Some(text) = part.text.filter(|t| !t.is_empty() && !part.thought) {
                    self.generated.push_str(&text);
                    out.push_back(ChatEvent::TextDelta(text));
                }
            }
            if let Some(reason) = candidate.finish_reason {
                self.finish = Some(reason);
            }
        }
        // Gemini's stream has no end marker: the body ends.
        Ok(false)
    }

    fn end(&mut self, _complete: bool, out: &mut VecDeque<ChatEvent>) -> Result<(), ModelError> {
        let reason = self
            .finish
            .take()
            .ok_or_else(|| protocol("the stream ended before the reply was complete"))?;
        let usage = self.usage.unwrap_or(Usage {
            input_tokens: self.prompt_tokens,
            output_tokens: count::approx_tokens(&self.generated),
            estimated: true,
        });
        out.push_back(ChatEvent::Usage(usage));
        let finish = match reason.as_str() {
            _ if self.calls > 0 && reason == "STOP" => FinishReason::ToolCalls,
            "STOP" => FinishReason::Stop,
            "MAX_TOKENS" => FinishReason::Length,
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" => {
                FinishReason::ContentFilter
            }
            other => FinishReason::Other(other.to_owned()),
        };
        out.push_back(ChatEvent::Done { finish });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_past_call_whose_arguments_were_not_json_is_sent_with_empty_args() {
        let request = crate::openai::past_call_not_json();
        assert_eq!(
            body(&request)["contents"][0]["parts"][0]["functionCall"]["args"],
            json!({})
        );
    }
}

//! A failed HTTP reply, read into a named error from its status and what its body says.

use std::time::Duration;

use crate::error::{excerpt, ModelError};

/// What the failed reply was about.
pub(crate) struct Failure<'a> {
    pub status: u16,
    pub body: &'a str,
    pub model: &'a str,
    pub key: Option<&'a str>,
    pub retry_after: Option<Duration>,
}

/// The named error for a failed reply. Providers word the same failure differently; the phrases
/// matched are those OpenAI, Ollama, llama.cpp, vLLM, LM Studio, Anthropic and Gemini send.
pub(crate) fn classify(f: Failure<'_>) -> ModelError {
    let lower = f.body.to_ascii_lowercase();
    let says = |phrases: &[&str]| phrases.iter().any(|p| lower.contains(p));
    if f.status == 401
        || f.status == 403
        || says(&["api_key_invalid", "api key not valid", "invalid_api_key"])
    {
        return ModelError::WrongKey { status: f.status };
    }
    if f.status == 429 {
        return ModelError::RateLimited {
            retry_after: f.retry_after,
        };
    }
    if says(&[
        "context_length_exceeded",
        "context length",
        "context window",
        "maximum context",
        "exceeds the available context",
        "exceed_context_size",
        "prompt is too long",
        "input token count",
        "too many tokens",
    ]) {
        return ModelError::ContextOverflow {
            detail: excerpt(f.body, f.key),
        };
    }
    if says(&[
        "does not support tool",              // Ollama
        "tools param requires --jinja",       // llama.cpp without a tool-calling template
        "requires --enable-auto-tool-choice", // vLLM
        "tools are not supported",
        "tool use is not supported",
        "tool calling is not supported",
        "function calling is not supported",
        "function calling is not enabled",
    ]) {
        return ModelError::ToolsNotSupported {
            model: f.model.to_owned(),
        };
    }
    if f.status == 404
        || says(&["model_not_found", "not_found_error"])
        || (says(&["model"]) && says(&["not found", "does not exist"]))
    {
        return ModelError::UnknownModel {
            model: f.model.to_owned(),
        };
    }
    ModelError::Server {
        status: f.status,
        excerpt: excerpt(f.body, f.key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(status: u16, body: &str) -> ModelError {
        classify(Failure {
            status,
            body,
            model: "m",
            key: Some("sk-secret"),
            retry_after: None,
        })
    }

    #[test]
    fn each_provider_wording_gets_its_name() {
        assert_eq!(
            class(401, "Incorrect API key provided: sk-secret"),
            ModelError::WrongKey { status: 401 }
        );
        assert_eq!(
            class(
                400,
                r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#
            ),
            ModelError::WrongKey { status: 400 }
        );
        assert!(matches!(
            class(
                404,
                r#"{"error":"model \"m\" not found, try pulling it first"}"#
            ),
            ModelError::UnknownModel { .. }
        ));
        assert!(matches!(
            class(400, r#"{"error":{"code":"context_length_exceeded"}}"#),
            ModelError::ContextOverflow { .. }
        ));
        assert!(matches!(
            class(
                400,
                r#"{"error":"registry.ollama.ai/library/gemma:2b does not support tools"}"#
            ),
            ModelError::ToolsNotSupported { .. }
        ));
        assert!(matches!(
            class(
                500,
                r#"{"error":{"code":500,"message":"tools param requires --jinja flag"}}"#
            ),
            ModelError::ToolsNotSupported { .. }
        ));
        assert!(matches!(
            class(
                400,
                r#"{"object":"error","message":"\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set"}"#
            ),
            ModelError::ToolsNotSupported { .. }
        ));
        // A schema the server refuses is not a server without tools.
        assert!(matches!(
            class(
                400,
                r#"{"error":{"message":"Invalid schema for function 'f': 'format' is not supported","param":"tools[0].function.parameters"}}"#
            ),
            ModelError::Server { status: 400, .. }
        ));
        assert_eq!(
            class(500, "boom sk-secret"),
            ModelError::Server {
                status: 500,
                excerpt: "boom <key>".into()
            }
        );
    }
}

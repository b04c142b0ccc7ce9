//! What can go wrong asking a model, named so a person understands it. No message carries a key.

use std::time::Duration;

/// Which time limit ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutStage {
    /// Connecting to the server.
    Connect,
    /// Waiting for the reply's first event.
    FirstToken,
    /// Waiting for the next event of a reply that had begun.
    Idle,
}

impl std::fmt::Display for TimeoutStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutStage::Connect => "to connect",
            TimeoutStage::FirstToken => "for the reply to begin",
            TimeoutStage::Idle => "for the reply to go on",
        })
    }
}

/// A failed model request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("the model server refused the API key (HTTP {status}): store the right one with `agentctl models add`")]
    WrongKey { status: u16 },
    #[error("the model server at {address} cannot be reached: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("the model server does not know the model {model:?}")]
    UnknownModel { model: String },
    #[error("the conversation is longer than the model's context allows: {detail}")]
    ContextOverflow { detail: String },
    #[error("the model {model:?} cannot call tools on this server")]
    ToolsNotSupported { model: String },
    #[error("the model server is limiting requests{}", retry_after.map(|d| format!("; it asks to wait {} s", d.as_secs_f32().ceil())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("the model server took longer than {} s {stage}", limit.as_secs_f32())]
    Timeout {
        stage: TimeoutStage,
        limit: Duration,
    },
    #[error("the model server failed (HTTP {status}): {excerpt}")]
    Server { status: u16, excerpt: String },
    #[error("the model server sent a reply that cannot be read: {detail}")]
    Protocol { detail: String },
    #[error("the request was canceled")]
    Canceled,
}

/// At most this many characters of a server's text go into an error.
const EXCERPT_CHARS: usize = 200;

/// A short excerpt of what a server said, safe to show: no control characters, no key, cut short.
pub(crate) fn excerpt(text: &str, key: Option<&str>) -> String {
    let mut text = text.to_owned();
    if let Some(key) = key.filter(|k| !k.is_empty()) {
        text = text.replace(key, "<key>");
    }
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(EXCERPT_CHARS)
        .collect();
    if text.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_hide_the_key_and_stay_short() {
        let e = excerpt("bad key sk-123\n", Some("sk-123"));
        assert_eq!(e, "bad key <key>");
        assert_eq!(excerpt(&"x".repeat(500), None).chars().count(), 201);
    }

    #[test]
    fn messages_read_plainly() {
        let e = ModelError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            e.to_string(),
            "the model server is limiting requests; it asks to wait 3 s"
        );
    }
}

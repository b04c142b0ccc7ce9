//! The model as the loop sees it: a request in, a stream of the contract's events out
//! (`inference::ChatEvent`). The kernel's broker is one implementation (`sdk.rs`); the tests
//! script another.

use std::future::Future;

use agentos_dbus_interfaces::inference::{error_kind, ChatEvent, ChatRequest};

/// Why a model gave no answer: `kind` is one of `inference::error_kind` (or `denied` for a
/// request the kernel refused on permissions), `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFailure {
    pub kind: String,
    pub message: String,
}

impl ModelFailure {
    pub fn new(kind: &str, message: impl Into<String>) -> ModelFailure {
        ModelFailure {
            kind: kind.to_string(),
            message: message.into(),
        }
    }

    /// A stream that broke or spoke out of turn.
    pub fn broken(message: impl Into<String>) -> ModelFailure {
        ModelFailure::new(error_kind::PROVIDER, message)
    }
}

/// The events of one reply, in order; `None` after the last.
pub trait Replies: Send {
    fn next(&mut self) -> impl Future<Output = Option<Result<ChatEvent, ModelFailure>>> + Send;
}

/// Something that answers chat requests.
pub trait Model: Sync {
    type Replies: Replies;
    fn chat(
        &self,
        request: &ChatRequest,
    ) -> impl Future<Output = Result<Self::Replies, ModelFailure>> + Send;
}

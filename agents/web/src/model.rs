//! The model this agent asks, behind a small trait: the kernel's broker in production
//! (`Host1.Chat` through the SDK), a scripted model in tests.

use std::future::Future;

use agentos_dbus_interfaces::inference::{error_kind, ChatRequest};

/// Why a model gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// No model is configured or found; the message says how to add one.
    NoModel(String),
    /// The request was canceled (the task is ending).
    Canceled(String),
    /// Any other failure (unreachable, over budget, timed out…), in words for the user.
    Failed(String),
}

impl ModelError {
    /// Classify a stream's error by its kind (`inference::error_kind`).
    pub fn from_kind(kind: &str, message: String) -> ModelError {
        match kind {
            error_kind::NO_MODEL => ModelError::NoModel(message),
            error_kind::CANCELED => ModelError::Canceled(message),
            _ => ModelError::Failed(message),
        }
    }
}

/// Something that answers a chat request with text.
pub trait Model: Sync {
    /// The whole answer's text.
    fn answer(
        &self,
        request: &ChatRequest,
    ) -> impl Future<Output = Result<String, ModelError>> + Send;
}

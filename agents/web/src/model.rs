//! The model this agent asks, behind a small trait: the kernel's broker in production
//! (`Host1.Chat` through the SDK), a scripted model in tests.

use std::future::Future;

use agentos_sdk::ChatRequest;

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

/// Something that answers a chat request with text.
pub trait Model: Sync {
    /// The whole answer's text.
    fn answer(
        &self,
        request: &ChatRequest,
    ) -> impl Future<Output = Result<String, ModelError>> + Send;
}

//! A model that answers with text, for agents that ask one question and want its answer whole:
//! the [`Model`] trait (a scripted model in an agent's tests), and [`Broker`], the kernel's broker
//! asked for one of the agent's tasks (`Host1.Chat`), with why no answer came told apart
//! ([`ModelError`]: no model at all, canceled, or another failure).

use std::future::Future;

use crate::{ChatError, ChatRequest, Error, Task};

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

/// Asks the kernel's broker on behalf of a task.
pub struct Broker<'a>(pub &'a Task);

/// A refusal or a failed answer, by what the agent does about it.
fn classify(e: Error) -> ModelError {
    match e {
        Error::NoModel(m) => ModelError::NoModel(m),
        Error::Canceled(m) => ModelError::Canceled(m),
        other => ModelError::Failed(other.message()),
    }
}

impl Model for Broker<'_> {
    async fn answer(&self, request: &ChatRequest) -> Result<String, ModelError> {
        let stream = self.0.chat(request).await.map_err(classify)?;
        let reply = stream
            .collect()
            .await
            .map_err(|e: ChatError| classify(e.into()))?;
        Ok(reply.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_kind;

    #[test]
    fn no_model_and_cancellation_are_told_apart_from_failures() {
        let model = |kind: &str| {
            classify(
                ChatError::Model {
                    kind: kind.into(),
                    message: "m".into(),
                }
                .into(),
            )
        };
        assert_eq!(model(error_kind::NO_MODEL), ModelError::NoModel("m".into()));
        assert_eq!(
            model(error_kind::CANCELED),
            ModelError::Canceled("m".into())
        );
        assert_eq!(model(error_kind::BUDGET), ModelError::Failed("m".into()));
        assert_eq!(
            model(error_kind::UNREACHABLE),
            ModelError::Failed("m".into())
        );
        assert_eq!(
            classify(Error::NoModel("add one".into())),
            ModelError::NoModel("add one".into())
        );
        assert!(matches!(
            classify(ChatError::EndedEarly.into()),
            ModelError::Failed(m) if m.contains("early")
        ));
    }
}

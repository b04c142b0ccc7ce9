//! The kernel's model broker as this agent's [`Model`]: `Host1.Chat` for the task through the
//! SDK, the answer read whole.

use agentos_sdk::{ChatError, ChatRequest, Error, Task};

use crate::model::{Model, ModelError};

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
    use agentos_sdk::error_kind;

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

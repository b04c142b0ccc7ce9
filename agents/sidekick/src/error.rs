//! Why the sidekick failed its task, in words for the user.

use agentos_dbus_interfaces::inference::error_kind;

use crate::model::ModelFailure;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SidekickError {
    /// The model gave no answer; the kernel's message is passed on.
    #[error("{}", model_words(.0))]
    Model(ModelFailure),
    /// The model's answer began as a tool call that could not be read, again after it was
    /// told so (or in the final turn, which offers no tools).
    #[error(
        "the model's answer was a tool call it did not finish writing; try again, or use a \
         larger model"
    )]
    UnfinishedCall,
}

impl SidekickError {
    /// Whether the model's answer was canceled (then nothing more is given).
    pub fn canceled(&self) -> bool {
        matches!(self, SidekickError::Model(f) if f.kind == error_kind::CANCELED)
    }
}

fn model_words(f: &ModelFailure) -> String {
    // The kernel's own words for "no model" say so already, and how to add one.
    if f.kind == error_kind::NO_MODEL && f.message.to_lowercase().contains("model is available") {
        return f.message.clone();
    }
    let lead = match f.kind.as_str() {
        error_kind::NO_MODEL => "no model is available",
        error_kind::BUDGET => "the sidekick is over its model budget",
        error_kind::RATE_LIMITED => "the model's provider is limiting the rate of requests",
        error_kind::UNREACHABLE => "the model could not be reached",
        error_kind::TIMEOUT => "the model took too long",
        error_kind::CONTEXT_OVERFLOW => "the conversation does not fit the model's window",
        error_kind::WRONG_KEY => "the model's provider refused its key",
        error_kind::UNKNOWN_MODEL => "the model is not known to its provider",
        error_kind::TOOLS_NOT_SUPPORTED => "the model cannot call tools",
        error_kind::CANCELED => "the model's answer was canceled",
        "denied" => "the sidekick may not use the model",
        _ => "the model failed",
    };
    format!("{lead}: {}", f.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_failures_read_plainly_with_the_kernels_message() {
        let e = SidekickError::Model(ModelFailure::new(
            error_kind::NO_MODEL,
            "start llama-server or add a provider with agentctl models add",
        ));
        assert_eq!(
            e.to_string(),
            "no model is available: start llama-server or add a provider with agentctl models add"
        );
        let e = SidekickError::Model(ModelFailure::new(
            error_kind::NO_MODEL,
            "no AI model is available: start a local model server",
        ));
        assert_eq!(
            e.to_string(),
            "no AI model is available: start a local model server"
        );
        let e = SidekickError::Model(ModelFailure::new("weird", "boom"));
        assert_eq!(e.to_string(), "the model failed: boom");
    }
}

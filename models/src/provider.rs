//! Any of the providers behind one type, for a broker that picks one by configuration.

use crate::anthropic::Anthropic;
use crate::chat::ChatRequest;
use crate::error::ModelError;
use crate::gemini::Gemini;
use crate::openai::OpenAi;
use crate::sent::OnSent;
use crate::stream::ChatStream;

/// One configured provider.
#[derive(Debug, Clone)]
pub enum Provider {
    OpenAi(OpenAi),
    Anthropic(Anthropic),
    Gemini(Gemini),
}

impl Provider {
    /// Ask for a streamed reply. Dropping the stream cancels the request.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatStream, ModelError> {
        self.chat_telling(request, None).await
    }

    /// Ask for a streamed reply; `on_sent` is told when the request goes on the wire.
    pub async fn chat_telling(
        &self,
        request: &ChatRequest,
        on_sent: Option<OnSent>,
    ) -> Result<ChatStream, ModelError> {
        match self {
            Provider::OpenAi(p) => p.chat(request, on_sent).await,
            Provider::Anthropic(p) => p.chat(request, on_sent).await,
            Provider::Gemini(p) => p.chat(request, on_sent).await,
        }
    }
}

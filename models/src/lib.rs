//! Model providers for the kernel's broker: the OpenAI-compatible chat API (OpenAI, Ollama,
//! llama.cpp's `llama-server`, vLLM, LM Studio), the Anthropic Messages API and the Gemini API,
//! each spoken over the workspace's reqwest and streamed into one event model ([`ChatEvent`]),
//! with time limits, retries and plain named errors ([`ModelError`]); and probes that find the
//! local servers (Ollama, `llama-server`).

pub mod anthropic;
mod body;
pub mod cancel;
pub mod chat;
mod classify;
mod count;
pub mod discovery;
pub mod error;
pub mod event;
pub mod gemini;
mod gemini_schema;
pub mod openai;
pub mod provider;
pub mod retry;
pub mod sent;
pub mod stream;
pub mod transport;

pub use anthropic::Anthropic;
pub use chat::{ApiKey, ChatRequest, Message, Role, ToolCall, ToolSpec};
pub use discovery::{discover, LocalAddresses, LocalServers};
pub use error::{ModelError, TimeoutStage};
pub use event::{ChatEvent, FinishReason, Usage};
pub use gemini::Gemini;
pub use openai::OpenAi;
pub use provider::Provider;
pub use retry::RetryPolicy;
pub use sent::OnSent;
pub use stream::ChatStream;
pub use transport::{Http, Limits};

//! The one stream of events every provider's reply becomes.

use crate::chat::ToolCall;

/// One step of a streamed reply. A stream ends with `Usage` then `Done`.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// More of the answer's text.
    TextDelta(String),
    /// The model began a tool call (`index` counts the reply's calls from 0).
    ToolCallStarted {
        index: usize,
        id: String,
        name: String,
    },
    /// A fragment of that call's arguments (JSON text, whole only once finished).
    ToolCallArguments { index: usize, fragment: String },
    /// The call is whole; its arguments parsed.
    ToolCallFinished { index: usize, call: ToolCall },
    /// Tokens in and out, as the provider reported them or, when it reports none, counted.
    Usage(Usage),
    /// The reply is over.
    Done { finish: FinishReason },
}

/// Tokens spent by one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// True when the server reported nothing and these are our approximate count
    /// (a token per four bytes of text, see `count.rs`).
    pub estimated: bool,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// It finished its answer (or hit a stop sequence).
    Stop,
    /// It reached the token limit.
    Length,
    /// It wants its tool calls run.
    ToolCalls,
    /// The provider's filter stopped it.
    ContentFilter,
    /// Another reason, as the provider named it.
    Other(String),
}

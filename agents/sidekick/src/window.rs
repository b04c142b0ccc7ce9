//! The model's context window: how large it is (from `ListModels`, 4096 tokens when unknown),
//! how tokens are estimated (about four characters each), and the shares of it the prompt, one
//! tool result and the reply may take.

use agentos_dbus_interfaces::ModelInfo;

/// Tokens assumed when no model says how large its window is.
pub const UNKNOWN_CONTEXT: usize = 4096;
/// Characters per token, roughly, for English text and code with common tokenizers.
pub const CHARS_PER_TOKEN: usize = 4;
/// Most tokens a reply is asked for, whatever the window: a model's output limit is far below its
/// window (8,192 for claude-3-5-haiku, 16,384 for gpt-4o-mini against 200k and 128k), and a
/// request asking for more is refused outright.
pub const MAX_REPLY_TOKENS: u32 = 4096;
/// Tokens each message costs beyond its text (role, separators in the chat template).
const MESSAGE_OVERHEAD: usize = 4;
/// Most tokens a prompt may take, whatever the window: the kernel takes a request of at most
/// `MAX_REQUEST_BYTES` of JSON, and a character may take six bytes there (`\u001b`), so a
/// million-token window's prompt would be refused whole.
pub const MAX_PROMPT_TOKENS: usize =
    agentos_dbus_interfaces::inference::MAX_REQUEST_BYTES / (CHARS_PER_TOKEN * 6);

/// Estimated tokens of `text`.
pub fn tokens(text: &str) -> usize {
    text.chars().count().div_ceil(CHARS_PER_TOKEN)
}

/// Estimated tokens of one message of `text`.
pub fn message_tokens(text: &str) -> usize {
    tokens(text) + MESSAGE_OVERHEAD
}

/// A context window, in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub context: usize,
}

impl Window {
    pub fn new(context: usize) -> Window {
        Window {
            context: if context == 0 {
                UNKNOWN_CONTEXT
            } else {
                context
            },
        }
    }

    /// The window the broker's default choice will likely have: the smallest known window of
    /// the reachable local models (the default policy prefers those), else of any reachable
    /// model, else [`UNKNOWN_CONTEXT`]. Smallest, so that whichever serves, the prompt fits.
    pub fn guess(models: &[ModelInfo]) -> Window {
        let smallest = |local_only: bool| {
            models
                .iter()
                .filter(|m| m.reachable && m.context > 0 && (m.local || !local_only))
                .map(|m| m.context as usize)
                .min()
        };
        Window::new(smallest(true).or_else(|| smallest(false)).unwrap_or(0))
    }

    /// The window of the model that served a reply, if `models` knows it.
    pub fn of(models: &[ModelInfo], provider: &str, model: &str) -> Option<Window> {
        models
            .iter()
            .find(|m| m.provider == provider && m.model == model && m.context > 0)
            .map(|m| Window::new(m.context as usize))
    }

    /// Tokens the prompt (messages and tool definitions) may take: 75 %, the rest is the
    /// reply's; at most [`MAX_PROMPT_TOKENS`].
    pub fn prompt_budget(&self) -> usize {
        (self.context * 3 / 4).min(MAX_PROMPT_TOKENS)
    }

    /// Tokens the reply may take: the quarter the prompt leaves, at most [`MAX_REPLY_TOKENS`].
    pub fn reply_tokens(&self) -> u32 {
        u32::try_from(self.context / 4)
            .unwrap_or(u32::MAX)
            .clamp(16, MAX_REPLY_TOKENS)
    }

    /// Bytes one tool result may take when it arrives: a quarter of the prompt's budget, at
    /// least 1 KiB and at most 64 KiB.
    pub fn result_bytes(&self) -> usize {
        (self.prompt_budget() * CHARS_PER_TOKEN / 4).clamp(1024, 64 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(provider: &str, local: bool, reachable: bool, context: u32) -> ModelInfo {
        ModelInfo {
            provider: provider.into(),
            model: "m".into(),
            local,
            reachable,
            context,
            slots: 1,
        }
    }

    #[test]
    fn the_window_comes_from_the_models_or_is_assumed() {
        assert_eq!(Window::guess(&[]).context, 4096);
        assert_eq!(Window::guess(&[model("a", true, true, 0)]).context, 4096);
        let models = [
            model("remote", false, true, 200_000),
            model("ollama", true, true, 8192),
            model("llama-server", true, false, 2048),
        ];
        assert_eq!(Window::guess(&models).context, 8192);
        assert_eq!(
            Window::guess(&[model("remote", false, true, 200_000)]).context,
            200_000
        );
        assert_eq!(
            Window::of(&models, "remote", "m"),
            Some(Window::new(200_000))
        );
        assert_eq!(Window::of(&models, "remote", "other"), None);
    }

    #[test]
    fn shares_of_the_window() {
        let w = Window::new(4096);
        assert_eq!(w.prompt_budget(), 3072);
        assert_eq!(w.reply_tokens(), 1024);
        assert_eq!(w.result_bytes(), 3072);
        assert_eq!(Window::new(1_000_000).result_bytes(), 64 * 1024);
        assert_eq!(Window::new(100).result_bytes(), 1024);
        // A large window keeps its prompt share, but the reply asked for stays within what
        // models accept as output.
        let large = Window::new(200_000);
        assert_eq!(large.prompt_budget(), 150_000);
        assert_eq!(large.reply_tokens(), MAX_REPLY_TOKENS);
        assert_eq!(Window::new(16).reply_tokens(), 16);
        // A million-token window's prompt stays within what the kernel takes in one request,
        // even if every character were escaped to six bytes.
        let gemini = Window::new(1_048_576);
        assert_eq!(gemini.prompt_budget(), MAX_PROMPT_TOKENS);
        assert!(
            gemini.prompt_budget() * CHARS_PER_TOKEN * 6
                <= agentos_dbus_interfaces::inference::MAX_REQUEST_BYTES
        );
        assert_eq!(tokens("abcd"), 1);
        assert_eq!(tokens("abcde"), 2);
        assert_eq!(tokens(""), 0);
    }
}

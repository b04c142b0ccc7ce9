//! Tokens counted where a server reports none (some local servers): approximately, a token for
//! every four bytes of text (the usual rule for English with BPE vocabularies; at least one per
//! non-empty text), which is enough for budgets and accounting, not for billing.

use crate::chat::{ChatRequest, Message};

/// Approximate tokens in `text`.
pub(crate) fn approx_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// Approximate tokens the request's prompt costs: every message's text, and the tools' specs.
pub(crate) fn prompt_tokens(request: &ChatRequest) -> u64 {
    let mut n = 0;
    for m in &request.messages {
        n += match m {
            Message::System { text } | Message::User { text } => approx_tokens(text),
            Message::Assistant { text, tool_calls } => {
                approx_tokens(text)
                    + tool_calls
                        .iter()
                        .map(|c| approx_tokens(&c.name) + approx_tokens(&c.arguments.to_string()))
                        .sum::<u64>()
            }
            Message::Tool { content, .. } => approx_tokens(content),
        };
    }
    for t in &request.tools {
        n += approx_tokens(&t.name)
            + approx_tokens(&t.description)
            + approx_tokens(&t.parameters.to_string());
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_bytes_a_token() {
        assert_eq!(approx_tokens(""), 0);
        assert_eq!(approx_tokens("abc"), 1);
        assert_eq!(approx_tokens("abcdefgh"), 2);
        let r = ChatRequest::new("m", vec![Message::user("abcdefgh")]);
        assert_eq!(prompt_tokens(&r), 2);
    }
}

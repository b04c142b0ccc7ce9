//! Reading one reply of the model: its text (reported as the task's progress message while it
//! streams, at most every so often and only its first bytes), its tool calls, and who served it.

use std::time::{Duration, Instant};

use agentos_dbus_interfaces::inference::{ChatEvent, ChatRequest, ToolCall};

use crate::evidence::floor_boundary;
use crate::host::Host;
use crate::model::{Model, ModelFailure, Replies};

/// Most bytes of text kept from one reply; a model that goes on past it is cut off there, its
/// reply read no further (`finish` is [`TOO_LONG`]).
pub const MAX_REPLY_BYTES: usize = 256 * 1024;

/// A whole reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub provider: String,
    pub model: String,
    pub text: String,
    pub calls: Vec<ToolCall>,
    pub finish: String,
}

/// Lets an action through at most once per `every`.
#[derive(Debug, Clone)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle { every, last: None }
    }

    /// Whether the action may happen at `now` (and if so, it counts as done then).
    pub fn ready(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

/// How the text of a reply is shown while it streams.
#[derive(Debug, Clone, Copy)]
pub struct Showing {
    pub fraction: f64,
    pub every: Duration,
    /// Bytes of the text shown at most. The kernel takes progress messages of at most 4096
    /// bytes, so a longer answer is shown by its first `max_bytes` (a message that stops
    /// growing), and the whole text is the task's result. Its beginning rather than its last
    /// bytes: a client that prints what each message adds to the one before (`agentctl ask`)
    /// then prints the rest from the result, instead of a new 4 KiB tail every time.
    pub max_bytes: usize,
}

/// What is shown of `text`: without blanks at either end (the result is the answer trimmed,
/// so it extends every message shown; and a message without its trailing blank is still
/// extended by the next), at most `max` bytes; nothing while it looks like a call written as
/// text (JSON, or a fenced JSON block: see `written`), which is no answer to show.
fn shown(text: &str, max: usize) -> &str {
    let text = text.trim();
    if text.starts_with('{') || text.starts_with("```json") {
        return "";
    }
    &text[..floor_boundary(text, max)]
}

/// What `finish` says of a reply cut short because the model went round in circles.
pub const REPEATING: &str = "repeating";
/// What `finish` says of a reply cut at [`MAX_REPLY_BYTES`], read no further.
pub const TOO_LONG: &str = "too_long";
/// Text shorter than this is never taken for a loop.
const LOOP_MIN_BYTES: usize = 400;
/// The end of the text a loop repeats, in bytes, and how often it must have come.
const LOOP_PROBE_BYTES: usize = 80;
const LOOP_TIMES: usize = 4;

/// The end of the text searched for a loop: a sentence repeated is found within it, and each
/// event costs at most this much, however long the reply.
const LOOP_WINDOW_BYTES: usize = 16 * 1024;

/// Whether the text's last bytes have come several times already (within its last
/// [`LOOP_WINDOW_BYTES`]): a small model at temperature 0 can repeat a sentence until its token
/// limit, which only costs time.
fn repeating(text: &str) -> bool {
    if text.len() < LOOP_MIN_BYTES {
        return false;
    }
    let mut from = text.len().saturating_sub(LOOP_WINDOW_BYTES);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let text = &text[from..];
    let mut start = text.len() - LOOP_PROBE_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text.matches(&text[start..]).count() >= LOOP_TIMES
}

/// Ask `model` and read its reply to the end, reporting its text through `host` as it grows.
pub async fn receive<M: Model, H: Host>(
    model: &M,
    request: &ChatRequest,
    host: &H,
    showing: Showing,
) -> Result<Reply, ModelFailure> {
    let mut events = model.chat(request).await?;
    let mut reply = Reply::default();
    let mut throttle = Throttle::new(showing.every);
    let mut last_shown = String::new();
    loop {
        let Some(event) = events.next().await else {
            return Err(ModelFailure::broken(
                "the model's answer ended before it was complete",
            ));
        };
        match event? {
            ChatEvent::Started {
                provider, model, ..
            } => {
                reply.provider = provider;
                reply.model = model;
            }
            ChatEvent::Text { text } => {
                let room = MAX_REPLY_BYTES.saturating_sub(reply.text.len());
                let kept = floor_boundary(&text, room);
                reply.text.push_str(&text[..kept]);
                if kept < text.len() {
                    // Past the limit: reading on would only cost time. Dropping the events
                    // closes the request.
                    reply.finish = TOO_LONG.to_string();
                    break;
                }
                if repeating(&reply.text) {
                    // Dropping the events closes the request and frees the model's slot.
                    reply.finish = REPEATING.to_string();
                    break;
                }
                let now = shown(&reply.text, showing.max_bytes);
                if !now.is_empty() && now != last_shown && throttle.ready(Instant::now()) {
                    host.progress(showing.fraction, now).await;
                    last_shown = now.to_string();
                }
            }
            ChatEvent::ToolCall { call } => reply.calls.push(call),
            ChatEvent::Usage { .. } => {}
            ChatEvent::Done { finish } => {
                reply.finish = finish;
                break;
            }
            ChatEvent::Error { kind, message } => return Err(ModelFailure { kind, message }),
        }
    }
    // The whole text at the end (what the throttle held back): the result begins with it.
    let last = shown(&reply.text, showing.max_bytes);
    if !last.is_empty() && last != last_shown {
        host.progress(showing.fraction, last).await;
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_going_round_in_circles_is_noticed() {
        let sentence = "The budget is 100 EUR. The tools returned a failure from docs. ";
        assert!(!repeating(&sentence.repeat(3)));
        assert!(repeating(&sentence.repeat(8)));
        let prose: String = (0..100)
            .map(|i| format!("Line {i} says something else. "))
            .collect();
        assert!(!repeating(&prose));
        assert!(repeating(&"é".repeat(300)), "on character boundaries");
    }

    #[tokio::test]
    async fn a_reply_past_the_limit_is_read_no_further_and_says_so() {
        use crate::script::{started, Kernel, Script};
        let mut events = vec![started()];
        // Three times the limit, none of it repeated, and no end: only stopping ends it.
        events.extend((0..3 * MAX_REPLY_BYTES / 200).map(|i| ChatEvent::Text {
            text: (0..20).map(|j| format!("w{i}x{j} ")).collect(),
        }));
        let model = Script::new(vec![Ok(events)]);
        let request =
            ChatRequest::new(vec![agentos_dbus_interfaces::inference::ChatMessage::user(
                "go on",
            )]);
        let showing = Showing {
            fraction: 0.5,
            every: Duration::from_secs(3600),
            max_bytes: 100,
        };
        let reply = receive(&model, &request, &Kernel::new(), showing)
            .await
            .expect("a reply cut at the limit");
        assert_eq!(reply.finish, TOO_LONG);
        assert!(reply.text.len() <= MAX_REPLY_BYTES);
        assert!(reply.text.len() > MAX_REPLY_BYTES - 300);
    }

    #[test]
    fn a_loop_is_looked_for_in_the_texts_end_only() {
        let sentence = "The budget is 100 EUR. The tools returned a failure from docs. ";
        let prose: String = (0..5000).map(|i| format!("Line {i} differs. ")).collect();
        assert!(repeating(&format!("{prose}{}", sentence.repeat(8))));
        assert!(!repeating(&format!("{}{prose}", sentence.repeat(8))));
    }

    #[test]
    fn written_calls_are_not_shown() {
        assert_eq!(shown(" {\"name\": \"x\"", 100), "");
        assert_eq!(shown("```json\n{", 100), "");
        assert_eq!(shown("It is {5}", 100), "It is {5}");
    }

    #[test]
    fn what_is_shown_starts_where_the_answer_does_and_is_bounded() {
        assert_eq!(shown("\n  The budget \n", 100), "The budget");
        assert_eq!(shown("The budget", 3), "The");
        assert_eq!(shown("éé", 3), "é");
    }

    #[test]
    fn the_throttle_lets_one_through_per_interval() {
        let mut t = Throttle::new(Duration::from_millis(150));
        let start = Instant::now();
        assert!(t.ready(start));
        assert!(!t.ready(start + Duration::from_millis(149)));
        assert!(t.ready(start + Duration::from_millis(150)));
        assert!(!t.ready(start + Duration::from_millis(200)));
        assert!(t.ready(start + Duration::from_millis(301)));
    }
}

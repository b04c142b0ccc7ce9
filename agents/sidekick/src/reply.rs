//! Reading one reply of the model: its text (reported as the task's progress message while it
//! streams, at most every so often and only its last bytes), its tool calls, and who served it.

use std::time::{Duration, Instant};

use agentos_dbus_interfaces::inference::{ChatEvent, ChatRequest, ToolCall};

use crate::evidence::tail;
use crate::host::Host;
use crate::model::{Model, ModelFailure, Replies};

/// Most bytes of text kept from one reply; a model that goes on past it is cut off there.
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
    /// Bytes of the text shown at most: the kernel takes progress messages of at most 4096
    /// bytes, so a long answer is shown by its end (the last bytes, after `…`); the whole text
    /// is the task's result.
    pub max_bytes: usize,
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
    let mut shown = 0usize;
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
                let take = crate::evidence::floor_boundary(&text, room);
                reply.text.push_str(&text[..take]);
                if !reply.text.trim().is_empty() && throttle.ready(Instant::now()) {
                    host.progress(showing.fraction, &tail(&reply.text, showing.max_bytes))
                        .await;
                    shown = reply.text.len();
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
    if shown != reply.text.len() && !reply.text.trim().is_empty() {
        host.progress(showing.fraction, &tail(&reply.text, showing.max_bytes))
            .await;
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

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

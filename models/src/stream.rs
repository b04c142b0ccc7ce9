//! A reply's SSE body read as events (by `eventsource-stream` over reqwest's byte stream, bounded
//! by [`crate::body`]), each
//! handed to the provider's decoder, under the first-token and idle time limits. Dropping the
//! stream before the reply is whole drops the response, which closes the connection at once (so
//! the server stops generating); once the reply is whole, what is left of the body (the end of
//! its chunked encoding, usually already on its way) is read off the kernel's path, so the
//! connection goes back to the pool instead of being closed and opened again for the next
//! request.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::time::Instant;

use crate::body::{BodyError, Bounded};
use crate::error::{ModelError, TimeoutStage};
use crate::event::ChatEvent;
use crate::transport::Limits;

/// A streamed reply: events, then its end (or one error, then its end).
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatEvent, ModelError>> + Send>>;

/// A provider's reading of its own stream.
pub(crate) trait Decoder: Send + 'static {
    /// One SSE event (`event` is "message" when the server named none). Returns true when
    /// the reply is complete.
    fn event(
        &mut self,
        event: &str,
        data: &str,
        out: &mut VecDeque<ChatEvent>,
    ) -> Result<bool, ModelError>;

    /// The body ended (after `event` returned true, or before).
    fn end(&mut self, complete: bool, out: &mut VecDeque<ChatEvent>) -> Result<(), ModelError>;
}

type Sse = Pin<
    Box<dyn Stream<Item = Result<eventsource_stream::Event, EventStreamError<BodyError>>> + Send>,
>;

struct State<D> {
    sse: Option<Sse>,
    decoder: D,
    out: VecDeque<ChatEvent>,
    limits: Limits,
    first_by: Option<Instant>,
    complete: bool,
    failed: bool,
}

/// The events of `resp`'s body, read by `decoder`. `started` is when the request was sent (the
/// first-token limit counts from it).
pub(crate) fn events<D: Decoder>(
    resp: reqwest::Response,
    decoder: D,
    limits: Limits,
    started: Instant,
) -> ChatStream {
    let sse: Sse = Box::pin(Bounded::new(Box::pin(resp.bytes_stream())).eventsource());
    let state = State {
        sse: Some(sse),
        decoder,
        out: VecDeque::new(),
        limits,
        first_by: Some(started + limits.first_token),
        complete: false,
        failed: false,
    };
    Box::pin(stream::unfold(state, |mut st| async move {
        let item = next(&mut st).await?;
        Some((item, st))
    }))
}

async fn next<D: Decoder>(st: &mut State<D>) -> Option<Result<ChatEvent, ModelError>> {
    loop {
        if let Some(ev) = st.out.pop_front() {
            return Some(Ok(ev));
        }
        if st.failed {
            return None;
        }
        let sse = st.sse.as_mut()?;
        let (deadline, stage, limit) = match st.first_by {
            Some(at) => (at, TimeoutStage::FirstToken, st.limits.first_token),
            None => (
                Instant::now() + st.limits.idle,
                TimeoutStage::Idle,
                st.limits.idle,
            ),
        };
        let step = match tokio::time::timeout_at(deadline, sse.next()).await {
            Err(_) => Err(ModelError::Timeout { stage, limit }),
            Ok(None) => {
                st.sse = None;
                st.decoder.end(st.complete, &mut st.out)
            }
            Ok(Some(Err(e))) => Err(stream_error(e)),
            Ok(Some(Ok(ev))) => {
                st.first_by = None;
                match st.decoder.event(&ev.event, &ev.data, &mut st.out) {
                    Ok(true) => {
                        st.complete = true;
                        if let Some(rest) = st.sse.take() {
                            drain(rest);
                        }
                        st.decoder.end(true, &mut st.out)
                    }
                    Ok(false) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = step {
            st.failed = true;
            st.sse = None;
            st.out.clear();
            return Some(Err(e));
        }
    }
}

/// How long, and how many events, the rest of a whole reply's body is read for its connection's
/// sake; a server that sends on after its reply ended loses the connection instead.
const DRAIN_FOR: Duration = Duration::from_secs(2);
const DRAIN_EVENTS: usize = 16;

/// Read the rest of a whole reply's body in a task of its own, so that the connection it came
/// on can serve the next request; where there is no runtime to run it, it is dropped (closed).
fn drain(mut rest: Sse) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let read = async {
            for _ in 0..DRAIN_EVENTS {
                if !matches!(rest.next().await, Some(Ok(_))) {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_FOR, read).await;
    });
}

fn stream_error(e: EventStreamError<BodyError>) -> ModelError {
    match e {
        EventStreamError::Utf8(_) => ModelError::Protocol {
            detail: "the stream is not UTF-8".into(),
        },
        EventStreamError::Parser(_) => ModelError::Protocol {
            detail: "the stream is not server-sent events".into(),
        },
        EventStreamError::Transport(BodyError::Transport(_)) => ModelError::Protocol {
            detail: "the connection broke in the middle of the reply".into(),
        },
        EventStreamError::Transport(BodyError::TooLarge(what)) => {
            ModelError::Protocol { detail: what }
        }
    }
}

/// The most tool calls one reply may make: a server past it is not followed further.
pub(crate) const MAX_TOOL_CALLS: usize = 128;

/// The index of a reply's next tool call, given how many it made; past [`MAX_TOOL_CALLS`], the
/// error that ends it.
pub(crate) fn next_call(calls: usize) -> Result<usize, ModelError> {
    if calls >= MAX_TOOL_CALLS {
        return Err(ModelError::Protocol {
            detail: format!("the reply makes more than {MAX_TOOL_CALLS} tool calls"),
        });
    }
    Ok(calls)
}

/// Parse a JSON event's data, or name what was wrong with it.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(data: &str) -> Result<T, ModelError> {
    // Where, not what: serde's message quotes the server's text, which may be anything.
    serde_json::from_str(data).map_err(|e| ModelError::Protocol {
        detail: format!(
            "an event is not the JSON expected (line {}, column {})",
            e.line(),
            e.column()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_not_as_expected_is_placed_not_quoted() {
        let err = parse::<Vec<u32>>("[1, \"secret text the server sent\"]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the model server sent a reply that cannot be read: an event is not the JSON \
             expected (line 1, column 33)"
        );
    }
}

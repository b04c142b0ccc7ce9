//! The event stream reader over a real socketpair: lines split across writes, unicode, long
//! lines, early ends, error events, and a dropped stream closing its end.

use std::io::Write;
use std::os::unix::net::UnixStream as StdStream;
use std::time::Duration;

use agentos_dbus_interfaces::inference::{ChatEvent, ToolCall};
use tokio::io::AsyncReadExt;

use super::*;

const LIMIT: Duration = Duration::from_secs(10);

/// A stream on one end of a socketpair, and the other end to write on.
fn pair() -> (ChatStream, StdStream) {
    let (ours, theirs) = StdStream::pair().unwrap();
    (ChatStream::from_fd(OwnedFd::from(ours)), theirs)
}

/// Write `chunks` one at a time with a pause between them, then close.
fn write_slowly(mut end: StdStream, chunks: Vec<Vec<u8>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for chunk in chunks {
            // The reader may have dropped the stream already (a test of that).
            if end.write_all(&chunk).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

fn line(event: &ChatEvent) -> Vec<u8> {
    event.to_line().into_bytes()
}

async fn all(mut stream: ChatStream) -> Vec<Result<ChatEvent, ChatError>> {
    let mut out = Vec::new();
    while let Some(e) = tokio::time::timeout(LIMIT, stream.next()).await.unwrap() {
        out.push(e);
    }
    out
}

fn started() -> ChatEvent {
    ChatEvent::Started {
        provider: "llama-server".into(),
        model: "qwen".into(),
        local: true,
    }
}

#[tokio::test]
async fn lines_split_across_writes_are_joined_and_collected() {
    let (stream, end) = pair();
    let call = ToolCall {
        id: "c1".into(),
        name: "files.read".into(),
        arguments: serde_json::json!({"path": "bücher/ünïcode ✓.txt"}),
    };
    let mut bytes = Vec::new();
    bytes.extend(line(&started()));
    bytes.extend(line(&ChatEvent::Text {
        text: "Grüße, ".into(),
    }));
    bytes.extend(line(&ChatEvent::Text {
        text: "世界 🌍\nzweite Zeile".into(),
    }));
    bytes.extend(line(&ChatEvent::ToolCall { call: call.clone() }));
    bytes.extend(line(&ChatEvent::Usage {
        input_tokens: 12,
        output_tokens: 7,
        estimated: true,
    }));
    bytes.extend(line(&ChatEvent::Done {
        finish: "tool_calls".into(),
    }));
    // Three bytes at a time: lines and multi-byte characters are cut everywhere.
    let chunks = bytes.chunks(3).map(<[u8]>::to_vec).collect();
    let writer = write_slowly(end, chunks);
    let reply = tokio::time::timeout(LIMIT, stream.collect())
        .await
        .unwrap()
        .unwrap();
    writer.join().unwrap();
    assert_eq!(
        reply,
        ChatReply {
            provider: "llama-server".into(),
            model: "qwen".into(),
            local: true,
            text: "Grüße, 世界 🌍\nzweite Zeile".into(),
            tool_calls: vec![call],
            usage: Some((12, 7, true)),
            finish: "tool_calls".into(),
        }
    );
}

#[tokio::test]
async fn next_yields_events_in_order_then_none() {
    let (stream, mut end) = pair();
    end.write_all(&line(&started())).unwrap();
    end.write_all(b"\n").unwrap(); // a blank line is skipped
    end.write_all(b"{\"type\":\"reasoning\",\"text\":\"a newer kind\"}\n")
        .unwrap();
    end.write_all(&line(&ChatEvent::Text { text: "hi".into() }))
        .unwrap();
    end.write_all(&line(&ChatEvent::Done {
        finish: "stop".into(),
    }))
    .unwrap();
    // Anything after the final event is not read.
    end.write_all(b"garbage\n").unwrap();
    drop(end);
    let events: Vec<ChatEvent> = all(stream).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        events,
        vec![
            started(),
            ChatEvent::Text { text: "hi".into() },
            ChatEvent::Done {
                finish: "stop".into()
            }
        ]
    );
}

#[tokio::test]
async fn an_error_event_is_a_model_error() {
    let (stream, mut end) = pair();
    end.write_all(&line(&started())).unwrap();
    end.write_all(&line(&ChatEvent::Text {
        text: "partial".into(),
    }))
    .unwrap();
    end.write_all(&line(&ChatEvent::Error {
        kind: "context_overflow".into(),
        message: "the conversation does not fit qwen's window of 4096 tokens".into(),
    }))
    .unwrap();
    let err = tokio::time::timeout(LIMIT, stream.collect())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), Some("context_overflow"));
    assert_eq!(
        err.to_string(),
        "the conversation does not fit qwen's window of 4096 tokens"
    );
    drop(end);
}

#[tokio::test]
async fn a_stream_closed_before_its_end_says_so() {
    // Closed between lines.
    let (stream, mut end) = pair();
    end.write_all(&line(&started())).unwrap();
    drop(end);
    let events = all(stream).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(events[1], Err(ChatError::EndedEarly)));
    assert!(events[1]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("ended the model's answer early"));

    // Closed mid-line, and collect says the same.
    let (stream, mut end) = pair();
    end.write_all(&line(&started())).unwrap();
    end.write_all(b"{\"type\":\"text\",\"te").unwrap();
    drop(end);
    let err = tokio::time::timeout(LIMIT, stream.collect())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ChatError::EndedEarly), "{err:?}");

    // Closed at once.
    let (stream, end) = pair();
    drop(end);
    let events = all(stream).await;
    assert!(matches!(events.as_slice(), [Err(ChatError::EndedEarly)]));
}

#[tokio::test]
async fn malformed_lines_are_errors_not_panics() {
    for bad in [
        &b"not json\n"[..],
        b"{\"type\":\"text\"}\n",
        b"{\"text\":\"no type\"}\n",
        b"[1,2]\n",
        b"{\"type\":\"text\",\"text\":\"\xff\xfe\"}\n",
        b"{\"type\":\"usage\",\"input_tokens\":-1,\"output_tokens\":0,\"estimated\":false}\n",
    ] {
        let (stream, mut end) = pair();
        end.write_all(bad).unwrap();
        let events = all(stream).await;
        assert!(
            matches!(events.as_slice(), [Err(ChatError::Malformed(_))]),
            "{:?}: {events:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[tokio::test]
async fn a_long_line_within_the_limit_is_read_and_one_beyond_is_refused() {
    // 6 MiB of text in one event, well past any buffer.
    let text = "é".repeat(3 * 1024 * 1024);
    let (stream, end) = pair();
    let mut bytes = line(&ChatEvent::Text { text: text.clone() });
    bytes.extend(line(&ChatEvent::Done {
        finish: "length".into(),
    }));
    let chunks = bytes.chunks(1 << 20).map(<[u8]>::to_vec).collect();
    let writer = write_slowly(end, chunks);
    let reply = tokio::time::timeout(LIMIT, stream.collect())
        .await
        .unwrap()
        .unwrap();
    writer.join().unwrap();
    assert_eq!(reply.text, text);
    assert_eq!(reply.finish, "length");

    // One byte past the limit, with no newline in sight: refused without waiting for the end.
    let (stream, end) = pair();
    let chunks = vec![vec![b'x'; MAX_EVENT_LINE + 1]];
    let writer = write_slowly(end, chunks);
    let events = all(stream).await;
    assert!(
        matches!(events.as_slice(), [Err(ChatError::LineTooLong { .. })]),
        "{events:?}"
    );
    writer.join().unwrap();
}

#[tokio::test]
async fn dropping_the_stream_closes_the_socket() {
    let (ours, theirs) = StdStream::pair().unwrap();
    let mut stream = ChatStream::from_fd(OwnedFd::from(ours)).with_id(7);
    assert_eq!(stream.id(), Some(7));
    let mut end = theirs;
    end.write_all(&line(&started())).unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), started());
    drop(stream);
    // The kernel's end sees EOF (what it takes as a cancel).
    end.set_nonblocking(true).unwrap();
    let mut end = tokio::net::UnixStream::from_std(end).unwrap();
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(LIMIT, end.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn next_is_cancel_safe() {
    let (mut stream, mut end) = pair();
    end.write_all(b"{\"type\":\"text\",").unwrap();
    // The half line is read, then the wait is abandoned.
    let waited = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
    assert!(waited.is_err());
    end.write_all(b"\"text\":\"whole\"}\n").unwrap();
    let event = tokio::time::timeout(LIMIT, stream.next()).await.unwrap();
    assert_eq!(
        event.unwrap().unwrap(),
        ChatEvent::Text {
            text: "whole".into()
        }
    );
}

#[tokio::test]
async fn the_events_are_a_stream_too() {
    use futures_util::StreamExt;
    let (stream, mut end) = pair();
    end.write_all(&line(&started())).unwrap();
    end.write_all(&line(&ChatEvent::Text { text: "a".into() }))
        .unwrap();
    drop(end);
    let events: Vec<_> = tokio::time::timeout(LIMIT, stream.into_stream().collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(events[2], Err(ChatError::EndedEarly)));
}

#[test]
fn errors_map_to_the_bus_names() {
    let canceled: Error = ChatError::Model {
        kind: "canceled".into(),
        message: "the task ended".into(),
    }
    .into();
    assert_eq!(canceled, Error::Canceled("the task ended".into()));
    let budget: Error = ChatError::Model {
        kind: "budget".into(),
        message: "over".into(),
    }
    .into();
    assert!(matches!(budget, Error::QuotaExceeded(_)));
    let refused: Error = ChatError::Refused(Error::NoModel("add one".into())).into();
    assert_eq!(refused, Error::NoModel("add one".into()));
    assert_eq!(
        ChatError::Refused(Error::AccessDenied("no model.remote".into())).to_string(),
        "no model.remote"
    );
    let early: Error = ChatError::EndedEarly.into();
    assert!(matches!(early, Error::Failed(m) if m.contains("early")));
}

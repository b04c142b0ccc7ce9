//! A reply's body as the SSE parser reads it: a leading byte-order mark taken off, and its size
//! bounded. `eventsource-stream` cuts a leading mark one byte in (not a character boundary: it
//! panics), and keeps an unfinished line in one buffer that it scans again whole for each piece
//! that comes, so a server sending a line without end costs the kernel memory and CPU without
//! bound. Here a line, an event and a whole reply each have a limit, and a server past one gets
//! a plain error instead.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

/// The most bytes one line of a reply may have: far more than any provider's event of a few
/// tokens (a whole Gemini function call included).
pub const MAX_LINE: usize = 1 << 20;
/// The most bytes one event (its lines up to the blank line that ends it) may have.
pub const MAX_EVENT: usize = 4 << 20;
/// The most bytes a whole reply may have (a long answer is a few megabytes of events).
pub const MAX_REPLY: u64 = 64 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why a body was not read on.
#[derive(Debug)]
pub enum BodyError {
    /// The connection failed.
    Transport(reqwest::Error),
    /// The server went past a limit; what it sent, said plainly.
    TooLarge(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Transport(_) => f.write_str("the connection broke"),
            BodyError::TooLarge(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::Transport(e) => Some(e),
            BodyError::TooLarge(_) => None,
        }
    }
}

/// What has been seen of a body so far.
#[derive(Debug, Default)]
struct Sizes {
    line: usize,
    event: usize,
    total: u64,
    /// The last byte ended a line with `\r` (a `\n` right after it ends no other line).
    after_cr: bool,
}

impl Sizes {
    /// Count `bytes`; what went past a limit, if anything did.
    fn count(&mut self, bytes: &[u8]) -> Option<String> {
        self.total = self.total.saturating_add(bytes.len() as u64);
        if self.total > MAX_REPLY {
            return Some(format!("the reply is longer than {} MiB", MAX_REPLY >> 20));
        }
        for &b in bytes {
            let crlf = b == b'\n' && self.after_cr;
            self.after_cr = b == b'\r';
            if crlf {
                continue;
            }
            if b == b'\n' || b == b'\r' {
                if self.line == 0 {
                    // A blank line ends the event.
                    self.event = 0;
                }
                self.line = 0;
                continue;
            }
            self.line += 1;
            self.event += 1;
            if self.line > MAX_LINE {
                return Some(format!(
                    "a line of the reply is longer than {} MiB",
                    MAX_LINE >> 20
                ));
            }
            if self.event > MAX_EVENT {
                return Some(format!(
                    "an event of the reply is longer than {} MiB",
                    MAX_EVENT >> 20
                ));
            }
        }
        None
    }
}

/// The most lines passed on in one piece: the parser copies what follows each line it takes out of
/// its buffer, so its cost for a piece grows with the piece's lines times its length. A provider's
/// event is two or three lines, so its pieces pass whole.
const LINES_PER_PIECE: usize = 16;
/// How many pieces are passed on in a row from what came before the stream waits a turn: a piece
/// of many short lines (comments, blank lines) yields no event, and would otherwise be read
/// whole within one poll of the kernel's thread.
const PIECES_PER_TURN: usize = 16;

/// `inner`, a body's pieces, with leading byte-order marks taken off and its size bounded (past
/// a limit it yields [`BodyError::TooLarge`] and then ends), passed on at most
/// [`LINES_PER_PIECE`] lines at a time.
pub struct Bounded<S> {
    inner: S,
    /// The first bytes, held until they can be told apart from byte-order marks (`None` once
    /// told).
    head: Option<Vec<u8>>,
    /// What came and was counted, not passed on yet.
    pending: Bytes,
    /// Pieces passed on since the stream last waited.
    in_a_row: usize,
    sizes: Sizes,
    ended: bool,
}

impl<S> Bounded<S> {
    pub fn new(inner: S) -> Bounded<S> {
        Bounded {
            inner,
            head: Some(Vec::new()),
            pending: Bytes::new(),
            in_a_row: 0,
            sizes: Sizes::default(),
            ended: false,
        }
    }

    /// Count a piece that came; past a limit, the error that ends the body.
    fn take_in(&mut self, bytes: Bytes) -> Result<(), BodyError> {
        if let Some(err) = self.sizes.count(&bytes) {
            self.ended = true;
            self.pending = Bytes::new();
            return Err(BodyError::TooLarge(err));
        }
        self.pending = bytes;
        Ok(())
    }

    /// The first bytes with their leading marks taken off, once what follows them can be told
    /// (or the body `ended`); `None` while more must come.
    fn told(head: &[u8], ended: bool) -> Option<Bytes> {
        let mut rest = head;
        while let Some(after) = rest.strip_prefix(BOM) {
            rest = after;
        }
        let undecided = rest.is_empty() || (rest.len() < BOM.len() && BOM.starts_with(rest));
        (ended || !undecided).then(|| Bytes::copy_from_slice(rest))
    }

    /// The next [`LINES_PER_PIECE`] lines of what is pending (up to and with the last one's end),
    /// or all of it if it has fewer.
    fn next_lines(&mut self) -> Bytes {
        let bytes = &self.pending;
        let mut lines = 0;
        let mut at = bytes.len();
        for (i, &b) in bytes.iter().enumerate() {
            let ends = b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
            if ends {
                lines += 1;
                if lines == LINES_PER_PIECE {
                    at = i + 1;
                    break;
                }
            }
        }
        self.pending.split_to(at)
    }
}

impl<S> Stream for Bounded<S>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Unpin,
{
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                if this.in_a_row >= PIECES_PER_TURN {
                    this.in_a_row = 0;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                this.in_a_row += 1;
                return Poll::Ready(Some(Ok(this.next_lines())));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let bytes = match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => {
                    this.in_a_row = 0;
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Err(BodyError::Transport(e))))
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    match this.head.take() {
                        Some(head) => Self::told(&head, true).unwrap_or_default(),
                        None => continue,
                    }
                }
                Poll::Ready(Some(Ok(bytes))) => match this.head.as_mut() {
                    None => bytes,
                    Some(head) => {
                        head.extend_from_slice(&bytes);
                        let Some(told) = Self::told(head, false) else {
                            continue;
                        };
                        this.head = None;
                        told
                    }
                },
            };
            if let Err(e) = this.take_in(bytes) {
                return Poll::Ready(Some(Err(e)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn read(pieces: &[&[u8]]) -> Vec<Result<Vec<u8>, String>> {
        let pieces: Vec<Result<Bytes, reqwest::Error>> = pieces
            .iter()
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect();
        let body = Bounded::new(futures_util::stream::iter(pieces));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(
            body.map(|r| r.map(|b| b.to_vec()).map_err(|e| e.to_string()))
                .collect(),
        )
    }

    fn joined(out: Vec<Result<Vec<u8>, String>>) -> Vec<u8> {
        out.into_iter().flat_map(|r| r.unwrap()).collect()
    }

    #[test]
    fn a_leading_mark_is_taken_off_even_split_across_pieces() {
        assert_eq!(joined(read(&[b"\xEF\xBB\xBFdata: x\n\n"])), b"data: x\n\n");
        assert_eq!(
            joined(read(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"])),
            b"data: x\n\n"
        );
        assert_eq!(
            joined(read(&[b"da", b"ta: \xEF\xBB\xBF\n\n"])),
            b"data: \xEF\xBB\xBF\n\n"
        );
        assert_eq!(joined(read(&[b"d"])), b"d");
        assert!(read(&[]).is_empty());
        // Two marks, split so that the parser would see the second one first.
        assert_eq!(
            joined(read(&[b"\xEF\xBB\xBF\xEF\xBB", b"\xBFdata: x\n\n"])),
            b"data: x\n\n"
        );
        assert_eq!(joined(read(&[b"\xEF\xBB\xBF"])), b"");
    }

    #[test]
    fn pieces_of_many_lines_are_passed_on_a_few_lines_at_a_time() {
        // An event or two pass whole.
        let out: Vec<Vec<u8>> = read(&[b"data: a\r\n\r\ndata: b\n", b"\ndata: c"])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(out, [&b"data: a\r\n\r\ndata: b\n"[..], b"\ndata: c"]);
        // A piece of 40 lines goes in pieces of 16 lines, CRLF, CR and LF each ending one.
        let many = ":\r\n:\r:\n".repeat(13) + ":\n";
        let out: Vec<Vec<u8>> = read(&[many.as_bytes()])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let lines = |piece: &[u8]| {
            String::from_utf8_lossy(piece)
                .replace("\r\n", "\n")
                .matches(['\n', '\r'])
                .count()
        };
        let counts: Vec<usize> = out.iter().map(|p| lines(p)).collect();
        assert_eq!(counts, [16, 16, 8]);
        assert_eq!(out.concat(), many.as_bytes());
    }

    #[test]
    fn a_line_without_end_is_stopped_at_its_limit() {
        let piece = vec![b'x'; 64 * 1024];
        let pieces: Vec<&[u8]> = std::iter::once(&b"data: "[..])
            .chain(std::iter::repeat_n(&piece[..], 20))
            .collect();
        let out = read(&pieces);
        let last = out.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last, "a line of the reply is longer than 1 MiB");
        assert!(out.len() < 20, "it ended at the limit");
    }

    #[test]
    fn an_event_of_endless_lines_is_stopped_but_many_events_are_not() {
        let line = format!("data: {}\n", "y".repeat(1000));
        let event_lines: Vec<&[u8]> = std::iter::repeat_n(line.as_bytes(), 5000).collect();
        let out = read(&event_lines);
        assert_eq!(
            out.last().unwrap().as_ref().unwrap_err(),
            "an event of the reply is longer than 4 MiB"
        );
        let event = format!("data: {}\r\n\r\n", "z".repeat(1000));
        let events: Vec<&[u8]> = std::iter::repeat_n(event.as_bytes(), 5000).collect();
        assert!(
            read(&events).iter().all(Result::is_ok),
            "5 MB of small events pass"
        );
    }
}

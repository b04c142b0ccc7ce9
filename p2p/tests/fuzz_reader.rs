//! Fuzzing the private-connection frame reader through its public door ([`agentos_p2p::split`]):
//! a peer writes arbitrary bytes and fds, real messages cut at arbitrary points, and real
//! messages with bytes overwritten, cut or inserted. The reader must hand out whole messages in
//! order with their own fds, or refuse with the documented error; it must never panic, never hang
//! once the peer has closed, and never allocate for what a header claims rather than for what
//! arrived.
//!
//! Stable Rust has no libFuzzer here, so these are property tests with a bounded number of cases
//! (a few seconds in CI). To fuzz longer, raise the count, e.g.
//! `PROPTEST_CASES=100000 cargo test -p agentos-p2p --test fuzz_reader --release`.

// The only unsafe code here is the counting allocator, which forwards to the system's.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use proptest::prelude::*;
use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use zbus::connection::socket::{BoxedSplit, ReadHalf};

/// The longest message D-Bus allows (2^27 bytes); a header claiming more is refused at once.
const MAX_MESSAGE: u64 = 128 * 1024 * 1024;

/// Longest a case may take once its peer has closed: more is a hang.
const CASE_LIMIT: Duration = Duration::from_secs(10);

/// Cases per property: `PROPTEST_CASES` if set, else `default` (kept small for CI).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The system allocator, noting the largest single request made on each thread.
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: no panic while the thread is being torn down.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract; noting a
// size touches only a const-initialized thread-local and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; the caller checked `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What one write of the peer carries: bytes, and how many fds go with its first byte.
#[derive(Debug, Clone)]
struct Write {
    bytes: Vec<u8>,
    fds: usize,
}

/// How a read ended.
#[derive(Debug)]
struct Outcome {
    /// The messages handed out, as (tag, fds) where the body is `(s, ah)`, else (`"?"`, 0).
    messages: Vec<(String, usize)>,
    /// The error that ended reading.
    end: zbus::Error,
    /// The largest single allocation made while reading.
    largest_alloc: usize,
}

/// A method call whose body carries `tag` and `fds` fds, as zbus writes it.
fn message(tag: &str, fds: usize) -> Vec<u8> {
    let files: Vec<OwnedFd> = (0..fds).map(|_| devnull()).collect();
    let body: Vec<zbus::zvariant::Fd<'_>> = files.iter().map(|f| f.as_fd().into()).collect();
    zbus::Message::method_call("/org/agentos/Kernel", "Call")
        .unwrap()
        .interface("org.agentos.Fuzz1")
        .unwrap()
        .build(&(tag, body))
        .unwrap()
        .data()
        .to_vec()
}

fn devnull() -> OwnedFd {
    std::fs::File::open("/dev/null").unwrap().into()
}

/// The peer's side: every write in turn (its fds with its first byte), then close. Errors end
/// it quietly: the reader may have stopped reading.
fn write_all(peer: UnixStream, writes: Vec<Write>) {
    for w in writes {
        let files: Vec<OwnedFd> = (0..w.fds).map(|_| devnull()).collect();
        let fds: Vec<BorrowedFd<'_>> = files.iter().map(|f| f.as_fd()).collect();
        let mut sent = 0;
        let mut first = true;
        while sent < w.bytes.len() {
            let iov = [IoSlice::new(&w.bytes[sent..])];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8))];
            let mut ancillary = SendAncillaryBuffer::new(&mut space);
            if first && !fds.is_empty() {
                assert!(ancillary.push(SendAncillaryMessage::ScmRights(&fds)));
            }
            match sendmsg(&peer, &iov, &mut ancillary, SendFlags::NOSIGNAL) {
                Ok(n) => sent += n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            }
            first = false;
        }
    }
}

/// Runs the reader (`fds`: whether the connection takes fds) against a peer that makes
/// `writes` and closes, until the reader refuses or reports the end.
fn read_all(writes: Vec<Write>, fds: bool) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ours, peer) = UnixStream::pair().unwrap();
    // The peer writes from its own thread: a reader that must wait for bytes gets them.
    let writer = std::thread::spawn(move || write_all(peer, writes));
    let outcome = runtime.block_on(async {
        let mut split: BoxedSplit = if fds {
            agentos_p2p::split(ours).unwrap()
        } else {
            agentos_p2p::split_without_fds(ours).unwrap()
        };
        LARGEST.with(|l| l.set(0));
        let read = async {
            let mut messages = Vec::new();
            for seq in 1.. {
                let (mut bytes, mut fds) = (Vec::new(), Vec::new());
                match split
                    .read_mut()
                    .receive_message(seq, &mut bytes, &mut fds)
                    .await
                {
                    Ok(msg) => {
                        let body = msg.body();
                        let got = body
                            .deserialize::<(String, Vec<zbus::zvariant::OwnedFd>)>()
                            .map(|(t, fds)| (t, fds.len()));
                        messages.push(got.unwrap_or_else(|_| ("?".into(), 0)));
                    }
                    Err(end) => {
                        return Outcome {
                            messages,
                            end,
                            largest_alloc: LARGEST.with(Cell::get),
                        }
                    }
                }
            }
            unreachable!("the loop returns")
        };
        tokio::time::timeout(CASE_LIMIT, read)
            .await
            .expect("the reader hung after its peer closed")
    });
    writer.join().expect("the peer's thread");
    outcome
}

/// What reading `sent` bytes may allocate at most in one piece: the read-ahead buffer (64 KiB),
/// or twice what arrived (the buffer doubles as bytes come), with room for zbus's own use.
fn alloc_bound(sent: usize) -> usize {
    2 * sent + 128 * 1024
}

fn sent(writes: &[Write]) -> usize {
    writes.iter().map(|w| w.bytes.len()).sum()
}

/// The reader ended because the peer closed.
fn closed(end: &zbus::Error) -> bool {
    matches!(end, zbus::Error::InputOutput(e)
        if matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::UnexpectedEof))
}

/// `bytes` cut at the given points (sorted, deduplicated, in range) into writes; `fds_at` gives
/// the fds of a write by the offset it starts at.
fn cut(bytes: &[u8], mut points: Vec<usize>, fds_at: &dyn Fn(usize) -> usize) -> Vec<Write> {
    points.retain(|&p| p > 0 && p < bytes.len());
    points.sort_unstable();
    points.dedup();
    let mut writes = Vec::new();
    let mut start = 0;
    for end in points.into_iter().chain(std::iter::once(bytes.len())) {
        writes.push(Write {
            bytes: bytes[start..end].to_vec(),
            fds: fds_at(start),
        });
        start = end;
    }
    writes
}

/// A stream of real messages: their bytes, where each starts, and (tag, fds) for each.
#[derive(Debug, Clone)]
struct Stream {
    bytes: Vec<u8>,
    starts: Vec<usize>,
    expected: Vec<(String, usize)>,
}

impl Stream {
    fn new(messages: &[(String, usize)]) -> Stream {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for (tag, fds) in messages {
            starts.push(bytes.len());
            bytes.extend(message(tag, *fds));
        }
        Stream {
            bytes,
            starts,
            expected: messages.to_vec(),
        }
    }

    /// The fds sent with a write that starts at `offset`: those of the message starting there,
    /// or none. (A write holds a message's first byte only if it starts there: the cut points
    /// always include every message's start.)
    fn fds_at(&self, offset: usize) -> usize {
        self.starts
            .iter()
            .position(|&s| s == offset)
            .map_or(0, |i| self.expected[i].1)
    }

    /// Writes cut at `points` and at every message's start.
    fn writes(&self, points: Vec<usize>) -> Vec<Write> {
        let mut points = points;
        points.extend(&self.starts);
        cut(&self.bytes, points, &|o| self.fds_at(o))
    }
}

fn messages() -> impl Strategy<Value = Vec<(String, usize)>> {
    prop::collection::vec(("[a-z0-9 ]{0,300}", 0usize..4), 1..6)
}

/// A length field: small, around the limit, or anything.
fn length() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..4096, (1u32 << 26)..(1u32 << 28), any::<u32>()]
}

fn points() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..8192, 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(96)))]

    /// Arbitrary bytes, arbitrarily cut, some writes carrying fds: no panic, an end once the
    /// peer closes, and no allocation beyond what arrived.
    #[test]
    fn arbitrary_input_ends_in_an_error_without_panic_or_large_allocation(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        points in points(),
        fds in prop::collection::vec(0usize..3, 0..16),
        takes_fds in any::<bool>(),
    ) {
        let fd_writes = std::cell::RefCell::new(fds.into_iter());
        let writes = cut(&bytes, points, &|_| fd_writes.borrow_mut().next().unwrap_or(0));
        let total = sent(&writes);
        let out = read_all(writes, takes_fds);
        prop_assert!(out.largest_alloc <= alloc_bound(total), "{} for {total} bytes", out.largest_alloc);
        prop_assert!(out.messages.len() <= total / 16);
    }

    /// A fixed part claiming any lengths: the reader waits for the bytes, or refuses at once
    /// (ExcessData) when the total passes what D-Bus allows; it never allocates the claim.
    #[test]
    fn claimed_lengths_cost_nothing_and_oversized_ones_are_refused(
        tag in "[a-z]{0,40}",
        body_len in length(),
        fields_len in length(),
        big_endian in any::<bool>(),
    ) {
        let mut bytes = message(&tag, 0);
        let put = |b: &mut Vec<u8>, at: usize, v: u32| {
            let v = if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
            b[at..at + 4].copy_from_slice(&v);
        };
        if big_endian {
            // Re-encode the fixed part's numbers as the new endianness says.
            bytes[0] = b'B';
            let serial = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
            put(&mut bytes, 8, serial);
        }
        put(&mut bytes, 4, body_len);
        put(&mut bytes, 12, fields_len);
        let total = (16 + u64::from(fields_len)).next_multiple_of(8) + u64::from(body_len);
        let n = bytes.len();
        let out = read_all(vec![Write { bytes, fds: 0 }], true);
        prop_assert!(out.largest_alloc <= alloc_bound(n), "{} for {n} bytes", out.largest_alloc);
        if total > MAX_MESSAGE {
            prop_assert!(matches!(out.end, zbus::Error::ExcessData), "{:?}", out.end);
            prop_assert!(out.messages.is_empty());
        } else if total > n as u64 {
            // Waited for the rest, which never came.
            prop_assert!(closed(&out.end), "{:?}", out.end);
        }
    }

    /// Real messages, cut anywhere, each with its fds sent with its first byte: every one
    /// arrives whole, in order, with its own fds; then the end.
    #[test]
    fn real_messages_arrive_whole_however_they_are_cut(
        messages in messages(),
        points in points(),
    ) {
        let stream = Stream::new(&messages);
        let out = read_all(stream.writes(points), true);
        prop_assert_eq!(&out.messages, &stream.expected);
        prop_assert!(closed(&out.end), "{:?}", out.end);
    }

    /// Real messages with bytes overwritten, a piece inserted, or the stream cut short: every
    /// message wholly before the first change still arrives intact; what follows ends without
    /// panic or large allocation.
    #[test]
    fn mutated_messages_leave_earlier_ones_intact(
        messages in messages(),
        points in points(),
        overwrites in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        insert in prop::option::of((any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..64))),
        keep in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let stream = Stream::new(&messages);
        let mut bytes = stream.bytes.clone();
        let mut first_change = bytes.len();
        for (at, b) in overwrites {
            let at = at.index(bytes.len());
            if bytes[at] != b {
                bytes[at] = b;
                first_change = first_change.min(at);
            }
        }
        if let Some((at, piece)) = insert {
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, piece);
            first_change = first_change.min(at);
        }
        if let Some(keep) = keep {
            let keep = keep.index(bytes.len() + 1);
            bytes.truncate(keep);
            first_change = first_change.min(keep);
        }
        // Message i is untouched when it ends at or before the first change.
        let ends: Vec<usize> = stream.starts.iter().skip(1).copied().chain([stream.bytes.len()]).collect();
        let intact = ends.iter().take_while(|&&e| e <= first_change).count();
        let mutated = Stream { bytes, ..stream.clone() };
        let total = mutated.bytes.len();
        let out = read_all(mutated.writes(points), true);
        prop_assert!(out.messages.len() >= intact, "{:?} ended after {} of {intact}", out.end, out.messages.len());
        prop_assert_eq!(&out.messages[..intact], &stream.expected[..intact]);
        prop_assert!(out.largest_alloc <= alloc_bound(total), "{} for {total} bytes", out.largest_alloc);
    }

    /// A first byte other than `l` or `B` is refused as IncorrectEndian.
    #[test]
    fn an_unknown_endianness_is_refused(tag in "[a-z]{0,40}", first in any::<u8>()) {
        prop_assume!(first != b'l' && first != b'B');
        let mut bytes = message(&tag, 0);
        bytes[0] = first;
        let out = read_all(vec![Write { bytes, fds: 0 }], true);
        prop_assert!(matches!(out.end, zbus::Error::IncorrectEndian), "{:?}", out.end);
        prop_assert!(out.messages.is_empty());
    }

    /// A message claiming more fds than the peer sent is refused (MissingParameter), the
    /// messages before it arriving; fds on a connection that takes none end it (an InvalidData
    /// I/O error).
    #[test]
    fn lies_about_fds_are_refused(
        before in prop::collection::vec(("[a-z]{0,20}", 0usize..3), 0..3),
        (claimed, sent_fds) in (2usize..5).prop_flat_map(|c| (Just(c), 1..c)),
    ) {
        let stream = Stream::new(&before);
        let mut writes = if before.is_empty() { Vec::new() } else { stream.writes(Vec::new()) };
        writes.push(Write { bytes: message("liar", claimed), fds: sent_fds });
        let out = read_all(writes, true);
        prop_assert_eq!(&out.messages, &stream.expected[..before.len()]);
        prop_assert!(matches!(out.end, zbus::Error::MissingParameter(_)), "{:?}", out.end);

        let plain: Vec<(String, usize)> = before.iter().map(|(t, _)| (t.clone(), 0)).collect();
        let stream = Stream::new(&plain);
        let mut writes = if plain.is_empty() { Vec::new() } else { stream.writes(Vec::new()) };
        writes.push(Write { bytes: message("fds", sent_fds), fds: sent_fds });
        let out = read_all(writes, false);
        // The fds may come in the same read as earlier messages, which then end with them.
        prop_assert!(stream.expected.starts_with(&out.messages), "{:?}", out.messages);
        prop_assert!(
            matches!(&out.end, zbus::Error::InputOutput(e) if e.kind() == std::io::ErrorKind::InvalidData),
            "{:?}", out.end
        );
    }
}

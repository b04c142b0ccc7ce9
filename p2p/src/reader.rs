//! The reading half: reads ahead, so one `recvmsg` usually brings a whole message (zbus asks for
//! a message's header and then its rest, two reads), and hands zbus one message at a time with
//! exactly the fds it says it carries.
//!
//! Fds arrive with the first byte of the write that sent them, so when a message's first byte
//! has been read, its fds have been received; they are queued and each message takes as many as
//! its `UNIX_FDS` header field counts, in order, as libdbus does. Only then is a header parsed
//! here: a message without fds costs no parsing beyond the fixed part.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use zbus::connection::socket::ReadHalf;
use zbus::fdo::ConnectionCredentials;
use zbus::Message;

use crate::frame::{frame, unix_fds, FIXED};
use crate::{credentials, receive, Fds};

/// How much the reader reads at once (and keeps, between messages larger than that).
const AHEAD: usize = 64 * 1024;

/// Most fds that may wait for their message: a peer sending fds no message claims is cut off.
const MAX_QUEUED_FDS: usize = 4 * crate::MAX_FDS;

#[derive(Debug)]
pub(crate) struct Reader {
    fd: Arc<AsyncFd<std::os::unix::net::UnixStream>>,
    /// Read and not yet handed out: `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Fds received and not yet handed out, in the order they came.
    fds: VecDeque<OwnedFd>,
    /// Which way fds may pass (received ones only with `Fds::Both`).
    fds_allowed: Fds,
    /// The longest message accepted; a longer one ends the connection.
    max_message: usize,
}

impl Reader {
    pub(crate) fn new(
        fd: Arc<AsyncFd<std::os::unix::net::UnixStream>>,
        fds_allowed: Fds,
        max_message: usize,
    ) -> Self {
        Reader {
            fd,
            buf: vec![0; AHEAD],
            start: 0,
            end: 0,
            fds: VecDeque::new(),
            fds_allowed,
            max_message,
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads until at least `n` bytes are buffered. The buffer grows as bytes come, not as a
    /// header claims: a peer that announces a large message and sends nothing costs nothing.
    async fn fill(&mut self, n: usize) -> io::Result<()> {
        if self.end - self.start >= n {
            return Ok(());
        }
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
            if self.buf.len() > AHEAD {
                // Give back what a large message needed.
                self.buf = vec![0; AHEAD];
            }
        }
        if self.start + n > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        while self.end - self.start < n {
            if self.end == self.buf.len() {
                // Full, and short of `n` (so `start` is 0 and `n` is past the end).
                let grown = self.buf.len().saturating_mul(2).min(n);
                self.buf.resize(grown, 0);
            }
            self.read_some().await?;
        }
        Ok(())
    }

    /// One `recvmsg` into the free end of the buffer.
    async fn read_some(&mut self) -> io::Result<()> {
        loop {
            let mut ready = self.fd.readable().await?;
            let free = &mut self.buf[self.end..];
            let room = free.len();
            match ready.try_io(|s| receive(s.get_ref().as_fd(), free)) {
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Ok(Ok((n, fds))) => {
                    if fds.is_empty() {
                        if n < room {
                            // The socket is empty now: wait for input next time. (A read
                            // that brought fds stops after their write, with more maybe left.)
                            ready.clear_ready();
                        }
                    } else if self.fds_allowed != Fds::Both {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the peer sent file descriptors on a connection that takes none",
                        ));
                    } else if self.fds.len() + fds.len() > MAX_QUEUED_FDS {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the peer sent file descriptors that no message claims",
                        ));
                    }
                    self.fds.extend(fds);
                    self.end += n;
                    return Ok(());
                }
                Err(_would_block) => {}
            }
        }
    }

    /// The next whole message and the fds it claims, taken out of the buffer and the queue.
    async fn next_message(&mut self) -> zbus::Result<(Vec<u8>, Vec<OwnedFd>)> {
        self.fill(FIXED).await?;
        let frame = frame(self.buffered())?;
        if frame.len > self.max_message {
            return Err(zbus::Error::ExcessData);
        }
        self.fill(frame.len).await?;
        let bytes = self.buffered()[..frame.len].to_vec();
        self.start += frame.len;
        if self.fds.is_empty() {
            return Ok((bytes, Vec::new()));
        }
        let wanted = unix_fds(&bytes, frame)?;
        if wanted > self.fds.len() {
            return Err(zbus::Error::MissingParameter(
                "a message claims more file descriptors than the peer sent",
            ));
        }
        Ok((bytes, self.fds.drain(..wanted).collect()))
    }
}

/// A message already read, handed to zbus's own decoding as bytes "already received".
#[derive(Debug)]
struct Received;

#[async_trait::async_trait]
impl ReadHalf for Received {
    async fn recvmsg(&mut self, _buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "a message was shorter than its header says",
        ))
    }
}

#[async_trait::async_trait]
impl ReadHalf for Reader {
    async fn receive_message(
        &mut self,
        seq: u64,
        already_received_bytes: &mut Vec<u8>,
        already_received_fds: &mut Vec<OwnedFd>,
    ) -> zbus::Result<Message> {
        // What the handshake read past its end comes before what is buffered here.
        if !already_received_bytes.is_empty() {
            already_received_bytes.extend_from_slice(&self.buf[self.start..self.end]);
            self.buf = std::mem::take(already_received_bytes);
            (self.start, self.end) = (0, self.buf.len());
            self.buf.resize(self.buf.len().max(AHEAD), 0);
        }
        for fd in already_received_fds.drain(..).rev() {
            self.fds.push_front(fd);
        }
        let (mut bytes, mut fds) = self.next_message().await?;
        // zbus decodes a complete message from these without reading, and takes exactly the
        // fds given (it asks for none when there are none).
        Received.receive_message(seq, &mut bytes, &mut fds).await
    }

    /// What the handshake reads with: buffered bytes first, then the socket.
    async fn recvmsg(&mut self, out: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
            self.read_some().await?;
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok((n, self.fds.drain(..).collect()))
    }

    /// Whether fd passing is negotiated: also when only this end sends them.
    fn can_pass_unix_fd(&self) -> bool {
        self.fds_allowed != Fds::None
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        credentials(&self.fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::BorrowedFd;
    use std::os::unix::net::UnixStream;

    fn inode(fd: BorrowedFd<'_>) -> u64 {
        rustix::fs::fstat(fd).unwrap().st_ino
    }

    /// A method call whose body carries `tag` and `files` as fds.
    fn message(tag: &str, files: &[std::fs::File]) -> Message {
        let body: Vec<zbus::zvariant::Fd<'_>> = files.iter().map(|f| f.as_fd().into()).collect();
        Message::method_call("/org/agentos/Test", "Take")
            .unwrap()
            .build(&(tag, body))
            .unwrap()
    }

    fn reader(stream: UnixStream, fds: Fds) -> Reader {
        reader_with(stream, fds, crate::frame::MAX_MESSAGE)
    }

    fn reader_with(stream: UnixStream, fds: Fds, max_message: usize) -> Reader {
        let fd = crate::for_input(stream).unwrap();
        Reader::new(fd, fds, max_message)
    }

    async fn next(r: &mut Reader, seq: u64) -> zbus::Result<(String, Vec<u64>)> {
        let (mut bytes, mut fds) = (Vec::new(), Vec::new());
        let read = r.receive_message(seq, &mut bytes, &mut fds);
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), read)
            .await
            .expect("a message in time")?;
        let (tag, fds): (String, Vec<zbus::zvariant::OwnedFd>) = msg.body().deserialize()?;
        Ok((tag, fds.iter().map(|f| inode(f.as_fd())).collect()))
    }

    #[tokio::test]
    async fn each_message_gets_the_fds_it_carries_however_the_reads_fall() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut r = reader(ours, Fds::Both);
        let files: Vec<Vec<std::fs::File>> = [0, 2, 0, 1, 0]
            .iter()
            .map(|&n| (0..n).map(|_| tempfile::tempfile().unwrap()).collect())
            .collect();
        // All written before any is read: reads take several messages at once.
        for (i, f) in files.iter().enumerate() {
            let msg = message(&format!("m{i}"), f);
            let fds: Vec<BorrowedFd<'_>> = f.iter().map(|f| f.as_fd()).collect();
            // The fds go with the message's first byte, as zbus and libdbus send them.
            let data = msg.data();
            crate::send(theirs.as_fd(), &data[..1], &fds).unwrap();
            crate::send(theirs.as_fd(), &data[1..], &[]).unwrap();
        }
        for (i, f) in files.iter().enumerate() {
            let (tag, got) = next(&mut r, i as u64 + 1).await.unwrap();
            assert_eq!(tag, format!("m{i}"));
            let want: Vec<u64> = f.iter().map(|f| inode(f.as_fd())).collect();
            assert_eq!(got, want, "message {i}");
        }
        assert!(r.fds.is_empty());
    }

    #[tokio::test]
    async fn messages_larger_than_a_read_and_split_writes_arrive_whole() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut r = reader(ours, Fds::Both);
        let big = "x".repeat(3 * AHEAD + 5);
        let writer = std::thread::spawn(move || {
            for tag in [big.as_str(), "small", big.as_str(), "after"] {
                let msg = message(tag, &[]);
                for chunk in msg.data().chunks(1000) {
                    crate::send(theirs.as_fd(), chunk, &[]).unwrap();
                }
            }
            big
        });
        let mut tags = Vec::new();
        for seq in 1..=3 {
            tags.push(next(&mut r, seq).await.unwrap().0);
        }
        assert!(r.buf.len() > AHEAD);
        let big = writer.join().unwrap();
        assert_eq!(tags, [big.clone(), "small".into(), big]);
        // Once emptied, the buffer is back to its usual size.
        assert_eq!(next(&mut r, 4).await.unwrap().0, "after");
        assert_eq!(r.buf.len(), AHEAD);
    }

    #[tokio::test]
    async fn a_claimed_length_costs_nothing_until_the_bytes_come() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut r = reader(ours, Fds::Both);
        let mut bytes = message("big", &[]).data().to_vec();
        // The body is announced as 100 MiB; only the first bytes are sent.
        bytes[4..8].copy_from_slice(&(100u32 << 20).to_le_bytes());
        crate::send(theirs.as_fd(), &bytes, &[]).unwrap();
        let (mut b, mut f) = (Vec::new(), Vec::new());
        let read = r.receive_message(1, &mut b, &mut f);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(200), read).await;
        assert!(waited.is_err(), "no message yet");
        assert_eq!(r.buf.len(), AHEAD);
    }

    #[tokio::test]
    async fn lying_peers_are_cut_off_not_obeyed() {
        // A message that claims more fds than were sent.
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut r = reader(ours, Fds::Both);
        let files = [tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap()];
        let msg = message("two", &files);
        crate::send(theirs.as_fd(), msg.data(), &[files[0].as_fd()]).unwrap();
        assert!(matches!(
            next(&mut r, 1).await,
            Err(zbus::Error::MissingParameter(_))
        ));
        // Fds on a connection that takes none.
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut r = reader(ours, Fds::None);
        let msg = message("one", &files[..1]);
        crate::send(theirs.as_fd(), msg.data(), &[files[0].as_fd()]).unwrap();
        assert!(next(&mut r, 1).await.is_err());
        // A length past what D-Bus allows.
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut r = reader(ours, Fds::Both);
        let mut bytes = message("big", &[]).data().to_vec();
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        crate::send(theirs.as_fd(), &bytes, &[]).unwrap();
        assert!(matches!(
            next(&mut r, 1).await,
            Err(zbus::Error::ExcessData)
        ));
        // A message longer than this connection's own limit.
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut r = reader_with(ours, Fds::Both, 64);
        let msg = message("a message longer than sixty-four bytes in all", &[]);
        assert!(msg.data().len() > 64);
        crate::send(theirs.as_fd(), msg.data(), &[]).unwrap();
        assert!(matches!(
            next(&mut r, 1).await,
            Err(zbus::Error::ExcessData)
        ));
    }
}

//! Either end of a private peer-to-peer D-Bus connection (the kernel's, an agent's): a Unix socket
//! for zbus that waits for input only, and reads ahead.
//!
//! Tokio's own socket also waits for room to write, edge-triggered, so each time a peer read what
//! was sent, the sender was woken for nothing: on the kernel, twice per forwarded call; on an
//! agent, once per call it answers. This socket waits for room only after a write found none, on
//! a duplicate registered for that alone. Fds received from a peer are close-on-exec, so none can
//! leak into a process started afterwards. How it reads is in [`reader`].
//!
//! A connection can be bounded ([`Limits`]): messages longer than a limit end it, and so does a
//! peer that leaves what was sent to it unread for longer than a limit (its socket stays full), so
//! a peer that does not read is slowed (writes to it wait) and then cut off, and what waits to be
//! written to it cannot pile up without end.
//!
//! [`until_closed`] tells either end when the other has gone.

mod frame;
mod reader;
pub mod records;

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, RecvMsg, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use zbus::connection::socket::{BoxedSplit, ReadHalf, Split, WriteHalf};
use zbus::fdo::ConnectionCredentials;

/// Most fds one read accepts (the kernel's limit per message, SCM_MAX_FD).
pub(crate) const MAX_FDS: usize = 253;

#[derive(Debug)]
struct Writer {
    fd: Arc<AsyncFd<UnixStream>>,
    stall: Option<Duration>,
}

/// Which way fds may pass on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fds {
    /// Both ways.
    Both,
    /// Only to the peer (fd passing is negotiated, so this end can send them); fds the peer
    /// sends end the connection.
    ToPeer,
    /// Neither way (zbus does not offer fd passing); fds a peer sends anyway end the connection.
    None,
}

/// Bounds of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Which way fds may pass.
    pub fds: Fds,
    /// The longest message accepted from the peer; a longer one ends the connection.
    pub max_message: usize,
    /// How long a write may wait for the peer to make room (to read); past it the connection is
    /// ended. `None`: as long as it takes.
    pub write_stall: Option<Duration>,
}

impl Default for Limits {
    /// Fds pass, messages as long as D-Bus allows, writes wait as long as it takes.
    fn default() -> Limits {
        Limits {
            fds: Fds::Both,
            max_message: frame::MAX_MESSAGE,
            write_stall: None,
        }
    }
}

/// Wraps a connected Unix stream for `zbus::connection::Builder::socket`.
pub fn split(stream: UnixStream) -> io::Result<BoxedSplit> {
    split_limited(stream, Limits::default())
}

/// Like [`split`] for a connection that passes no fds either way. zbus does not offer fd passing
/// on it; fds a peer sends anyway end the connection.
pub fn split_without_fds(stream: UnixStream) -> io::Result<BoxedSplit> {
    split_limited(
        stream,
        Limits {
            fds: Fds::None,
            ..Limits::default()
        },
    )
}

/// Like [`split`], within `limits`.
pub fn split_limited(stream: UnixStream, limits: Limits) -> io::Result<BoxedSplit> {
    let fd = for_input(stream)?;
    let max_message = limits.max_message.min(frame::MAX_MESSAGE);
    let reader = reader::Reader::new(Arc::clone(&fd), limits.fds, max_message);
    let read: Box<dyn ReadHalf> = Box::new(reader);
    let write: Box<dyn WriteHalf> = Box::new(Writer {
        fd,
        stall: limits.write_stall,
    });
    Ok(Split::new(read, write))
}

/// The stream, non-blocking and registered for input, shared by both halves.
fn for_input(stream: UnixStream) -> io::Result<Arc<AsyncFd<UnixStream>>> {
    stream.set_nonblocking(true)?;
    Ok(Arc::new(register(stream, Interest::READABLE)?))
}

/// Registers a socket with the runtime for `interest` alone.
#[allow(unsafe_code)]
fn register(stream: UnixStream, interest: Interest) -> io::Result<AsyncFd<UnixStream>> {
    // SAFETY: the AsyncFd owns the stream, which keeps its one fd open and unchanged until the
    // AsyncFd is dropped; `UnixStream::as_raw_fd` always returns that fd.
    Ok(unsafe { AsyncFd::register_with_interest(stream, interest) }?)
}

/// One `recvmsg` into `buf`, with `space` for fds: what it says and the fds that came
/// (close-on-exec).
pub(crate) fn receive_into(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    space: &mut [MaybeUninit<u8>],
) -> io::Result<(RecvMsg, Vec<OwnedFd>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut ancillary = RecvAncillaryBuffer::new(space);
    let msg = recvmsg(fd, &mut iov, &mut ancillary, RecvFlags::CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for m in ancillary.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = m {
            fds.extend(received);
        }
    }
    Ok((msg, fds))
}

/// One `recvmsg`: bytes and the fds that came with them.
pub(crate) fn receive(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let (msg, fds) = receive_into(fd, buf, &mut space)?;
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the peer sent more file descriptors than one message may carry",
        ));
    }
    if msg.bytes == 0 {
        return Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the peer closed the connection",
        ));
    }
    Ok((msg.bytes, fds))
}

/// One `sendmsg` of bytes and fds.
fn send(fd: BorrowedFd<'_>, buf: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    let iov = [IoSlice::new(buf)];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !ancillary.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many file descriptors for one message",
        ));
    }
    Ok(sendmsg(fd, &iov, &mut ancillary, SendFlags::NOSIGNAL)?)
}

/// Waits until the socket has room to write, on a duplicate registered for that alone (epoll
/// reports a socket that is already writable as soon as it is added).
async fn room(fd: &AsyncFd<UnixStream>) -> io::Result<()> {
    let dup = register(fd.get_ref().try_clone()?, Interest::WRITABLE)?;
    let _ready = dup.writable().await?;
    Ok(())
}

pub(crate) fn credentials(fd: &AsyncFd<UnixStream>) -> io::Result<ConnectionCredentials> {
    let cred = rustix::net::sockopt::socket_peercred(fd.get_ref())?;
    Ok(ConnectionCredentials::default()
        .set_unix_user_id(cred.uid.as_raw())
        .set_process_id(cred.pid.as_raw_nonzero().get().unsigned_abs()))
}

#[async_trait::async_trait]
impl WriteHalf for Writer {
    async fn sendmsg(&mut self, buf: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        loop {
            match send(self.fd.get_ref().as_fd(), buf, fds) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match self.stall {
                    None => room(&self.fd).await?,
                    Some(limit) => {
                        if tokio::time::timeout(limit, room(&self.fd)).await.is_err() {
                            // The peer has not read for too long: end the connection, both ways.
                            let _ = self.fd.get_ref().shutdown(Shutdown::Both);
                            return Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!(
                                    "the peer did not read for {} s; the connection is closed",
                                    limit.as_secs()
                                ),
                            ));
                        }
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return result,
            }
        }
    }

    async fn close(&mut self) -> io::Result<()> {
        self.fd.get_ref().shutdown(Shutdown::Both)
    }

    fn can_pass_unix_fd(&self) -> bool {
        true
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        credentials(&self.fd)
    }
}

/// Wait until the peer of a peer-to-peer connection goes away (its message stream ends or errs).
pub async fn until_closed(conn: &zbus::Connection) {
    use futures_util::StreamExt;
    // A rule that matches nothing: the stream only ever yields the error of a closed socket.
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface("org.agentos.Internal.Never")
        .map(|b| b.build());
    let Ok(rule) = rule else { return };
    let Ok(mut stream) = zbus::MessageStream::for_match_rule(rule, conn, Some(1)).await else {
        return;
    };
    while let Some(Ok(_)) = stream.next().await {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    async fn pair() -> (BoxedSplit, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (split(ours).unwrap(), theirs)
    }

    #[tokio::test]
    async fn bytes_and_fds_arrive_and_received_fds_are_close_on_exec() {
        let (mut ours, theirs) = pair().await;
        let file = tempfile::tempfile().unwrap();
        send(theirs.as_fd(), b"hello", &[file.as_fd()]).unwrap();
        let mut buf = [0u8; 16];
        let (n, fds) = ours.read_mut().recvmsg(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 1);
        let flags = rustix::io::fcntl_getfd(&fds[0]).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
    }

    #[tokio::test]
    async fn a_peer_that_does_not_read_is_cut_off_after_the_stall_limit() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let limits = Limits {
            write_stall: Some(std::time::Duration::from_millis(200)),
            ..Limits::default()
        };
        let mut ours = split_limited(ours, limits).unwrap();
        let big = vec![7u8; 1 << 16];
        let started = std::time::Instant::now();
        let err = loop {
            match ours.write_mut().sendmsg(&big, &[]).await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // The connection is closed both ways: the peer reads what was sent, then the end.
        let mut rest = Vec::new();
        let mut theirs = theirs;
        theirs.read_to_end(&mut rest).unwrap();
        assert!(!rest.is_empty());
    }

    #[tokio::test]
    async fn a_write_waits_for_room_and_then_completes() {
        let (mut ours, mut theirs) = pair().await;
        let big = vec![7u8; 1 << 20];
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let mut got = vec![0u8; 1 << 20];
            theirs.read_exact(&mut got).unwrap();
            got
        });
        let mut sent = 0;
        while sent < big.len() {
            sent += ours.write_mut().sendmsg(&big[sent..], &[]).await.unwrap();
        }
        assert_eq!(reader.join().unwrap(), big);
    }

    #[tokio::test]
    async fn reading_ahead_hands_out_the_stream_in_order_and_refuses_fds() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut ours = split_without_fds(ours).unwrap();
        assert!(!ours.read().can_pass_unix_fd());
        theirs.write_all(b"0123456789").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4];
        while got.len() < 10 {
            let (n, fds) = ours.read_mut().recvmsg(&mut buf).await.unwrap();
            assert!(fds.is_empty());
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"0123456789");
        // The socket was emptied; more input is still noticed.
        theirs.write_all(b"ab").unwrap();
        let (n, _) = ours.read_mut().recvmsg(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ab");
        let file = tempfile::tempfile().unwrap();
        send(theirs.as_fd(), b"x", &[file.as_fd()]).unwrap();
        let err = ours.read_mut().recvmsg(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn fds_to_the_peer_only_are_sent_and_negotiated_but_refused_from_it() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let limits = Limits {
            fds: Fds::ToPeer,
            ..Limits::default()
        };
        let mut ours = split_limited(ours, limits).unwrap();
        assert!(ours.read().can_pass_unix_fd(), "fd passing is negotiated");
        let file = tempfile::tempfile().unwrap();
        ours.write_mut()
            .sendmsg(b"take", &[file.as_fd()])
            .await
            .unwrap();
        let mut buf = [0u8; 8];
        let mut ancillary_space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut ancillary = RecvAncillaryBuffer::new(&mut ancillary_space);
        let got = recvmsg(
            &theirs,
            &mut [IoSliceMut::new(&mut buf)],
            &mut ancillary,
            RecvFlags::empty(),
        )
        .unwrap();
        assert_eq!(&buf[..got.bytes], b"take");
        assert_eq!(ancillary.drain().count(), 1, "the fd reached the peer");
        send(theirs.as_fd(), b"x", &[file.as_fd()]).unwrap();
        let err = ours.read_mut().recvmsg(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn reading_ahead_notices_a_peer_that_wrote_and_closed_at_once() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut ours = split_without_fds(ours).unwrap();
        theirs.write_all(b"bye").unwrap();
        drop(theirs);
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            let (n, _) = ours.read_mut().recvmsg(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"bye");
            ours.read_mut().recvmsg(&mut buf).await.unwrap_err().kind()
        });
        assert_eq!(read.await.expect("no hang"), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test]
    async fn a_closed_peer_ends_reading_and_credentials_are_the_peers() {
        let (mut ours, mut theirs) = pair().await;
        let creds = ours.read_mut().peer_credentials().await.unwrap();
        assert_eq!(
            creds.unix_user_id(),
            Some(rustix::process::getuid().as_raw())
        );
        assert_eq!(creds.process_id(), Some(std::process::id()));
        theirs.write_all(b"x").unwrap();
        drop(theirs);
        let mut buf = [0u8; 4];
        assert_eq!(ours.read_mut().recvmsg(&mut buf).await.unwrap().0, 1);
        let err = ours.read_mut().recvmsg(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}

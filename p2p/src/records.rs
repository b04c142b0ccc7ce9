//! A socket of records (`SOCK_SEQPACKET`), each sent whole with at most one fd beside it: the
//! kernel's chat pipe, where one record is one model request and its fd the socket its answer
//! streams on. A record is read whole or reported truncated; one side reads and the other only
//! writes, so each end is registered with the runtime for what it does alone.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    sendmsg, socketpair, AddressFamily, ReturnFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags, SocketFlags, SocketType,
};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Fds one read makes room for: one is expected, a second shows the peer broke the protocol
/// (any beyond the room are closed by the kernel and reported as truncated control data).
const ROOM_FOR_FDS: usize = 2;

/// One record as read.
#[derive(Debug)]
pub struct Record {
    /// Its length within the buffer.
    pub len: usize,
    /// It did not fit the buffer (what did is in it, the rest is gone).
    pub truncated: bool,
    /// The fds that came with it.
    pub fds: Vec<OwnedFd>,
}

/// One end of a record socket.
#[derive(Debug)]
pub struct Records {
    fd: AsyncFd<OwnedFd>,
}

impl Records {
    /// A connected pair: this end registered for `interest`, the other end (close-on-exec,
    /// blocking) to pass on.
    pub fn pair(interest: Interest) -> io::Result<(Records, OwnedFd)> {
        let (ours, theirs) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((Records::new(ours, interest)?, theirs))
    }

    /// The end `fd` (a record socket, as from [`pair`](Records::pair)), made non-blocking and
    /// registered for `interest`.
    #[allow(unsafe_code)]
    pub fn new(fd: OwnedFd, interest: Interest) -> io::Result<Records> {
        rustix::io::ioctl_fionbio(&fd, true)?;
        // SAFETY: the AsyncFd owns `fd`, which stays open and the same until it is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, interest) }?;
        Ok(Records { fd })
    }

    /// Send `record` whole, with `fd` beside it; waits while the socket is full.
    pub async fn send(&self, record: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
        loop {
            let mut ready = self.fd.writable().await?;
            match ready.try_io(|inner| send(inner.get_ref().as_fd(), record, fd)) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
    }

    /// Read the next record into `buf`. The peer closing its end is `UnexpectedEof`.
    pub async fn receive(&self, buf: &mut [u8]) -> io::Result<Record> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|inner| receive(inner.get_ref().as_fd(), buf)) {
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(result) => return result,
                Err(_would_block) => {}
            }
        }
    }
}

fn send(fd: BorrowedFd<'_>, record: &[u8], pass: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let iov = [IoSlice::new(record)];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    let passed = pass.map(|fd| [fd]);
    if let Some(fds) = &passed {
        if !ancillary.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::other("no room for the fd beside the record"));
        }
    }
    let sent = sendmsg(fd, &iov, &mut ancillary, SendFlags::NOSIGNAL)?;
    if sent != record.len() {
        // A record socket sends all of a record or none of it.
        return Err(io::Error::other("the record was not sent whole"));
    }
    Ok(())
}

fn receive(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Record> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(ROOM_FOR_FDS))];
    let (msg, fds) = crate::receive_into(fd, buf, &mut space)?;
    if fds.len() > 1 || msg.flags.contains(ReturnFlags::CTRUNC) {
        // (Dropping them closes those that came.)
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the peer sent more than one file descriptor with a record",
        ));
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the peer closed the socket",
        ));
    }
    Ok(Record {
        len: msg.bytes,
        truncated: msg.flags.contains(ReturnFlags::TRUNC),
        fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[tokio::test]
    async fn records_arrive_whole_with_their_fd_and_a_long_one_says_so() {
        let (reader, theirs) = Records::pair(Interest::READABLE).unwrap();
        let writer = Records::new(theirs, Interest::WRITABLE).unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        writer.send(b"first", Some(a.as_fd())).await.unwrap();
        writer.send(b"second, longer", None).await.unwrap();
        writer.send(&[7u8; 100], None).await.unwrap();
        let mut buf = [0u8; 32];
        let r = reader.receive(&mut buf).await.unwrap();
        assert_eq!(
            (&buf[..r.len], r.truncated, r.fds.len()),
            (&b"first"[..], false, 1)
        );
        assert_ne!(
            r.fds[0].as_raw_fd(),
            a.as_raw_fd(),
            "a new fd for the same socket"
        );
        let r = reader.receive(&mut buf).await.unwrap();
        assert_eq!(&buf[..r.len], b"second, longer");
        assert!(r.fds.is_empty());
        let r = reader.receive(&mut buf).await.unwrap();
        assert!(r.truncated, "a record longer than the buffer is reported");
        drop(writer);
        let e = reader.receive(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn too_many_fds_with_one_record_are_refused_and_closed() {
        let (reader, theirs) = Records::pair(Interest::READABLE).unwrap();
        let socks: Vec<_> = (0..4)
            .map(|_| std::os::unix::net::UnixStream::pair().unwrap().0)
            .collect();
        let fds: Vec<BorrowedFd<'_>> = socks.iter().map(|s| s.as_fd()).collect();
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut ancillary = SendAncillaryBuffer::new(&mut space);
        assert!(ancillary.push(SendAncillaryMessage::ScmRights(&fds)));
        sendmsg(
            &theirs,
            &[IoSlice::new(b"x")],
            &mut ancillary,
            SendFlags::empty(),
        )
        .unwrap();
        let mut buf = [0u8; 8];
        let e = reader.receive(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}

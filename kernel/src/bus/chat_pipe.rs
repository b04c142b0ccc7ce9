//! The chat pipe (`Channel1.OpenChatPipe`): a channel's caller sends its model requests as
//! records of a `SOCK_SEQPACKET` socket, each with the socket its answer streams on, and the
//! kernel reads them without the D-Bus protocol in between (see `chat_pipe` in the contract).
//!
//! Bounds, as on a private connection: at most [`IN_FLIGHT`] requests of one pipe are being
//! taken at a time (checked, routed, submitted), and while that many are, the pipe is not read.
//! A request that is taken holds its answer's socket until its run ends; how many a caller may
//! have queued or running is the scheduler's to bound. A record over
//! [`MAX_PIPE_REQUEST`] is refused on its socket; a record without exactly one fd, or with an
//! fd that is not a Unix stream socket, breaks the protocol and ends the pipe.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Weak};

use agentos_dbus_interfaces::chat_pipe::MAX_PIPE_REQUEST;
use agentos_dbus_interfaces::Error;
use agentos_p2p::records::{Record, Records};
use rustix::net::{AddressFamily, SocketType};
use tokio::io::Interest;
use tokio::net::UnixStream;

use super::dispatch::IN_FLIGHT;
use crate::caller::Caller;
use crate::kernel::Kernel;
use crate::operations::calls::ChannelSlot;

/// Serve a new pipe for `caller` (its slot counted among the caller's channels); returns the
/// caller's end.
pub(crate) fn open(
    kernel: Weak<Kernel>,
    caller: Caller,
    slot: ChannelSlot,
) -> Result<OwnedFd, Error> {
    let (ours, theirs) = Records::pair(Interest::READABLE)
        .map_err(|e| Error::Failed(format!("cannot open a chat pipe: {e}")))?;
    tokio::spawn(async move {
        if let Err(why) = serve(&ours, &kernel, &caller).await {
            tracing::debug!(principal = caller.principal(), %why, "a chat pipe ended");
        }
        drop(slot);
    });
    Ok(theirs)
}

/// Take the pipe's requests until its caller closes it or breaks the protocol.
async fn serve(pipe: &Records, kernel: &Weak<Kernel>, caller: &Caller) -> Result<(), String> {
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut buf = vec![0u8; MAX_PIPE_REQUEST];
    loop {
        // While that many are being taken, the next request is not even read.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return Ok(());
        };
        let record = match pipe.receive(&mut buf).await {
            Ok(record) => record,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let json = request(&buf, &record);
        let socket = answer_socket(record)?;
        let Some(kernel) = kernel.upgrade() else {
            return Ok(());
        };
        let caller = caller.clone();
        crate::sync::begin_here(async move {
            kernel.chat_on(&caller, json, socket).await;
            drop(slot);
        })
        .await;
        // Let the request just taken go out to its provider (its connection's task writes it)
        // before the next is read: otherwise a burst is read whole first, and its first
        // request leaves only after its last was taken.
        tokio::task::yield_now().await;
    }
}

/// The request a record holds, or why it is refused.
fn request(buf: &[u8], record: &Record) -> Result<String, Error> {
    if record.truncated {
        return Err(Error::InvalidArgument(format!(
            "a request on the chat pipe is at most {MAX_PIPE_REQUEST} bytes; send a larger \
             one with Chat"
        )));
    }
    match std::str::from_utf8(&buf[..record.len]) {
        Ok(json) => Ok(json.to_owned()),
        Err(_) => Err(Error::InvalidArgument(
            "a request on the chat pipe is JSON text, and this one is not UTF-8".into(),
        )),
    }
}

/// The one fd of a record, which must be a Unix stream socket, ready for the runtime.
fn answer_socket(record: Record) -> Result<UnixStream, String> {
    let mut fds = record.fds.into_iter();
    let (Some(fd), None) = (fds.next(), fds.next()) else {
        return Err("a request came without the socket for its answer".into());
    };
    let stream_socket = |fd: &OwnedFd| -> rustix::io::Result<bool> {
        Ok(
            rustix::net::sockopt::socket_type(fd.as_fd())? == SocketType::STREAM
                && rustix::net::sockopt::socket_domain(fd.as_fd())? == AddressFamily::UNIX,
        )
    };
    if !stream_socket(&fd).unwrap_or(false) {
        return Err("a request's answer fd is not a Unix stream socket".into());
    }
    let socket = std::os::unix::net::UnixStream::from(fd);
    socket
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(socket))
        .map_err(|e| format!("cannot use a request's answer socket: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(len: usize, truncated: bool, fds: Vec<OwnedFd>) -> Record {
        Record {
            len,
            truncated,
            fds,
        }
    }

    #[test]
    fn a_request_is_utf8_within_the_limit() {
        let buf = b"{\"messages\":[]}\xff";
        assert_eq!(
            request(buf, &record(15, false, vec![])).unwrap(),
            "{\"messages\":[]}"
        );
        assert!(matches!(
            request(buf, &record(16, false, vec![])),
            Err(Error::InvalidArgument(m)) if m.contains("UTF-8")
        ));
        assert!(matches!(
            request(buf, &record(15, true, vec![])),
            Err(Error::InvalidArgument(m)) if m.contains("65536 bytes")
        ));
    }

    #[tokio::test]
    async fn the_answer_must_be_one_unix_stream_socket() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(answer_socket(record(1, false, vec![a.into()])).is_ok());
        assert!(answer_socket(record(1, false, vec![])).is_err());
        let (c, _d) = std::os::unix::net::UnixStream::pair().unwrap();
        let (e, _f) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(answer_socket(record(1, false, vec![c.into(), e.into()])).is_err());
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(answer_socket(record(1, false, vec![file.into()])).is_err());
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(answer_socket(record(1, false, vec![udp.into()])).is_err());
        let (g, _h) = std::os::unix::net::UnixDatagram::pair().unwrap();
        assert!(answer_socket(record(1, false, vec![g.into()])).is_err());
    }
}

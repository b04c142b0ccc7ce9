//! Model requests on the channel's chat pipe (`Channel1.OpenChatPipe`): the request's JSON as one
//! record, beside it one end of a socketpair made here, whose other end the answer is read from.
//! The kernel's first line on it says whether the request was taken (`chat_pipe::Taken`), as a
//! `Chat` reply would. The socketpair a request sends is made ahead, while the one before it
//! waited for its answer: a request's way to the kernel is one system call.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use agentos_dbus_interfaces::Error;
use agentos_p2p::records::Records;

use crate::chat::{ChatError, ChatStream, CHAT_CALL_TIMEOUT};

/// Why a request on the pipe got no answer.
pub(crate) enum PipeError {
    /// It could not be sent (the pipe is closed: the kernel went away): nothing was asked, so it
    /// may be asked again elsewhere.
    NotSent,
    /// It was sent; this is what came of it.
    Answer(ChatError),
}

/// A channel's chat pipe, and the socketpair its next request sends.
#[derive(Debug)]
pub(crate) struct Pipe {
    records: Records,
    spare: Mutex<Option<(UnixStream, UnixStream)>>,
}

impl Pipe {
    pub(crate) fn new(records: Records) -> Pipe {
        Pipe {
            records,
            spare: Mutex::new(None),
        }
    }

    /// The spare socketpair, or a new one when a request before took it.
    fn socketpair(&self) -> std::io::Result<(UnixStream, UnixStream)> {
        match self.spare.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(pair) => Ok(pair),
            None => UnixStream::pair(),
        }
    }

    /// Make the next request's socketpair now, if there is none (a failure here is met again,
    /// and reported, by that request).
    fn make_spare(&self) {
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        if spare.is_none() {
            *spare = UnixStream::pair().ok();
        }
    }
}

/// Send `json` on `pipe`; the request's id and its answer's stream, once the kernel took it.
pub(crate) async fn ask(pipe: &Pipe, json: &str) -> Result<(u64, ChatStream), PipeError> {
    let (ours, theirs) = pipe.socketpair().map_err(|e| PipeError::Answer(e.into()))?;
    if pipe
        .records
        .send(json.as_bytes(), Some(theirs.as_fd()))
        .await
        .is_err()
    {
        return Err(PipeError::NotSent);
    }
    drop(theirs);
    let mut stream = ChatStream::from_fd(OwnedFd::from(ours));
    let taken = tokio::time::timeout(CHAT_CALL_TIMEOUT, stream.taken())
        .await
        .map_err(|_| {
            PipeError::Answer(ChatError::Refused(Error::Timeout(format!(
                "agentosd did not take the chat request within {} s",
                CHAT_CALL_TIMEOUT.as_secs()
            ))))
        })?;
    // Taken or refused, the next request's socketpair is made now: for a taken one, while its
    // answer is awaited (the model's first token is far off yet).
    pipe.make_spare();
    let id = taken.map_err(PipeError::Answer)?;
    Ok((id, stream.with_id(id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentos_dbus_interfaces::chat_pipe::Taken;

    /// The socket's inode: the same socket whatever fd refers to it.
    fn inode(fd: impl AsFd) -> u64 {
        rustix::fs::fstat(fd).unwrap().st_ino
    }

    /// The kernel's end of a pipe: answer each request's first line with `taken`.
    fn kernel_answering(theirs: OwnedFd, taken: Vec<Taken>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let kernel = Records::new(theirs, tokio::io::Interest::READABLE).unwrap();
            let mut buf = vec![0u8; 4096];
            for t in taken {
                let record = kernel.receive(&mut buf).await.unwrap();
                let socket = std::os::unix::net::UnixStream::from(
                    record.fds.into_iter().next().expect("the answer's socket"),
                );
                use std::io::Write;
                (&socket).write_all(t.to_line().as_bytes()).unwrap();
            }
        })
    }

    #[tokio::test]
    async fn a_refused_request_leaves_a_spare_for_the_next() {
        let (ours, theirs) = Records::pair(tokio::io::Interest::WRITABLE).unwrap();
        let pipe = Pipe::new(ours);
        let kernel = kernel_answering(
            theirs,
            vec![Taken::refused(&Error::QuotaExceeded("over budget".into()))],
        );
        let refused = ask(&pipe, "{}").await;
        let refusal = match refused {
            Err(PipeError::Answer(ChatError::Refused(e))) => e,
            Err(_) => panic!("not the kernel's refusal"),
            Ok((id, _)) => panic!("taken as {id}"),
        };
        assert!(
            matches!(&refusal, Error::QuotaExceeded(m) if m == "over budget"),
            "{refusal:?}"
        );
        assert!(
            pipe.spare.lock().unwrap().is_some(),
            "no spare after a refusal"
        );
        kernel.await.unwrap();
    }

    #[tokio::test]
    async fn a_request_takes_the_spare_socketpair_and_the_next_one_is_made_later() {
        let (ours, _theirs) = Records::pair(tokio::io::Interest::WRITABLE).unwrap();
        let pipe = Pipe::new(ours);
        let spare = |pipe: &Pipe| pipe.spare.lock().unwrap().as_ref().map(|(s, _)| inode(s));
        // None yet: the first request makes its own.
        assert_eq!(spare(&pipe), None);
        let first = pipe.socketpair().unwrap();
        pipe.make_spare();
        let made = spare(&pipe).expect("a spare is made");
        // Made once, not again while it waits.
        pipe.make_spare();
        assert_eq!(spare(&pipe), Some(made));
        let second = pipe.socketpair().unwrap();
        assert_eq!(inode(&second.0), made, "the next request takes the spare");
        assert_eq!(spare(&pipe), None);
        // Each pair is connected.
        for (x, y) in [first, second] {
            use std::io::{Read, Write};
            (&x).write_all(b"k").unwrap();
            let mut got = [0u8; 1];
            (&y).read_exact(&mut got).unwrap();
            assert_eq!(&got, b"k");
        }
    }
}

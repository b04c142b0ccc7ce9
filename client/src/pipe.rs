//! Model requests on the channel's chat pipe (`Channel1.OpenChatPipe`): the request's JSON as one
//! record, beside it one end of a socketpair made here, whose other end the answer is read from.
//! The kernel's first line on it says whether the request was taken (`chat_pipe::Taken`), as a
//! `Chat` reply would.

use std::os::fd::{AsFd, OwnedFd};

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

/// Send `json` on `pipe`; the request's id and its answer's stream, once the kernel took it.
pub(crate) async fn ask(pipe: &Records, json: &str) -> Result<(u64, ChatStream), PipeError> {
    let (ours, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| PipeError::Answer(e.into()))?;
    if pipe
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
    let id = taken.map_err(PipeError::Answer)?;
    Ok((id, stream.with_id(id)))
}

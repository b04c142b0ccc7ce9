//! The chat pipe (`Channel1.OpenChatPipe`): chat requests sent as records of a `SOCK_SEQPACKET`
//! socket instead of D-Bus calls, each with the socket its answer streams on beside it, and the
//! first line the kernel writes on that socket ([`Taken`]). Types and limits only: no I/O.
//!
//! The pipe is the path for callers that ask models often: a record costs the caller one
//! `sendmsg` and the kernel one `recvmsg`, where a D-Bus call costs both a message built, parsed,
//! routed and answered. What a request may hold, who may ask and every refusal are as `Chat`'s.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Most bytes of one record (a request's JSON). A record socket sends a record whole or not at
/// all, within the socket's buffer; longer requests go by `Channel1.Chat` or `Models1.Chat`.
pub const MAX_PIPE_REQUEST: usize = 64 * 1024;

/// The first line on a request's answer socket: whether the kernel took the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Taken {
    /// Taken: its events follow; `id` is what `Cancel` takes.
    Accepted { id: u64 },
    /// Not taken: the named error `Chat` would have returned (`org.agentos.Error.…`) and its
    /// message. Nothing follows.
    Refused { error: String, message: String },
}

impl Taken {
    /// The refusal of `e`.
    pub fn refused(e: &Error) -> Taken {
        Taken::Refused {
            error: zbus::DBusError::name(e).to_string(),
            message: e.message(),
        }
    }

    /// The line, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// The request's id, or the error it was refused with.
    pub fn into_result(self) -> Result<u64, Error> {
        match self {
            Taken::Accepted { id } => Ok(id),
            Taken::Refused { error, message } => Err(Error::from_name(&error, message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_comes_back_as_the_same_named_error() {
        for e in [
            Error::AccessDenied("no grant".into()),
            Error::NoModel("add one with agentctl models add".into()),
            Error::QuotaExceeded("over budget".into()),
            Error::InvalidArgument("bad JSON".into()),
            Error::Failed("broken".into()),
        ] {
            let line = Taken::refused(&e).to_line();
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            let back: Taken = serde_json::from_str(&line).unwrap();
            assert_eq!(back.into_result(), Err(e));
        }
        let ok: Taken = serde_json::from_str(r#"{"accepted":{"id":42}}"#).unwrap();
        assert_eq!(ok.into_result(), Ok(42));
        assert!(serde_json::from_str::<Taken>(r#"{"accepted":{"id":1,"x":2}}"#).is_err());
    }
}

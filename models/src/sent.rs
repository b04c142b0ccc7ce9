//! Being told when a request goes on the wire: a request body that says so when the connection
//! takes it, so a broker can answer its own caller after the provider's request has left
//! instead of before.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

/// Told (once) when the request's body has been handed to its connection to be written.
pub type OnSent = oneshot::Sender<()>;

/// A whole body of known length that tells `on_sent` when the connection first asks for it
/// (right before it writes it, in the same turn of the connection's task).
pub(crate) struct TellingBody {
    data: Option<Bytes>,
    on_sent: Option<OnSent>,
}

impl TellingBody {
    pub(crate) fn new(data: Bytes, on_sent: OnSent) -> TellingBody {
        TellingBody {
            data: Some(data),
            on_sent: Some(on_sent),
        }
    }
}

impl Body for TellingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(tell) = self.on_sent.take() {
            let _ = tell.send(());
        }
        Poll::Ready(self.data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

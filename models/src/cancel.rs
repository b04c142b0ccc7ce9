//! A reply that stops when a signal fires (a task canceled, an agent gone): the stream yields
//! `ModelError::Canceled` once and ends, and the request's connection is closed at once.
//! (Dropping a stream cancels it too; this is for a holder that wants to be told.)

use std::future::Future;
use std::pin::Pin;

use futures_util::stream::{self, StreamExt};

use crate::error::ModelError;
use crate::stream::ChatStream;

/// `reply`, ended by `signal` if it fires first.
pub fn until<F>(reply: ChatStream, signal: F) -> ChatStream
where
    F: Future<Output = ()> + Send + 'static,
{
    let signal: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(signal);
    Box::pin(stream::unfold(Some((reply, signal)), |state| async move {
        let (mut reply, mut signal) = state?;
        tokio::select! {
            biased;
            () = &mut signal => {
                drop(reply);
                Some((Err(ModelError::Canceled), None))
            }
            item = reply.next() => {
                let item = item?;
                Some((item, Some((reply, signal))))
            }
        }
    }))
}

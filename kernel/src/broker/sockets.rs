//! The sockets answers stream on, one made ahead: the next request takes a pair that is ready
//! (its end already registered with the runtime), and the next spare is made after the caller
//! has its reply, so making one is not on the way from a caller's question to the provider.

use std::io;
use std::os::unix::net::UnixStream as StdStream;
use std::sync::Mutex;

use tokio::net::UnixStream;

use crate::sync::lock;

/// A request's answer socket: the kernel's end, and the caller's end to pass on.
pub type AnswerSocket = (UnixStream, StdStream);

/// At most one spare pair.
#[derive(Default)]
pub struct Spare(Mutex<Option<AnswerSocket>>);

impl Spare {
    /// The spare pair, or a new one when there is none. Within the kernel's runtime.
    pub fn take(&self) -> io::Result<AnswerSocket> {
        match lock(&self.0).take() {
            Some(pair) => Ok(pair),
            None => make(),
        }
    }

    /// Make the next spare if there is none (it is simply made again at the next `take` if
    /// this fails). Within the kernel's runtime.
    pub fn refill(&self) {
        let mut spare = lock(&self.0);
        if spare.is_none() {
            *spare = make().ok();
        }
    }
}

fn make() -> io::Result<AnswerSocket> {
    let (ours, theirs) = StdStream::pair()?;
    ours.set_nonblocking(true)?;
    Ok((UnixStream::from_std(ours)?, theirs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_taken_pair_is_connected_and_the_spare_is_used_once() {
        let spare = Spare::default();
        spare.refill();
        let (mut ours, theirs) = spare.take().unwrap();
        assert!(lock(&spare.0).is_none(), "the spare was handed out");
        // A second take makes a fresh pair, not the same one again.
        let (mut ours2, theirs2) = spare.take().unwrap();
        for (ours, theirs, line) in [
            (&mut ours, theirs, b"one\n"),
            (&mut ours2, theirs2, b"two\n"),
        ] {
            ours.write_all(line).await.unwrap();
            let mut theirs = UnixStream::from_std({
                theirs.set_nonblocking(true).unwrap();
                theirs
            })
            .unwrap();
            let mut got = [0u8; 4];
            theirs.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, line);
        }
    }
}

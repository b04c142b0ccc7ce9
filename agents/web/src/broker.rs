//! The kernel's model broker as this agent's [`Model`]: `Host1.Chat` for the task, its answer
//! read whole from the socket of events.

use agentos_dbus_interfaces::inference::{ChatEvent, ChatRequest};
use agentos_sdk::{Error, Task};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::model::{Model, ModelError};

/// Longest event line read.
const MAX_LINE: usize = 1024 * 1024;

/// Asks the kernel's broker on behalf of a task.
pub struct Broker<'a>(pub &'a Task);

fn refused(e: Error) -> ModelError {
    match e {
        Error::NoModel(m) => ModelError::NoModel(m),
        Error::Canceled(m) => ModelError::Canceled(m),
        other => ModelError::Failed(other.message()),
    }
}

impl Model for Broker<'_> {
    async fn answer(&self, request: &ChatRequest) -> Result<String, ModelError> {
        let (_, fd) = self
            .0
            .host()
            .chat(self.0.id, &request.to_json())
            .await
            .map_err(refused)?;
        let failed = |e: std::io::Error| ModelError::Failed(format!("reading the answer: {e}"));
        let std = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(fd));
        std.set_nonblocking(true).map_err(failed)?;
        let stream = tokio::net::UnixStream::from_std(std).map_err(failed)?;
        let mut lines = BufReader::new(stream);
        let mut text = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = lines.read_line(&mut line).await.map_err(failed)?;
            if n == 0 {
                return Err(ModelError::Failed("the model's answer ended early".into()));
            }
            if line.len() > MAX_LINE {
                return Err(ModelError::Failed("the model's answer is too long".into()));
            }
            match serde_json::from_str::<ChatEvent>(line.trim_end()) {
                Ok(ChatEvent::Text { text: t }) => text.push_str(&t),
                Ok(ChatEvent::Done { .. }) => return Ok(text),
                Ok(ChatEvent::Error { kind, message }) => {
                    return Err(ModelError::from_kind(&kind, message))
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(ModelError::Failed(format!(
                        "the kernel sent a malformed event: {e}"
                    )))
                }
            }
        }
    }
}

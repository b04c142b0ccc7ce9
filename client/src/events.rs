//! The kernel's task changes as typed events: `TaskChanged` signals of the verified kernel,
//! their state parsed into a [`TaskState`].

use std::pin::Pin;
use std::task::{Context, Poll};

use agentos_dbus_interfaces::proxies::{TaskChanged, TaskChangedStream};
use agentos_dbus_interfaces::text::display_safe;
use agentos_dbus_interfaces::TaskState;
use futures_util::{Stream, StreamExt};

use crate::error::ClientError;

/// One change of a task, as the kernel announced it. Text fields are as the agent wrote them:
/// pass them through [`display_safe`] before showing them.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    pub id: u64,
    /// 0 for a top-level task.
    pub parent: u64,
    pub agent: String,
    pub state: TaskState,
    /// From 0 to 1.
    pub progress: f64,
    pub message: String,
}

impl TaskEvent {
    /// The event a `TaskChanged` signal carries; an error if its body or state is not one the
    /// contract allows.
    pub fn from_signal(signal: &TaskChanged) -> Result<TaskEvent, ClientError> {
        let a = signal
            .args()
            .map_err(|e| ClientError::Malformed(format!("TaskChanged: {e}")))?;
        TaskEvent::from_parts(a.id, a.parent, a.agent, a.state, a.progress, a.message)
    }

    fn from_parts(
        id: u64,
        parent: u64,
        agent: &str,
        state: &str,
        progress: f64,
        message: &str,
    ) -> Result<TaskEvent, ClientError> {
        let state = TaskState::parse(state).ok_or_else(|| {
            ClientError::Malformed(format!(
                "task {id} in an unknown state {:?}",
                display_safe(state, 40)
            ))
        })?;
        Ok(TaskEvent {
            id,
            parent,
            agent: agent.to_string(),
            state,
            progress,
            message: message.to_string(),
        })
    }
}

/// The stream of [`TaskEvent`]s from [`Client::task_events`](crate::Client::task_events): each
/// signal of the kernel verified when the stream was made (signals from any other sender are
/// not delivered), or an error for a malformed one. It stays silent once that kernel is gone.
pub struct TaskEvents {
    inner: Pin<Box<TaskChangedStream>>,
    /// Subscribed: only the signals addressed to this connection count (the broadcast ones
    /// carry no content).
    addressed: bool,
}

impl TaskEvents {
    pub(crate) fn new(stream: TaskChangedStream, addressed: bool) -> Self {
        TaskEvents {
            inner: Box::pin(stream),
            addressed,
        }
    }
}

impl std::fmt::Debug for TaskEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskEvents").finish_non_exhaustive()
    }
}

impl Stream for TaskEvents {
    type Item = Result<TaskEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let signal = match self.inner.poll_next_unpin(cx) {
                Poll::Ready(Some(signal)) => signal,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            if self.addressed && signal.message().header().destination().is_none() {
                continue;
            }
            return Poll::Ready(Some(TaskEvent::from_signal(&signal)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_typed_and_unknown_ones_are_errors() {
        let e = TaskEvent::from_parts(3, 1, "docs", "auth-required", 0.5, "asking").unwrap();
        assert_eq!(e.state, TaskState::AuthRequired);
        assert_eq!((e.id, e.parent, e.agent.as_str()), (3, 1, "docs"));
        let err = TaskEvent::from_parts(3, 1, "docs", "dancing\u{1b}[2J", 0.5, "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "agentosd sent a malformed signal: task 3 in an unknown state \"dancing[2J\""
        );
    }
}

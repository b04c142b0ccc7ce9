//! Handing a goal to an agent from a terminal, as `agentctl run` and `agentctl ask` do: the
//! task stream subscribed first (so no change of the new task is missed), this terminal offered
//! for the task tree's consent prompts where no dialog can be shown, Ctrl-C honoured while the
//! kernel has not replied yet, and what the new task left behind listed at its end.

use std::time::Duration;

use agentos_client::{TaskEvent, TaskEvents};
use agentos_dbus_interfaces::names::task_id_from_path;
use agentos_dbus_interfaces::proxies::Options;
use agentos_dbus_interfaces::ArtifactInfo;
use futures_util::StreamExt;
use tokio::signal::unix::{signal, Signal, SignalKind};
use zbus::zvariant::Value;

use crate::connect::Kernel;
use crate::consent_tty;
use crate::error::{CliError, Result};
use crate::output;

/// How long to wait for the kernel to accept a cancellation after Ctrl-C.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);
/// Exit status after Ctrl-C, as a shell reports SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

/// A task the kernel took, and what to follow it with.
pub struct Delegated {
    pub id: u64,
    /// Its object path.
    pub path: String,
    /// Task changes that came before the kernel's reply (the stream was drained meanwhile, so
    /// a busy kernel could not fill its queue and stall the connection).
    pub early: Vec<TaskEvent>,
    pub changes: TaskEvents,
    /// Whether `changes` still runs.
    pub signals_open: bool,
    /// Ctrl-C (or the terminal closing, or a kill) from here on.
    pub interrupt: Stop,
}

/// What stops a delegation's follower, its task canceled: Ctrl-C (SIGINT), the terminal closing
/// (SIGHUP) and a kill that lets it finish (SIGTERM). Whoever stops `agentctl ask` or `run` stops
/// what it asked for, not only the command.
pub struct Stop {
    signals: [Signal; 3],
}

impl Stop {
    fn new() -> Result<Stop> {
        let listen = |kind: SignalKind, what: &str| {
            signal(kind).map_err(|e| CliError::new(format!("cannot handle {what}: {e}")))
        };
        Ok(Stop {
            signals: [
                listen(SignalKind::interrupt(), "Ctrl-C")?,
                listen(SignalKind::hangup(), "the terminal closing")?,
                listen(SignalKind::terminate(), "SIGTERM")?,
            ],
        })
    }

    /// Returns when one of them comes.
    pub async fn recv(&mut self) {
        let [int, hup, term] = &mut self.signals;
        tokio::select! {
            _ = int.recv() => {}
            _ = hup.recv() => {}
            _ = term.recv() => {}
        }
    }
}

/// What became of a delegation.
pub enum Started {
    Delegated(Delegated),
    /// Ctrl-C: the exit status to end with (the task canceled if it was made).
    Interrupted(u8),
}

/// What a delegation may say of its task: a time limit in seconds, and the model its requests
/// use (`--timeout`, `--model`).
pub type Limits<'a> = (Option<u32>, Option<&'a str>);

/// Delegate `goal` to `agent` (with its `limits`); a refusal is told with `refused`.
pub async fn delegate(
    kernel: &Kernel,
    agent: &str,
    goal: &str,
    (timeout, model): Limits<'_>,
    refused: impl Fn(agentos_dbus_interfaces::Error) -> CliError,
) -> Result<Started> {
    let mut interrupt = Stop::new()?;
    let mut changes = kernel.client.task_events().await?;
    let mut options = Options::new();
    if let Some(secs) = timeout {
        options.insert("timeout", Value::U32(secs));
    }
    if let Some(model) = model {
        options.insert("model", Value::from(model));
    }
    if consent_tty::available() {
        let owner = kernel.client.owner().await?;
        consent_tty::serve(kernel.client.connection(), owner).await?;
        options.insert("answer-consent", Value::Bool(true));
    }
    let delegate = kernel.proxy.delegate(agent, goal, options);
    tokio::pin!(delegate);
    let mut interrupted = false;
    let mut signals_open = true;
    let mut early = Vec::new();
    let path = loop {
        tokio::select! {
            reply = &mut delegate => break reply.map_err(&refused)?,
            change = changes.next(), if signals_open => match change {
                Some(change) => early.extend(change.ok()),
                None => signals_open = false,
            },
            _ = interrupt.recv() => {
                if interrupted {
                    output::warn("agentctl: interrupted before agentosd replied; the task may run");
                    return Ok(Started::Interrupted(EXIT_INTERRUPTED));
                }
                interrupted = true;
            }
        }
    };
    let id = task_id_from_path(path.as_str()).ok_or_else(|| {
        CliError::new(format!("agentosd returned an unexpected task path {path}"))
    })?;
    if interrupted {
        return Ok(Started::Interrupted(cancel(kernel, id).await));
    }
    Ok(Started::Delegated(Delegated {
        id,
        path: path.to_string(),
        early,
        changes,
        signals_open,
        interrupt,
    }))
}

/// What the task's follower wrote, passed on; when it could not write (its terminal closed,
/// say), the task is canceled as if it were interrupted, and the error is returned to be told
/// (if it can be).
pub async fn shown<T>(kernel: &Kernel, id: u64, written: Result<T>) -> Result<T> {
    if written.is_err() {
        let _ = tokio::time::timeout(CANCEL_TIMEOUT, kernel.proxy.cancel_task(id)).await;
    }
    written
}

/// Ctrl-C: cancel the task (and so its sub-tasks and their model requests) and report; the
/// exit status to end with.
pub async fn cancel(kernel: &Kernel, id: u64) -> u8 {
    match tokio::time::timeout(CANCEL_TIMEOUT, kernel.proxy.cancel_task(id)).await {
        Ok(Ok(())) => output::warn(&format!("agentctl: interrupted; canceled task {id}")),
        Ok(Err(e)) => output::warn(&format!(
            "agentctl: interrupted; could not cancel task {id}: {}",
            CliError::from(e)
        )),
        Err(_) => output::warn(&format!(
            "agentctl: interrupted; agentosd did not confirm canceling task {id}"
        )),
    }
    EXIT_INTERRUPTED
}

/// The artifacts of task `id` at `path`; none, with a warning, when they cannot be listed.
pub async fn artifacts(kernel: &Kernel, id: u64, path: &str) -> Result<Vec<ArtifactInfo>> {
    Ok(match kernel.task(path).await?.artifacts().await {
        Ok(list) => list
            .into_iter()
            .map(|(name, sha256, size)| ArtifactInfo { name, sha256, size })
            .collect(),
        Err(e) => {
            output::warn(&format!(
                "agentctl: cannot list the artifacts of task {id}: {}",
                CliError::from(e)
            ));
            Vec::new()
        }
    })
}

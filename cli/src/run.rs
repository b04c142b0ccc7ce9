//! `agentctl run`: delegate a goal to an agent and follow the task tree live until it ends.

use std::time::Duration;

use agentos_dbus_interfaces::names::task_id_from_path;
use agentos_dbus_interfaces::proxies::Options;
use agentos_dbus_interfaces::{ArtifactInfo, TaskInfo, TaskState};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::signal::unix::{signal, SignalKind};
use zbus::zvariant::Value;

use crate::connect::Kernel;
use crate::consent_tty;
use crate::error::{CliError, Result};
use crate::follow::{Change, Follower};
use crate::output::{self, Table};

/// How often the root task is polled, in case a signal was missed.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How long to wait for the kernel to accept a cancellation after Ctrl-C.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);
/// Exit status after Ctrl-C, as a shell reports SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

pub async fn run(
    kernel: &Kernel,
    agent: &str,
    goal: &str,
    timeout: Option<u32>,
    json: bool,
) -> Result<u8> {
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| CliError::new(format!("cannot handle Ctrl-C: {e}")))?;
    // Subscribe before delegating, so no change of the new task can be missed.
    // The kernel's `TaskChanged` signals, from the verified kernel only; a malformed one is
    // skipped (the task is polled as well).
    let mut changes = kernel.client.task_events().await?;

    let mut options = Options::new();
    if let Some(secs) = timeout {
        options.insert("timeout", Value::U32(secs));
    }
    // On a terminal, answer this task's consent prompts here when no graphical provider runs.
    if consent_tty::available() {
        let owner = kernel.client.owner().await?;
        consent_tty::serve(kernel.client.connection(), owner).await?;
        options.insert("answer-consent", Value::Bool(true));
    }
    let delegate = kernel.proxy.delegate(agent, goal, options);
    tokio::pin!(delegate);
    let mut interrupted = false;
    let mut signals_open = true;
    // Changes that arrive before the reply are kept (and the stream drained, so a busy kernel
    // cannot fill its queue and stall the connection) until the new task's id is known.
    let mut early = Vec::new();
    let path = loop {
        tokio::select! {
            reply = &mut delegate => break reply?,
            change = changes.next(), if signals_open => match change {
                Some(change) => early.extend(change.ok().map(Change::from_event)),
                None => signals_open = false,
            },
            _ = interrupt.recv() => {
                if interrupted {
                    output::warn("agentctl: interrupted before agentosd replied; the task may run");
                    return Ok(EXIT_INTERRUPTED);
                }
                interrupted = true;
            }
        }
    };
    let id = task_id_from_path(path.as_str()).ok_or_else(|| {
        CliError::new(format!("agentosd returned an unexpected task path {path}"))
    })?;
    if interrupted {
        return cancel(kernel, id).await;
    }

    let mut follower = Follower::new(id, json);
    follower.say(&format!("task {id} delegated to {}", output::clean(agent)))?;
    for change in &early {
        follower.update(change)?;
    }
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while follower.root_state.is_none_or(|s| !s.is_terminal()) {
        tokio::select! {
            change = changes.next(), if signals_open => match change {
                Some(Ok(change)) => follower.update(&Change::from_event(change))?,
                Some(Err(_)) => {}
                None => signals_open = false,
            },
            _ = poll.tick() => {
                let task = kernel.proxy.get_task(id).await?;
                follower.update(&Change::from_task(task))?;
            }
            _ = interrupt.recv() => return cancel(kernel, id).await,
        }
    }
    finish(kernel, id, path.as_str(), follower.root_state, json).await
}

/// Ctrl-C: cancel the task (and so its subtree) and report.
async fn cancel(kernel: &Kernel, id: u64) -> Result<u8> {
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
    Ok(EXIT_INTERRUPTED)
}

#[derive(Serialize)]
struct Outcome<'a> {
    task: &'a TaskInfo,
    artifacts: &'a [ArtifactInfo],
}

/// Print the result and artifacts of the finished task; exit 0 only if it completed.
async fn finish(
    kernel: &Kernel,
    id: u64,
    path: &str,
    seen: Option<TaskState>,
    json: bool,
) -> Result<u8> {
    let task = kernel.proxy.get_task(id).await?;
    let state = TaskState::parse(&task.state)
        .filter(|s| s.is_terminal())
        .or(seen)
        .unwrap_or(TaskState::Failed);
    let artifacts: Vec<ArtifactInfo> = match kernel.task(path).await?.artifacts().await {
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
    };
    if json {
        output::json(&Outcome {
            task: &task,
            artifacts: &artifacts,
        })?;
    } else {
        let mut text = String::new();
        if !task.result.is_empty() {
            let result = output::clean_block(&task.result);
            text.push_str(result.trim_end());
            text.push('\n');
        }
        if !artifacts.is_empty() {
            let mut table = Table::new(&["ARTIFACT", "SIZE"]);
            for a in &artifacts {
                table.row(vec![a.name.clone(), format!("{} bytes", a.size)]);
            }
            text.push_str(&table.render());
        }
        output::emit(&text)?;
    }
    if state == TaskState::Completed {
        return Ok(0);
    }
    let why = output::clean(&task.message);
    if why.is_empty() {
        output::warn(&format!("agentctl: task {id} {state}"));
    } else {
        output::warn(&format!("agentctl: task {id} {state}: {why}"));
    }
    Ok(1)
}

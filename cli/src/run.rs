//! `agentctl run`: delegate a goal to an agent and follow the task tree live until it ends.

use std::time::Duration;

use agentos_dbus_interfaces::{ArtifactInfo, TaskInfo, TaskState};
use futures_util::StreamExt;
use serde::Serialize;

use crate::connect::Kernel;
use crate::delegate::{self, Delegated, Limits, Started};
use crate::error::{CliError, Result};
use crate::follow::{Change, Follower};
use crate::output::{self, Table};

/// How often the root task is polled, in case a signal was missed.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

pub async fn run(
    kernel: &Kernel,
    agent: &str,
    goal: &str,
    limits: Limits<'_>,
    json: bool,
) -> Result<u8> {
    let started = delegate::delegate(kernel, agent, goal, limits, CliError::from).await?;
    let mut delegated: Delegated = match started {
        Started::Delegated(d) => d,
        Started::Interrupted(status) => return Ok(status),
    };
    let id = delegated.id;
    let mut follower = Follower::new(id, json);
    let said = follower.say(&format!("task {id} delegated to {}", output::clean(agent)));
    delegate::shown(kernel, id, said).await?;
    for event in delegated.early.drain(..) {
        delegate::shown(kernel, id, follower.update(&Change::from_event(event))).await?;
    }
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while follower.root_state.is_none_or(|s| !s.is_terminal()) {
        tokio::select! {
            change = delegated.changes.next(), if delegated.signals_open => match change {
                Some(Ok(change)) => {
                    delegate::shown(kernel, id, follower.update(&Change::from_event(change))).await?;
                }
                Some(Err(_)) => {}
                None => delegated.signals_open = false,
            },
            _ = poll.tick() => {
                let task = kernel.proxy.get_task(id).await?;
                delegate::shown(kernel, id, follower.update(&Change::from_task(task))).await?;
            }
            _ = delegated.interrupt.recv() => return Ok(delegate::cancel(kernel, id).await),
        }
    }
    finish(kernel, id, &delegated.path, follower.root_state, json).await
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
    let artifacts = delegate::artifacts(kernel, id, path).await?;
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

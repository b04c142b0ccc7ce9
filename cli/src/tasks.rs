//! `agentctl tasks` (recent tasks as a tree) and `agentctl cancel`.

use std::collections::{HashMap, HashSet};

use agentos_dbus_interfaces::TaskInfo;

use crate::connect::Kernel;
use crate::error::Result;
use crate::output::{self, Table};

/// Longest goal shown in the table.
const GOAL_WIDTH: usize = 60;

pub async fn list(kernel: &Kernel, limit: u32, json: bool) -> Result<u8> {
    let tasks = kernel.proxy.list_tasks(limit).await?;
    if json {
        output::json(&tasks)?;
        return Ok(0);
    }
    if tasks.is_empty() {
        output::emit("no tasks\n")?;
        return Ok(0);
    }
    let mut table = Table::new(&["ID", "STATE", "PROGRESS", "AGENT", "GOAL", "MESSAGE"]);
    for (depth, task) in tree_order(&tasks) {
        table.row(vec![
            format!("{}{}", "  ".repeat(depth), task.id),
            task.state.clone(),
            output::percent(task.progress),
            task.agent.clone(),
            output::truncate(&task.goal, GOAL_WIDTH),
            task.message.clone(),
        ]);
    }
    output::emit(&table.render())?;
    Ok(0)
}

/// The tasks with their depth, each parent followed by its children (oldest child first). Tasks
/// whose parent is not in the list are roots, kept in the kernel's order (newest first).
fn tree_order(tasks: &[TaskInfo]) -> Vec<(usize, &TaskInfo)> {
    let present: HashSet<u64> = tasks.iter().map(|t| t.id).collect();
    let mut children: HashMap<u64, Vec<&TaskInfo>> = HashMap::new();
    let mut roots = Vec::new();
    for task in tasks {
        if task.parent != 0 && task.parent != task.id && present.contains(&task.parent) {
            children.entry(task.parent).or_default().push(task);
        } else {
            roots.push(task);
        }
    }
    for list in children.values_mut() {
        list.sort_by_key(|t| t.id);
    }
    let mut out = Vec::with_capacity(tasks.len());
    let mut seen = HashSet::new();
    let mut stack: Vec<(usize, &TaskInfo)> = roots.into_iter().rev().map(|t| (0, t)).collect();
    while let Some((depth, task)) = stack.pop() {
        if !seen.insert(task.id) {
            continue;
        }
        out.push((depth, task));
        if let Some(kids) = children.get(&task.id) {
            stack.extend(kids.iter().rev().map(|k| (depth + 1, *k)));
        }
    }
    // A parent cycle (which the kernel never produces) would leave tasks unreached; show them.
    for task in tasks {
        if !seen.contains(&task.id) {
            seen.insert(task.id);
            out.push((0, task));
        }
    }
    out
}

/// Cancel task `id` and what hangs below it; a task that had already finished is left as it
/// was, and said to be.
pub async fn cancel(kernel: &Kernel, id: u64) -> Result<u8> {
    kernel.proxy.cancel_task(id).await?;
    let task = kernel.proxy.get_task(id).await?;
    output::emit(&cancel_outcome(id, task.state.as_str()))?;
    Ok(0)
}

/// What `cancel` says of a task found in `state` after it asked: one that had finished some
/// other way stays as it was.
fn cancel_outcome(id: u64, state: &str) -> String {
    match agentos_dbus_interfaces::TaskState::parse(state) {
        Some(s) if s.is_terminal() && s != agentos_dbus_interfaces::TaskState::Canceled => {
            format!("task {id} had already finished ({state}): nothing to cancel\n")
        }
        _ => format!("canceled task {id}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_says_when_a_task_had_already_finished() {
        assert_eq!(cancel_outcome(7, "canceled"), "canceled task 7\n");
        assert_eq!(cancel_outcome(7, "working"), "canceled task 7\n");
        assert_eq!(
            cancel_outcome(7, "completed"),
            "task 7 had already finished (completed): nothing to cancel\n"
        );
        assert_eq!(
            cancel_outcome(7, "failed"),
            "task 7 had already finished (failed): nothing to cancel\n"
        );
    }

    fn task(id: u64, parent: u64) -> TaskInfo {
        TaskInfo {
            id,
            parent,
            agent: "a".into(),
            caller: "host".into(),
            goal: "g".into(),
            state: "working".into(),
            progress: 0.0,
            message: String::new(),
            result: String::new(),
            created: 0,
            updated: 0,
        }
    }

    #[test]
    fn children_follow_parents() {
        let tasks = vec![task(5, 3), task(4, 0), task(3, 1), task(2, 1), task(1, 0)];
        let order: Vec<(usize, u64)> = tree_order(&tasks)
            .into_iter()
            .map(|(d, t)| (d, t.id))
            .collect();
        assert_eq!(order, vec![(0, 4), (0, 1), (1, 2), (1, 3), (2, 5)]);
    }

    #[test]
    fn orphans_and_cycles_are_shown() {
        let tasks = vec![task(7, 6), task(8, 9), task(9, 8)];
        assert_eq!(tree_order(&tasks).len(), 3);
    }
}

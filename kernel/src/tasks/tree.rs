//! The task tree: states, parents and children, deadlines. Plain Rust; the kernel persists and
//! publishes what changes here.

use std::collections::BTreeMap;

use agentos_data::NewTask;
use agentos_dbus_interfaces::{TaskInfo, TaskState};

/// One task as the kernel tracks it while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: u64,
    /// 0 for a top-level task.
    pub parent: u64,
    pub agent: String,
    /// Who delegated it: "host", a Flatpak app id, or the delegating agent's id.
    pub caller: String,
    /// The agents above this task, nearest first (empty when the user or an app delegated it).
    pub delegators: Vec<String>,
    pub goal: String,
    pub state: TaskState,
    pub progress: f64,
    pub message: String,
    pub result: String,
    pub created: u64,
    pub updated: u64,
    /// When the task fails for taking too long.
    pub deadline: u64,
    pub children: Vec<u64>,
}

impl Task {
    pub fn info(&self) -> TaskInfo {
        TaskInfo {
            id: self.id,
            parent: self.parent,
            agent: self.agent.clone(),
            caller: self.caller.clone(),
            goal: self.goal.clone(),
            state: self.state.as_str().to_string(),
            progress: self.progress,
            message: self.message.clone(),
            result: self.result.clone(),
            created: self.created,
            updated: self.updated,
        }
    }

    /// The task the store recorded as `id`, below the agents in `delegators` (nearest first).
    pub fn from_new(id: u64, new: NewTask, delegators: Vec<String>) -> Task {
        Task {
            id,
            parent: new.parent,
            agent: new.agent,
            caller: new.caller,
            delegators,
            goal: new.goal,
            state: new.state,
            progress: 0.0,
            message: String::new(),
            result: String::new(),
            created: new.created,
            updated: new.created,
            deadline: new.deadline,
            children: Vec::new(),
        }
    }

    /// A task that is working, as the kernel's tests build them (delegated by the user when
    /// `delegators` is empty, else by the first of them).
    #[cfg(test)]
    pub fn working(
        id: u64,
        parent: u64,
        agent: &str,
        delegators: Vec<String>,
        now: u64,
        deadline: u64,
    ) -> Task {
        let new = NewTask {
            parent,
            agent: agent.into(),
            caller: delegators.first().cloned().unwrap_or_else(|| "host".into()),
            goal: "g".into(),
            state: TaskState::Working,
            created: now,
            deadline,
        };
        Task::from_new(id, new, delegators)
    }

    /// The principals whose rights bound this task's agent: the agent, then its delegators.
    pub fn chain(&self) -> Vec<String> {
        std::iter::once(self.agent.clone())
            .chain(self.delegators.iter().cloned())
            .collect()
    }
}

/// Why a task operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("no task {0}")]
    Unknown(u64),
    #[error("task {id} has already finished ({state})")]
    Finished { id: u64, state: TaskState },
}

/// The tasks of this kernel run.
#[derive(Debug, Default)]
pub struct TaskTable {
    tasks: BTreeMap<u64, Task>,
}

impl TaskTable {
    pub fn insert(&mut self, task: Task) {
        if let Some(parent) = self.tasks.get_mut(&task.parent) {
            parent.children.push(task.id);
        }
        self.tasks.insert(task.id, task);
    }

    pub fn get(&self, id: u64) -> Option<&Task> {
        self.tasks.get(&id)
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// A task that may still change; finished tasks never do.
    fn unfinished_mut(&mut self, id: u64) -> Result<&mut Task, TaskError> {
        let task = self.tasks.get_mut(&id).ok_or(TaskError::Unknown(id))?;
        if task.state.is_terminal() {
            return Err(TaskError::Finished {
                id,
                state: task.state,
            });
        }
        Ok(task)
    }

    /// Move a task to a new state (with progress and message); a finished task never changes.
    pub fn set_state(
        &mut self,
        id: u64,
        state: TaskState,
        message: Option<&str>,
        now: u64,
    ) -> Result<&Task, TaskError> {
        let task = self.unfinished_mut(id)?;
        task.state = state;
        if let Some(m) = message {
            task.message = m.to_string();
        }
        if state == TaskState::Completed {
            task.progress = 1.0;
        }
        task.updated = now;
        Ok(task)
    }

    /// Record progress of a running task. Fractions are clamped to 0..=1 and never go back.
    pub fn set_progress(
        &mut self,
        id: u64,
        fraction: f64,
        message: &str,
        now: u64,
    ) -> Result<&Task, TaskError> {
        let task = self.unfinished_mut(id)?;
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            task.progress
        };
        task.progress = task.progress.max(fraction);
        task.message = message.to_string();
        task.updated = now;
        Ok(task)
    }

    /// Finish a task as completed with a result.
    pub fn complete(&mut self, id: u64, result: &str, now: u64) -> Result<&Task, TaskError> {
        self.set_state(id, TaskState::Completed, Some(""), now)?;
        let task = self.tasks.get_mut(&id).ok_or(TaskError::Unknown(id))?;
        task.result = result.to_string();
        Ok(task)
    }

    /// The task and everything below it, parents before children.
    pub fn subtree(&self, id: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut stack = vec![id];
        while let Some(next) = stack.pop() {
            if let Some(task) = self.tasks.get(&next) {
                out.push(next);
                stack.extend(task.children.iter().rev().copied());
            }
        }
        out
    }

    /// Unfinished tasks assigned to an agent.
    pub fn unfinished_of(&self, agent: &str) -> Vec<u64> {
        self.tasks
            .values()
            .filter(|t| t.agent == agent && !t.state.is_terminal())
            .map(|t| t.id)
            .collect()
    }

    /// Unfinished tasks `caller` handed to `agent`.
    pub fn unfinished_from(&self, caller: &str, agent: &str) -> Vec<u64> {
        self.tasks
            .values()
            .filter(|t| t.caller == caller && t.agent == agent)
            .filter(|t| !t.state.is_terminal())
            .map(|t| t.id)
            .collect()
    }

    /// Every unfinished task.
    pub fn unfinished(&self) -> Vec<u64> {
        self.tasks
            .values()
            .filter(|t| !t.state.is_terminal())
            .map(|t| t.id)
            .collect()
    }

    /// Is `id` in the subtree of `ancestor` (or `ancestor` itself)?
    pub fn is_within(&self, id: u64, ancestor: u64) -> bool {
        let mut cur = id;
        for _ in 0..=self.tasks.len() {
            if cur == ancestor {
                return true;
            }
            match self.tasks.get(&cur) {
                Some(t) if t.parent != 0 => cur = t.parent,
                _ => return false,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64, parent: u64, agent: &str) -> Task {
        Task {
            id,
            parent,
            agent: agent.into(),
            caller: "host".into(),
            delegators: vec![],
            goal: "g".into(),
            state: TaskState::Submitted,
            progress: 0.0,
            message: String::new(),
            result: String::new(),
            created: 0,
            updated: 0,
            deadline: 100,
            children: vec![],
        }
    }

    #[test]
    fn trees_and_subtrees() {
        let mut t = TaskTable::default();
        t.insert(task(1, 0, "a"));
        t.insert(task(2, 1, "b"));
        t.insert(task(3, 2, "c"));
        t.insert(task(4, 1, "c"));
        assert_eq!(t.subtree(1), vec![1, 2, 3, 4]);
        assert_eq!(t.subtree(2), vec![2, 3]);
        assert!(t.is_within(3, 1));
        assert!(!t.is_within(4, 2));
        assert_eq!(t.unfinished_of("c"), vec![3, 4]);
    }

    #[test]
    fn finished_tasks_never_change() {
        let mut t = TaskTable::default();
        t.insert(task(1, 0, "a"));
        t.set_state(1, TaskState::Working, None, 1).unwrap();
        t.complete(1, "done", 2).unwrap();
        assert_eq!(t.get(1).unwrap().progress, 1.0);
        assert!(matches!(
            t.set_state(1, TaskState::Failed, None, 3),
            Err(TaskError::Finished { .. })
        ));
        assert!(t.set_progress(1, 0.5, "x", 3).is_err());
        assert_eq!(t.get(1).unwrap().result, "done");
    }

    #[test]
    fn progress_is_clamped_and_monotonic() {
        let mut t = TaskTable::default();
        t.insert(task(1, 0, "a"));
        t.set_progress(1, 0.5, "half", 1).unwrap();
        t.set_progress(1, 0.2, "back?", 2).unwrap();
        assert_eq!(t.get(1).unwrap().progress, 0.5);
        t.set_progress(1, f64::NAN, "nan", 3).unwrap();
        assert_eq!(t.get(1).unwrap().progress, 0.5);
        t.set_progress(1, 7.0, "over", 4).unwrap();
        assert_eq!(t.get(1).unwrap().progress, 1.0);
    }
}

//! The task tree as the kernel owns it: the tasks of this run, a watch per task for whoever
//! waits for it to finish, and the deadlines of unfinished tasks in order, with a wakeup when
//! an earlier one arrives.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use agentos_dbus_interfaces::{Error, TaskInfo, TaskState};
use tokio::sync::{watch, Notify};

use super::tree::{Task, TaskError, TaskTable};

#[derive(Default)]
struct Board {
    table: TaskTable,
    watchers: HashMap<u64, watch::Sender<TaskState>>,
    /// (deadline, id) of every unfinished task.
    deadlines: BTreeSet<(u64, u64)>,
    /// The model a tree's requests use when they name none, by the tree's root task (the
    /// `model` option of its delegation); kept for the run, like the tasks (a root that ended
    /// may have sub-tasks still asking).
    models: HashMap<u64, String>,
}

impl Board {
    /// The root of the tree `id` belongs to.
    fn root(&self, id: u64) -> Option<&Task> {
        let mut cur = self.table.get(id)?;
        for _ in 0..=self.table.len() {
            match self.table.get(cur.parent) {
                Some(p) if cur.parent != 0 => cur = p,
                _ => break,
            }
        }
        Some(cur)
    }
}

/// What a check needs of the task an agent acts for.
#[derive(Debug, Clone)]
pub struct Acting {
    /// The agent, then its delegators, nearest first.
    pub chain: Vec<String>,
    pub goal: String,
}

/// The tasks of this kernel run.
#[derive(Default)]
pub struct TaskBoard {
    board: Mutex<Board>,
    earlier_deadline: Arc<Notify>,
}

impl TaskBoard {
    fn lock(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a task (new, or of a test).
    pub fn insert(&self, task: Task) {
        let mut b = self.lock();
        let earliest = b.deadlines.first().map(|(d, _)| *d);
        if !task.state.is_terminal() {
            b.deadlines.insert((task.deadline, task.id));
        }
        b.watchers.insert(task.id, watch::channel(task.state).0);
        let deadline = task.deadline;
        b.table.insert(task);
        drop(b);
        if earliest.is_none_or(|e| deadline < e) {
            self.earlier_deadline.notify_one();
        }
    }

    /// Apply a change to one task; wakes its waiters. Returns the task as it is now.
    pub fn apply(
        &self,
        id: u64,
        now: u64,
        f: impl FnOnce(&mut TaskTable, u64) -> Result<&Task, TaskError>,
    ) -> Result<Task, TaskError> {
        let mut b = self.lock();
        let task = f(&mut b.table, now)?.clone();
        let mut last = false;
        if task.state.is_terminal() {
            last = b.deadlines.remove(&(task.deadline, task.id)) && b.deadlines.is_empty();
        }
        if let Some(w) = b.watchers.get(&id) {
            w.send_if_modified(|s| std::mem::replace(s, task.state) != task.state);
        }
        drop(b);
        if last {
            // The last unfinished task ended: the watcher has no deadline left to wait for.
            self.earlier_deadline.notify_one();
        }
        Ok(task)
    }

    pub fn get(&self, id: u64) -> Option<Task> {
        self.lock().table.get(id).cloned()
    }

    pub fn info(&self, id: u64) -> Option<TaskInfo> {
        self.lock().table.get(id).map(Task::info)
    }

    /// Replace entries read from the store by the fresher state of this run's tasks.
    pub fn overlay(&self, tasks: &mut [TaskInfo]) {
        let b = self.lock();
        for t in tasks {
            if let Some(live) = b.table.get(t.id) {
                *t = live.info();
            }
        }
    }

    pub fn agent_of(&self, id: u64) -> Option<String> {
        self.lock().table.get(id).map(|t| t.agent.clone())
    }

    /// The principals whose rights bound a new task delegated from `id`.
    pub fn chain(&self, id: u64) -> Option<Vec<String>> {
        self.lock().table.get(id).map(Task::chain)
    }

    /// The task and everything below it, parents before children.
    pub fn subtree(&self, id: u64) -> Vec<u64> {
        self.lock().table.subtree(id)
    }

    pub fn unfinished_of(&self, agent: &str) -> Vec<u64> {
        self.lock().table.unfinished_of(agent)
    }

    pub fn unfinished(&self) -> Vec<u64> {
        self.lock().table.unfinished()
    }

    /// Unfinished tasks `caller` handed to `agent`.
    pub fn unfinished_from(&self, caller: &str, agent: &str) -> Vec<u64> {
        self.lock().table.unfinished_from(caller, agent)
    }

    /// How many unfinished tasks `caller` started, and how many `agent` has been given.
    pub fn unfinished_counts(&self, caller: &str, agent: &str) -> (u32, u32) {
        let b = self.lock();
        let mut counts = (0, 0);
        for (_, id) in &b.deadlines {
            if let Some(t) = b.table.get(*id) {
                counts.0 += u32::from(t.caller == caller);
                counts.1 += u32::from(t.agent == agent);
            }
        }
        counts
    }

    /// Unfinished tasks whose deadline has passed.
    pub fn overdue(&self, now: u64) -> Vec<u64> {
        let b = self.lock();
        b.deadlines
            .range(..=(now, u64::MAX))
            .map(|(_, id)| *id)
            .collect()
    }

    /// The nearest deadline of an unfinished task.
    pub fn next_deadline(&self) -> Option<u64> {
        self.lock().deadlines.first().map(|(d, _)| *d)
    }

    /// Notified when a task with an earlier deadline than any before arrives, and when the last
    /// unfinished task ends (a notification that finds nobody waiting is kept for the next
    /// wait).
    pub fn earlier_deadline(&self) -> Arc<Notify> {
        Arc::clone(&self.earlier_deadline)
    }

    /// A watch on a task's state, for whoever waits for it to finish.
    pub fn watch(&self, id: u64) -> Option<watch::Receiver<TaskState>> {
        self.lock().watchers.get(&id).map(watch::Sender::subscribe)
    }

    /// The caller that started the tree `id` belongs to.
    pub fn root_caller(&self, id: u64) -> Option<String> {
        Some(self.lock().root(id)?.caller.clone())
    }

    /// Have the requests of `root`'s tree that name no model use `model`.
    pub fn set_model(&self, root: u64, model: String) {
        self.lock().models.insert(root, model);
    }

    /// The model the requests of `id`'s tree use when they name none, if its delegation said.
    pub fn model_of(&self, id: u64) -> Option<String> {
        let b = self.lock();
        let root = b.root(id)?.id;
        b.models.get(&root).cloned()
    }

    /// The task `agent` acts for, if it is a running task of that agent.
    pub fn acting(&self, agent: &str, task: u64) -> Result<Acting, Error> {
        let b = self.lock();
        b.table
            .get(task)
            .filter(|t| t.agent == agent && !t.state.is_terminal())
            .map(|t| Acting {
                chain: t.chain(),
                goal: t.goal.clone(),
            })
            .ok_or_else(|| {
                Error::AccessDenied(format!(
                    "task {task} is not a running task of agent {agent}"
                ))
            })
    }

    /// Refuses unless `task` is an unfinished task of `agent`.
    pub fn check_running(&self, agent: &str, task: u64) -> Result<(), Error> {
        let b = self.lock();
        match b.table.get(task) {
            Some(t) if t.agent == agent && !t.state.is_terminal() => Ok(()),
            Some(t) if t.agent == agent => Err(Error::InvalidArgument(format!(
                "task {task} has already finished ({})",
                t.state
            ))),
            _ => Err(Error::AccessDenied(format!(
                "task {task} is not a task of agent {agent}"
            ))),
        }
    }

    /// Refuses unless `child` was delegated from a task of `agent`.
    pub fn check_delegated_by(&self, agent: &str, child: u64) -> Result<(), Error> {
        let b = self.lock();
        let parent = b.table.get(child).map(|c| c.parent).unwrap_or(0);
        match b.table.get(parent) {
            Some(p) if p.agent == agent => Ok(()),
            _ => Err(Error::AccessDenied(format!(
                "task {child} was not delegated by agent {agent}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_kept_in_order_and_finished_tasks_leave_them() {
        let board = TaskBoard::default();
        board.insert(Task::working(1, 0, "a", vec![], 0, 300));
        board.insert(Task::working(2, 0, "a", vec![], 0, 100));
        board.insert(Task::working(3, 2, "b", vec!["a".into()], 0, 200));
        assert_eq!(board.next_deadline(), Some(100));
        assert_eq!(board.overdue(250), [2, 3]);
        board
            .apply(2, 5, |t, now| t.complete(2, "done", now))
            .unwrap();
        assert_eq!(board.next_deadline(), Some(200));
        assert_eq!(board.overdue(1000), [3, 1]);
        assert_eq!(board.root_caller(3).as_deref(), Some("host"));
        assert!(board.check_delegated_by("a", 3).is_ok());
        assert!(board.check_delegated_by("b", 3).is_err());
    }

    #[test]
    fn a_trees_model_is_found_from_any_of_its_tasks() {
        let board = TaskBoard::default();
        board.insert(Task::working(1, 0, "sidekick", vec![], 0, 300));
        board.insert(Task::working(2, 1, "docs", vec!["sidekick".into()], 0, 300));
        board.insert(Task::working(3, 0, "web", vec![], 0, 300));
        board.set_model(1, "ollama/qwen2.5:0.5b".into());
        assert_eq!(board.model_of(2).as_deref(), Some("ollama/qwen2.5:0.5b"));
        assert_eq!(board.model_of(1).as_deref(), Some("ollama/qwen2.5:0.5b"));
        assert_eq!(board.model_of(3), None, "another tree");
        assert_eq!(board.model_of(9), None, "no such task");
        // Kept while the root's sub-tasks may still ask, as the tasks of this run are kept.
        board
            .apply(1, 5, |t, now| t.complete(1, "done", now))
            .unwrap();
        assert_eq!(board.model_of(2).as_deref(), Some("ollama/qwen2.5:0.5b"));
    }
}

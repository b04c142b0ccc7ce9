//! The delegation tree as the Tasks page shows it: the tasks the kernel listed, kept current by
//! its task events, laid out parent before children with their depth.

use std::collections::{BTreeMap, HashMap};

use agentos_client::TaskEvent;
use agentos_dbus_interfaces::{TaskInfo, TaskState};

/// Deepest level drawn indented; deeper tasks are drawn at this level (a malformed tree cannot
/// push rows off the screen).
pub const MAX_DEPTH: usize = 16;

/// One task as the page knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: u64,
    pub parent: u64,
    pub agent: String,
    pub caller: String,
    pub goal: String,
    /// `None` for a state this panel does not know (shown by its wire name).
    pub state: Option<TaskState>,
    pub state_name: String,
    pub progress: f64,
    pub message: String,
    pub result: String,
    pub created: u64,
    pub updated: u64,
}

impl Task {
    pub fn from_info(info: TaskInfo) -> Task {
        Task {
            state: TaskState::parse(&info.state),
            state_name: info.state,
            id: info.id,
            parent: info.parent,
            agent: info.agent,
            caller: info.caller,
            goal: info.goal,
            progress: info.progress,
            message: info.message,
            result: info.result,
            created: info.created,
            updated: info.updated,
        }
    }

    /// Finished tasks never change again.
    pub fn is_finished(&self) -> bool {
        self.state.is_some_and(TaskState::is_terminal)
    }
}

/// A task placed in the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub task: Task,
    pub depth: usize,
}

/// What an event did to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A task already shown changed in place.
    Changed(u64),
    /// A task not known before: the tree's layout changed, and its goal and caller are not
    /// known yet (ask the kernel with `GetTask`).
    New(u64),
}

/// The tasks the panel knows, by id.
#[derive(Debug, Default)]
pub struct TaskStore {
    tasks: BTreeMap<u64, Task>,
}

/// A reply read now (`reply`, perhaps written before the task ended) does not take back the end
/// already known (`known`): the end's state, progress, message and result are kept; the rest is
/// the reply's. `known` is left without its state name, message and result.
fn keep_end(reply: &mut Task, known: &mut Task) {
    if known.is_finished() && !reply.is_finished() {
        reply.state = known.state;
        reply.state_name = std::mem::take(&mut known.state_name);
        reply.progress = known.progress;
        reply.message = std::mem::take(&mut known.message);
        reply.result = std::mem::take(&mut known.result);
        reply.updated = reply.updated.max(known.updated);
    }
}

/// Whether `reply` was written before the end already known of its task (`known`): it tells
/// nothing newer.
pub fn is_stale(reply: &TaskInfo, known: Option<&Task>) -> bool {
    known.is_some_and(Task::is_finished)
        && !TaskState::parse(&reply.state).is_some_and(TaskState::is_terminal)
}

impl TaskStore {
    /// Hold `tasks` (as `ListTasks` returned them) and no other, but for tasks newer than all of
    /// them (ids only grow: known from events read before the list, though made after it); a
    /// task already known to have ended stays ended.
    pub fn load(&mut self, tasks: Vec<TaskInfo>) {
        let known = std::mem::take(&mut self.tasks);
        self.tasks = tasks
            .into_iter()
            .map(|t| (t.id, Task::from_info(t)))
            .collect();
        let newest = self.tasks.keys().next_back().copied().unwrap_or(0);
        // A list read before the events that ended some of its tasks does not take them back.
        for (id, mut task) in known {
            match self.tasks.get_mut(&id) {
                Some(listed) => keep_end(listed, &mut task),
                None if id > newest => {
                    self.tasks.insert(id, task);
                }
                None => {}
            }
        }
    }

    /// Add older tasks (a page of history); tasks already known keep what the events said.
    pub fn extend(&mut self, tasks: Vec<TaskInfo>) {
        for t in tasks {
            self.tasks.entry(t.id).or_insert_with(|| Task::from_info(t));
        }
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The ids of the tasks held.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.tasks.keys().copied()
    }

    pub fn get(&self, id: u64) -> Option<&Task> {
        self.tasks.get(&id)
    }

    /// Put a task as the kernel described it (`GetTask`), replacing what was known. A reply
    /// read after the event that finished the task does not take it back to running: its state,
    /// progress and message stay as the event said.
    pub fn put(&mut self, info: TaskInfo) -> Applied {
        let id = info.id;
        let mut fresh = Task::from_info(info);
        let Some(known) = self.tasks.get_mut(&id) else {
            self.tasks.insert(id, fresh);
            return Applied::New(id);
        };
        keep_end(&mut fresh, known);
        *known = fresh;
        Applied::Changed(id)
    }

    /// Apply one `TaskChanged` event. A finished task does not go back to running on a late
    /// event.
    pub fn apply(&mut self, ev: &TaskEvent) -> Applied {
        match self.tasks.get_mut(&ev.id) {
            Some(task) => {
                if task.is_finished() && !ev.state.is_terminal() {
                    return Applied::Changed(ev.id);
                }
                task.state = Some(ev.state);
                task.state_name = ev.state.as_str().to_string();
                task.progress = ev.progress;
                task.message.clone_from(&ev.message);
                if !ev.agent.is_empty() {
                    task.agent.clone_from(&ev.agent);
                }
                task.updated = task.updated.max(crate::model::format::now_ms());
                Applied::Changed(ev.id)
            }
            None => {
                let now = crate::model::format::now_ms();
                self.tasks.insert(
                    ev.id,
                    Task {
                        id: ev.id,
                        parent: ev.parent,
                        agent: ev.agent.clone(),
                        caller: String::new(),
                        goal: String::new(),
                        state: Some(ev.state),
                        state_name: ev.state.as_str().to_string(),
                        progress: ev.progress,
                        message: ev.message.clone(),
                        result: String::new(),
                        created: now,
                        updated: now,
                    },
                );
                Applied::New(ev.id)
            }
        }
    }

    /// The tasks in tree order: top-level tasks newest first, each followed by its subtree
    /// (children oldest first). A task whose parent is not known is shown at the top level.
    pub fn rows(&self) -> Vec<Row> {
        let mut children: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut roots = Vec::new();
        for task in self.tasks.values() {
            if task.parent != 0 && task.parent != task.id && self.tasks.contains_key(&task.parent) {
                children.entry(task.parent).or_default().push(task.id);
            } else {
                roots.push(task.id);
            }
        }
        roots.reverse();
        // Tasks in a cycle have no root: they are drawn at the top level after the others.
        let stray: Vec<u64> = self.tasks.keys().rev().copied().collect();
        let mut out = Vec::with_capacity(self.tasks.len());
        let mut seen = std::collections::HashSet::new();
        for start in roots.into_iter().chain(stray) {
            let mut stack = vec![(start, 0)];
            while let Some((id, depth)) = stack.pop() {
                if !seen.insert(id) {
                    continue;
                }
                let Some(task) = self.tasks.get(&id) else {
                    continue;
                };
                out.push(Row {
                    task: task.clone(),
                    depth: depth.min(MAX_DEPTH),
                });
                if let Some(kids) = children.get(&id) {
                    for kid in kids.iter().rev() {
                        stack.push((*kid, depth + 1));
                    }
                }
            }
        }
        out
    }

    /// The chain of tasks from `id` up to its top-level task (bounded).
    pub fn chain(&self, id: u64) -> Vec<&Task> {
        let mut out = Vec::new();
        let mut next = Some(id);
        while let Some(id) = next {
            let Some(task) = self.tasks.get(&id) else {
                break;
            };
            if out.len() > MAX_DEPTH * 4 || out.iter().any(|t: &&Task| t.id == id) {
                break;
            }
            out.push(task);
            next = (task.parent != 0).then_some(task.parent);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: u64, parent: u64, state: &str) -> TaskInfo {
        TaskInfo {
            id,
            parent,
            agent: format!("agent{id}"),
            caller: "host".into(),
            goal: format!("goal {id}"),
            state: state.into(),
            progress: 0.0,
            message: String::new(),
            result: String::new(),
            created: id * 1000,
            updated: id * 1000,
        }
    }

    fn event(id: u64, parent: u64, state: TaskState, progress: f64) -> TaskEvent {
        TaskEvent {
            id,
            parent,
            agent: "docs".into(),
            state,
            progress,
            message: "reading".into(),
        }
    }

    fn order(store: &TaskStore) -> Vec<(u64, usize)> {
        store.rows().iter().map(|r| (r.task.id, r.depth)).collect()
    }

    #[test]
    fn the_tree_is_laid_out_parent_first() {
        let mut store = TaskStore::default();
        store.load(vec![
            info(1, 0, "completed"),
            info(2, 1, "completed"),
            info(3, 0, "working"),
            info(4, 2, "failed"),
            info(5, 1, "working"),
            // Its parent is not known here: shown at the top.
            info(9, 8, "working"),
        ]);
        assert_eq!(
            order(&store),
            vec![(9, 0), (3, 0), (1, 0), (2, 1), (4, 2), (5, 1)]
        );
        assert_eq!(store.rows()[4].task.state, Some(TaskState::Failed));
    }

    #[test]
    fn events_update_in_place_and_add_new_tasks() {
        let mut store = TaskStore::default();
        store.load(vec![info(1, 0, "working")]);
        let applied = store.apply(&event(1, 0, TaskState::Working, 0.5));
        assert_eq!(applied, Applied::Changed(1));
        let t = store.get(1).unwrap();
        assert_eq!((t.progress, t.message.as_str()), (0.5, "reading"));
        assert_eq!(
            store.apply(&event(2, 1, TaskState::Submitted, 0.0)),
            Applied::New(2)
        );
        assert_eq!(order(&store), vec![(1, 0), (2, 1)]);
        // GetTask fills in what the event did not carry.
        assert_eq!(store.put(info(2, 1, "working")), Applied::Changed(2));
        assert_eq!(store.get(2).unwrap().goal, "goal 2");
    }

    #[test]
    fn a_reply_older_than_the_end_does_not_take_a_task_back() {
        let mut store = TaskStore::default();
        store.apply(&event(3, 0, TaskState::Working, 0.5));
        store.apply(&event(3, 0, TaskState::Canceled, 0.5));
        // GetTask was answered while it still worked, and is read only now.
        assert_eq!(store.put(info(3, 0, "working")), Applied::Changed(3));
        let t = store.get(3).unwrap();
        assert_eq!(t.state, Some(TaskState::Canceled));
        assert_eq!(t.state_name, "canceled");
        assert_eq!(t.goal, "goal 3", "the rest of the reply is taken");
        // A reply that says it finished is taken whole.
        store.put(info(3, 0, "failed"));
        assert_eq!(store.get(3).unwrap().state, Some(TaskState::Failed));
    }

    #[test]
    fn a_reply_read_after_a_fresher_one_keeps_the_result() {
        let mut store = TaskStore::default();
        store.apply(&event(6, 0, TaskState::Working, 0.5));
        store.apply(&event(6, 0, TaskState::Completed, 1.0));
        // The reply asked at the end comes first, then the one asked while it worked.
        let mut done = info(6, 0, "completed");
        done.result = "the answer".into();
        let working = info(6, 0, "working");
        assert!(!is_stale(&done, store.get(6)));
        store.put(done);
        assert!(is_stale(&working, store.get(6)));
        store.put(working);
        let t = store.get(6).unwrap();
        assert_eq!(
            (t.state, t.result.as_str()),
            (Some(TaskState::Completed), "the answer")
        );
        // Nothing known, or not ended yet: no reply is stale.
        assert!(!is_stale(&info(7, 0, "working"), store.get(7)));
        store.apply(&event(7, 0, TaskState::Working, 0.1));
        assert!(!is_stale(&info(7, 0, "working"), store.get(7)));
    }

    #[test]
    fn a_list_older_than_an_end_does_not_take_the_task_back() {
        let mut store = TaskStore::default();
        store.apply(&event(4, 0, TaskState::Completed, 1.0));
        store.load(vec![info(4, 0, "working"), info(5, 0, "working")]);
        assert_eq!(store.get(4).unwrap().state, Some(TaskState::Completed));
        assert_eq!(
            store.get(4).unwrap().goal,
            "goal 4",
            "the rest of the list is taken"
        );
        assert_eq!(store.get(5).unwrap().state, Some(TaskState::Working));
        store.load(vec![info(5, 0, "working")]);
        assert!(
            store.get(4).is_none(),
            "a task the list no longer has is dropped"
        );
    }

    #[test]
    fn a_task_newer_than_the_list_stays() {
        let mut store = TaskStore::default();
        // Made after the list was read, its event handled before the list's reply.
        store.apply(&event(9, 0, TaskState::Submitted, 0.0));
        store.apply(&event(2, 0, TaskState::Working, 0.2));
        store.load(vec![info(5, 0, "working"), info(3, 0, "completed")]);
        assert_eq!(
            store.get(9).map(|t| t.state),
            Some(Some(TaskState::Submitted))
        );
        assert!(
            store.get(2).is_none(),
            "older than the list: the list is right"
        );
        assert_eq!(order(&store).len(), 3);
    }

    #[test]
    fn older_pages_add_without_overwriting() {
        let mut store = TaskStore::default();
        store.load(vec![info(5, 0, "working")]);
        store.apply(&event(5, 0, TaskState::Completed, 1.0));
        store.extend(vec![info(5, 0, "working"), info(2, 0, "completed")]);
        assert_eq!(store.get(5).unwrap().state, Some(TaskState::Completed));
        assert_eq!(order(&store), vec![(5, 0), (2, 0)]);
    }

    #[test]
    fn a_finished_task_stays_finished() {
        let mut store = TaskStore::default();
        store.load(vec![info(1, 0, "completed")]);
        store.apply(&event(1, 0, TaskState::Working, 0.2));
        assert_eq!(store.get(1).unwrap().state, Some(TaskState::Completed));
    }

    #[test]
    fn unknown_states_and_cycles_do_not_break_the_tree() {
        let mut store = TaskStore::default();
        store.load(vec![
            info(1, 2, "dancing"),
            info(2, 1, "working"),
            info(3, 3, "working"),
        ]);
        let rows = store.rows();
        // A cycle has no root: its tasks are still drawn, once each, and nothing loops.
        let ids: Vec<u64> = rows.iter().map(|r| r.task.id).collect();
        assert_eq!(ids, vec![3, 2, 1]);
        assert_eq!(store.get(1).unwrap().state, None);
        assert_eq!(store.get(1).unwrap().state_name, "dancing");
        assert_eq!(store.chain(1).len(), 2);
    }

    #[test]
    fn depth_is_bounded() {
        let mut store = TaskStore::default();
        let tasks = (1..=40).map(|i| info(i, i - 1, "working")).collect();
        store.load(tasks);
        let rows = store.rows();
        assert_eq!(rows.len(), 40);
        assert_eq!(rows.last().unwrap().depth, MAX_DEPTH);
    }
}

//! Following a delegation tree: which tasks belong to it and the lines that show their changes.

use std::collections::HashMap;

use agentos_client::TaskEvent;
use agentos_dbus_interfaces::{TaskInfo, TaskState};

use crate::error::Result;
use crate::output;

/// One observed state of a task, from a `TaskChanged` signal or from `GetTask`.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub id: u64,
    pub parent: u64,
    pub state: String,
    pub progress: f64,
    pub message: String,
}

impl Change {
    /// The change a `TaskChanged` signal reports.
    pub fn from_event(event: TaskEvent) -> Change {
        Change {
            id: event.id,
            parent: event.parent,
            state: event.state.as_str().to_string(),
            progress: event.progress,
            message: event.message,
        }
    }

    pub fn from_task(task: TaskInfo) -> Change {
        Change {
            id: task.id,
            parent: task.parent,
            state: task.state,
            progress: task.progress,
            message: task.message,
        }
    }
}

/// The tree of tasks being followed and what was last printed of each.
pub struct Follower {
    root: u64,
    json: bool,
    depth: HashMap<u64, usize>,
    shown: HashMap<u64, (String, String, String)>,
    pub root_state: Option<TaskState>,
}

impl Follower {
    pub fn new(root: u64, json: bool) -> Self {
        Follower {
            root,
            json,
            depth: HashMap::from([(root, 0)]),
            shown: HashMap::new(),
            root_state: None,
        }
    }

    /// Progress lines go to stdout, or to stderr when stdout carries JSON.
    pub fn say(&self, line: &str) -> Result<()> {
        if self.json {
            output::warn(line);
            Ok(())
        } else {
            output::emit(&format!("{line}\n"))
        }
    }

    /// A change of a task; printed if it belongs to the tree and differs from the last line.
    pub fn update(&mut self, change: &Change) -> Result<()> {
        let (id, parent) = (change.id, change.parent);
        let depth = match self.depth.get(&id) {
            Some(&d) => d,
            None => match self.depth.get(&parent) {
                Some(&d) if parent != 0 => {
                    self.depth.insert(id, d + 1);
                    d + 1
                }
                _ => return Ok(()),
            },
        };
        if id == self.root {
            self.root_state = TaskState::parse(&change.state);
        }
        let shown = (
            output::clean(&change.state),
            output::percent(change.progress),
            output::clean(&change.message),
        );
        if self.shown.get(&id) == Some(&shown) {
            return Ok(());
        }
        let line = format!(
            "{}[{id}] {} {} {}",
            "  ".repeat(depth),
            shown.0,
            shown.1,
            shown.2
        );
        self.say(line.trim_end())?;
        self.shown.insert(id, shown);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: u64, parent: u64, state: &str) -> Change {
        Change {
            id,
            parent,
            state: state.into(),
            progress: 0.5,
            message: String::new(),
        }
    }

    #[test]
    fn follows_only_the_tree() {
        let mut f = Follower::new(10, true);
        f.update(&change(11, 10, "working")).unwrap();
        f.update(&change(12, 11, "working")).unwrap();
        f.update(&change(20, 0, "working")).unwrap();
        f.update(&change(21, 20, "working")).unwrap();
        assert_eq!(f.depth.get(&12), Some(&2));
        assert!(!f.depth.contains_key(&20) && !f.depth.contains_key(&21));
        assert_eq!(f.root_state, None);
        f.update(&change(10, 0, "completed")).unwrap();
        assert_eq!(f.root_state, Some(TaskState::Completed));
    }
}

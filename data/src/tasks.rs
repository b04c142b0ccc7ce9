//! Tasks: insert, update, look up, list, and fail the ones a crash left unfinished.

use rusqlite::{params, OptionalExtension, Row};

use crate::{Store, StoreError, TaskInfo, TaskState};

/// A task as the kernel first records it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// The parent task's id, 0 for a top-level task.
    pub parent: u64,
    pub agent: String,
    pub caller: String,
    pub goal: String,
    pub state: TaskState,
    /// Milliseconds since the Unix epoch; also the first `updated`.
    pub created: u64,
    /// Milliseconds since the Unix epoch, 0 for none.
    pub deadline: u64,
}

/// A change to a task's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskUpdate {
    pub state: TaskState,
    /// 0.0 to 1.0; clamped, and a NaN counts as 0.
    pub progress: f64,
    pub message: String,
    /// `None` keeps the current result.
    pub result: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub updated: u64,
}

const COLUMNS: &str =
    "id, parent, agent, caller, goal, state, progress, message, result, created, updated";

fn task_from_row(r: &Row<'_>) -> rusqlite::Result<TaskInfo> {
    Ok(TaskInfo {
        id: r.get(0)?,
        parent: r.get(1)?,
        agent: r.get(2)?,
        caller: r.get(3)?,
        goal: r.get(4)?,
        state: r.get(5)?,
        progress: r.get(6)?,
        message: r.get(7)?,
        result: r.get(8)?,
        created: r.get(9)?,
        updated: r.get(10)?,
    })
}

impl Store {
    /// Records a new task and returns its id. Ids are never reused, even after a crash.
    pub fn insert_task(&self, t: &NewTask) -> Result<u64, StoreError> {
        self.insert_task_row(None, t)
    }

    /// Sets a task's state, progress, message, result (unless `None`) and update time.
    pub fn update_task(&self, id: u64, u: &TaskUpdate) -> Result<(), StoreError> {
        let progress = if u.progress.is_nan() {
            0.0
        } else {
            u.progress.clamp(0.0, 1.0)
        };
        let changed = self.conn.execute(
            "UPDATE tasks SET state = ?2, progress = ?3, message = ?4,
                              result = COALESCE(?5, result), updated = ?6
             WHERE id = ?1",
            params![
                id,
                u.state.as_str(),
                progress,
                u.message,
                u.result,
                u.updated
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::NoSuchTask(id));
        }
        Ok(())
    }

    /// Reserves `n` task ids for the caller to insert with [`Store::insert_task_with_id`]: no
    /// later reservation or insert hands them out again, even after a crash (the reservation is
    /// committed before this returns). Returns the first; the rest follow it.
    pub fn reserve_task_ids(&self, n: u64) -> Result<u64, StoreError> {
        let tx = self.begin()?;
        let max_row: u64 =
            tx.query_row("SELECT COALESCE(MAX(id), 0) FROM tasks", [], |r| r.get(0))?;
        let seq: u64 = tx.query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'tasks'), 0)",
            [],
            |r| r.get(0),
        )?;
        let first = max_row.max(seq) + 1;
        let last = first + n.max(1) - 1;
        // SQLite lets its AUTOINCREMENT counter be set like any row: the next automatic id, and
        // the next reservation, start after the last id reserved here.
        tx.execute("DELETE FROM sqlite_sequence WHERE name = 'tasks'", [])?;
        tx.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('tasks', ?1)",
            [last],
        )?;
        tx.commit()?;
        Ok(first)
    }

    /// Writes new tasks (under ids reserved with [`Store::reserve_task_ids`]) and changes to
    /// tasks in one transaction, new ones first. A change to a task that is not there fails the
    /// whole batch, and nothing of it is written.
    pub fn write_tasks(
        &self,
        new: &[(u64, NewTask)],
        updates: &[(u64, TaskUpdate)],
    ) -> Result<(), StoreError> {
        let tx = self.begin()?;
        for (id, t) in new {
            self.insert_task_with_id(*id, t)?;
        }
        for (id, u) in updates {
            self.update_task(*id, u)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a new task under an id reserved for it.
    pub fn insert_task_with_id(&self, id: u64, t: &NewTask) -> Result<(), StoreError> {
        self.insert_task_row(Some(id), t).map(drop)
    }

    /// Inserts a task's first row, under `id` or (`None`) the next automatic one.
    fn insert_task_row(&self, id: Option<u64>, t: &NewTask) -> Result<u64, StoreError> {
        let id = self.conn.query_row(
            "INSERT INTO tasks (id, parent, agent, caller, goal, state, progress, message, result,
                                created, updated, deadline)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0.0, '', '', ?7, ?7, ?8) RETURNING id",
            params![
                id,
                t.parent,
                t.agent,
                t.caller,
                t.goal,
                t.state.as_str(),
                t.created,
                t.deadline
            ],
            |r| r.get(0),
        )?;
        Ok(id)
    }

    /// The task with this id, if there is one.
    pub fn get_task(&self, id: u64) -> Result<Option<TaskInfo>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1");
        Ok(self.conn.query_row(&sql, [id], task_from_row).optional()?)
    }

    /// At most `limit` tasks, newest first.
    pub fn list_tasks(&self, limit: u32) -> Result<Vec<TaskInfo>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tasks ORDER BY id DESC LIMIT ?1");
        let mut stmt = self.conn.prepare(&sql)?;
        let tasks = stmt
            .query_map([limit], task_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(tasks)
    }

    /// At most `limit` tasks whose id is below `before` (0: no bound), newest first.
    pub fn list_task_page(&self, before: u64, limit: u32) -> Result<Vec<TaskInfo>, StoreError> {
        let before = if before == 0 {
            i64::MAX
        } else {
            before.min(i64::MAX as u64) as i64
        };
        let sql = format!("SELECT {COLUMNS} FROM tasks WHERE id < ?1 ORDER BY id DESC LIMIT ?2");
        let mut stmt = self.conn.prepare(&sql)?;
        let tasks = stmt
            .query_map(params![before, limit], task_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(tasks)
    }

    /// Like [`Store::list_task_page`], but only tasks of the trees `root_caller` started: those
    /// whose top-level task (parent 0) has that caller. Rows are read newest first and each
    /// one's tree is found by walking up its parents (a parent is always older than its child;
    /// a row that breaks this belongs to no one), until `limit` tasks are found.
    pub fn list_task_page_of(
        &self,
        root_caller: &str,
        before: u64,
        limit: u32,
    ) -> Result<Vec<TaskInfo>, StoreError> {
        let before = if before == 0 {
            i64::MAX
        } else {
            before.min(i64::MAX as u64) as i64
        };
        let sql = format!("SELECT {COLUMNS} FROM tasks WHERE id < ?1 ORDER BY id DESC");
        let mut rows_stmt = self.conn.prepare(&sql)?;
        let mut parent_stmt = self
            .conn
            .prepare("SELECT parent, caller FROM tasks WHERE id = ?1")?;
        // Whether the tree of a task (an ancestor seen while walking) is `root_caller`'s.
        let mut owned: std::collections::HashMap<u64, bool> = std::collections::HashMap::new();
        let mut tasks = Vec::new();
        let mut rows = rows_stmt.query([before])?;
        while tasks.len() < limit as usize {
            let Some(row) = rows.next()? else { break };
            let task = task_from_row(row)?;
            let mut walked = vec![task.id];
            let (mut id, mut parent, mut caller) = (task.id, task.parent, task.caller.clone());
            let mine = loop {
                if parent == 0 {
                    break caller == root_caller;
                }
                if parent >= id {
                    break false;
                }
                if let Some(&known) = owned.get(&parent) {
                    break known;
                }
                let up: Option<(u64, String)> = parent_stmt
                    .query_row([parent], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((grandparent, parent_caller)) = up else {
                    break false;
                };
                walked.push(parent);
                (id, parent, caller) = (parent, grandparent, parent_caller);
            };
            // Only ancestors are remembered: rows come newest first and are not seen again.
            for ancestor in walked.into_iter().skip(1) {
                owned.insert(ancestor, mine);
            }
            if mine {
                tasks.push(task);
            }
        }
        Ok(tasks)
    }

    /// Marks every task in a non-terminal state (submitted, working, input-required,
    /// auth-required) as failed with `message` at time `now`, and returns how many there were.
    /// Used at kernel start: a task that was running when the kernel died cannot resume.
    pub fn fail_unfinished_tasks(&self, message: &str, now: u64) -> Result<u64, StoreError> {
        // The state names are our own constants, so they can be spelled into the SQL.
        let unfinished: Vec<String> = TaskState::ALL
            .into_iter()
            .filter(|s| !s.is_terminal())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let sql = format!(
            "UPDATE tasks SET state = '{}', message = ?1, updated = ?2 WHERE state IN ({})",
            TaskState::Failed.as_str(),
            unfinished.join(", ")
        );
        let changed = self.conn.execute(&sql, params![message, now])?;
        Ok(changed as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn task(goal: &str, state: TaskState, created: u64) -> NewTask {
        NewTask {
            parent: 0,
            agent: "docs".into(),
            caller: "cli".into(),
            goal: goal.into(),
            state,
            created,
            deadline: created + 1000,
        }
    }

    #[test]
    fn round_trip() {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let id = store
            .insert_task(&task("write", TaskState::Submitted, 100))
            .unwrap();
        let child = store
            .insert_task(&NewTask {
                parent: id,
                ..task("child", TaskState::Working, 101)
            })
            .unwrap();
        let t = store.get_task(id).unwrap().unwrap();
        assert_eq!(
            t,
            TaskInfo {
                id,
                parent: 0,
                agent: "docs".into(),
                caller: "cli".into(),
                goal: "write".into(),
                state: "submitted".into(),
                progress: 0.0,
                message: String::new(),
                result: String::new(),
                created: 100,
                updated: 100,
            }
        );
        assert_eq!(store.get_task(child).unwrap().unwrap().parent, id);

        let mut u = TaskUpdate {
            state: TaskState::Working,
            progress: 0.5,
            message: "halfway".into(),
            result: Some("draft".into()),
            updated: 150,
        };
        store.update_task(id, &u).unwrap();
        u.state = TaskState::Completed;
        u.progress = 7.0;
        u.result = None;
        u.updated = 200;
        store.update_task(id, &u).unwrap();
        let t = store.get_task(id).unwrap().unwrap();
        assert_eq!(t.state, "completed");
        assert_eq!(t.progress, 1.0);
        assert_eq!(t.message, "halfway");
        assert_eq!(t.result, "draft", "None keeps the result");
        assert_eq!(t.updated, 200);

        assert!(store.get_task(999).unwrap().is_none());
        assert!(matches!(
            store.update_task(999, &u),
            Err(StoreError::NoSuchTask(999))
        ));
    }

    #[test]
    fn list_is_newest_first_and_limited() {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let ids: Vec<u64> = (0..5)
            .map(|i| {
                store
                    .insert_task(&task(&format!("t{i}"), TaskState::Submitted, i))
                    .unwrap()
            })
            .collect();
        let listed: Vec<u64> = store.list_tasks(3).unwrap().iter().map(|t| t.id).collect();
        assert_eq!(listed, vec![ids[4], ids[3], ids[2]]);
        assert_eq!(store.list_tasks(100).unwrap().len(), 5);
        assert!(store.list_tasks(0).unwrap().is_empty());
    }

    #[test]
    fn ids_are_never_reused() {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let a = store
            .insert_task(&task("a", TaskState::Submitted, 1))
            .unwrap();
        store.conn.execute("DELETE FROM tasks", []).unwrap();
        let b = store
            .insert_task(&task("b", TaskState::Submitted, 2))
            .unwrap();
        assert!(b > a);
    }

    #[test]
    fn pages_of_one_callers_trees() {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let new = |parent, caller: &str| {
            store
                .insert_task(&NewTask {
                    parent,
                    caller: caller.into(),
                    ..task("g", TaskState::Working, 1)
                })
                .unwrap()
        };
        let a = new(0, "org.example.A");
        let b = new(0, "host");
        let a1 = new(a, "docs");
        let b1 = new(b, "docs");
        let a2 = new(a1, "web");
        let orphan = new(9999, "org.example.A");
        let a3 = new(0, "org.example.A");
        let page = |before, limit| -> Vec<u64> {
            let tasks = store
                .list_task_page_of("org.example.A", before, limit)
                .unwrap();
            tasks.iter().map(|t| t.id).collect()
        };
        assert_eq!(page(0, 100), [a3, a2, a1, a]);
        assert_eq!(page(0, 2), [a3, a2]);
        assert_eq!(page(a2, 2), [a1, a]);
        assert!(page(a, 10).is_empty());
        let host: Vec<u64> = store
            .list_task_page_of("host", 0, 10)
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(host, [b1, b]);
        assert!(!page(0, 100).contains(&orphan));
    }

    #[test]
    fn fail_unfinished_touches_only_non_terminal_tasks() {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let ids: Vec<(u64, TaskState)> = TaskState::ALL
            .into_iter()
            .map(|s| (store.insert_task(&task("x", s, 1)).unwrap(), s))
            .collect();
        assert_eq!(
            store.fail_unfinished_tasks("kernel restarted", 99).unwrap(),
            4
        );
        for (id, before) in ids {
            let t = store.get_task(id).unwrap().unwrap();
            if before.is_terminal() {
                assert_eq!(t.state, before.as_str());
                assert_eq!(t.updated, 1);
                assert_eq!(t.message, "");
            } else {
                assert_eq!(t.state, "failed");
                assert_eq!(t.updated, 99);
                assert_eq!(t.message, "kernel restarted");
            }
        }
        assert_eq!(store.fail_unfinished_tasks("again", 100).unwrap(), 0);
    }

    #[test]
    fn pages_and_batched_updates() {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let ids: Vec<u64> = (0..5)
            .map(|i| {
                store
                    .insert_task(&task("g", TaskState::Working, i))
                    .unwrap()
            })
            .collect();
        let page = |before, limit| -> Vec<u64> {
            let tasks = store.list_task_page(before, limit).unwrap();
            tasks.iter().map(|t| t.id).collect()
        };
        assert_eq!(page(0, 2), [ids[4], ids[3]]);
        assert_eq!(page(ids[3], 2), [ids[2], ids[1]]);
        assert_eq!(page(ids[1], 2), [ids[0]]);
        let done = |progress| TaskUpdate {
            state: TaskState::Completed,
            progress,
            message: String::new(),
            result: Some("r".into()),
            updated: 9,
        };
        store
            .write_tasks(&[], &[(ids[0], done(1.0)), (ids[1], done(0.5))])
            .unwrap();
        assert_eq!(store.get_task(ids[1]).unwrap().unwrap().state, "completed");
        // One missing task fails the whole batch.
        assert!(store
            .write_tasks(&[], &[(ids[2], done(1.0)), (999, done(1.0))])
            .is_err());
        assert_eq!(store.get_task(ids[2]).unwrap().unwrap().state, "working");
    }

    #[test]
    fn reserved_ids_are_never_handed_out_again_even_after_a_restart() {
        let tmp = TempDir::new().unwrap();
        let first = {
            let store = Store::open(tmp.path()).unwrap();
            let auto = store
                .insert_task(&task("a", TaskState::Working, 1))
                .unwrap();
            let first = store.reserve_task_ids(10).unwrap();
            assert_eq!(first, auto + 1);
            // Only one of the ten is used before the "crash".
            store
                .write_tasks(&[(first, task("b", TaskState::Working, 2))], &[])
                .unwrap();
            first
        };
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.reserve_task_ids(5).unwrap(), first + 10);
        assert_eq!(
            store
                .insert_task(&task("c", TaskState::Working, 3))
                .unwrap(),
            first + 15
        );
        assert_eq!(store.get_task(first).unwrap().unwrap().goal, "b");
    }
}

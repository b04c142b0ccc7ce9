//! Tasks reach the store from a thread of their own, in batches: the kernel's async thread only
//! notes each new task and the newest state of each changed one (a storm of delegations or of
//! `Progress` calls costs no SQLite write per call), and the writer commits what was noted
//! within one turn. A new task, and a task's end (its result, its failure), are written at once,
//! without waiting for the turn. New tasks take ids reserved in the store a block at a time, so an id is never
//! handed out twice, even after a crash. Asleep, with no timer, while nothing changes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sync::lock;
use agentos_data::{NewTask, Store, StoreError, TaskUpdate};

/// How many task ids are reserved in the store at a time.
const ID_BLOCK: u64 = 1024;

/// What is noted of one task since the last write.
#[derive(Default)]
struct Pending {
    /// It is new: its first row.
    new: Option<NewTask>,
    /// Its newest state.
    update: Option<TaskUpdate>,
}

struct Shared {
    /// What changed since the last write, by task id.
    pending: Mutex<BTreeMap<u64, Pending>>,
    /// Reserved ids not handed out yet: the next, and the end of the block.
    ids: Mutex<(u64, u64)>,
    /// A change that should not wait for the turn is pending.
    urgent: AtomicBool,
    store: Arc<Mutex<Store>>,
    stop: AtomicBool,
}

impl Shared {
    /// Writes what is pending now. The store stays locked from taking the batch to committing
    /// it, so two writes never commit an older state after a newer one.
    fn write(&self) -> Result<usize, StoreError> {
        let store = lock(&self.store);
        let batch = std::mem::take(&mut *lock(&self.pending));
        if batch.is_empty() {
            return Ok(0);
        }
        let mut new = Vec::new();
        let mut updates = Vec::new();
        for (id, p) in batch {
            new.extend(p.new.map(|t| (id, t)));
            updates.extend(p.update.map(|u| (id, u)));
        }
        if let Err(e) = store.write_tasks(&new, &updates) {
            // Write what can be written, one by one; say what could not.
            tracing::error!(error = %e, "cannot write a batch of tasks; writing them one by one");
            let mut first = None;
            for (id, t) in &new {
                if let Err(e) = store.insert_task_with_id(*id, t) {
                    tracing::error!(task = id, error = %e, "cannot record a task");
                    first.get_or_insert(e);
                }
            }
            for (id, update) in &updates {
                if let Err(e) = store.update_task(*id, update) {
                    tracing::error!(task = id, error = %e, "cannot persist a task");
                    first.get_or_insert(e);
                }
            }
            if let Some(e) = first {
                return Err(e);
            }
        }
        Ok(new.len() + updates.len())
    }
}

/// The kernel's handle on the task writer; dropping it writes what is left and stops the thread.
pub struct TaskWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    turn: Duration,
}

impl TaskWriter {
    /// Start the writer thread over `store`; changes wait at most `turn` before they are written.
    pub fn start(store: Arc<Mutex<Store>>, turn: Duration) -> std::io::Result<TaskWriter> {
        let shared = Arc::new(Shared {
            pending: Mutex::default(),
            ids: Mutex::new((0, 0)),
            urgent: AtomicBool::new(false),
            store,
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("agentos-tasks".into())
                .spawn(move || run(&shared, turn))?
        };
        Ok(TaskWriter {
            shared,
            thread: Some(thread),
            turn,
        })
    }

    /// An id for a new task, never handed out before (a block of ids is reserved in the store
    /// when the last one is used up: one write per [`ID_BLOCK`] tasks).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        let mut ids = lock(&self.shared.ids);
        if ids.0 >= ids.1 {
            let first = lock(&self.shared.store).reserve_task_ids(ID_BLOCK)?;
            *ids = (first, first + ID_BLOCK);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Note a new task (under an id from [`TaskWriter::next_id`]); written at once, on the
    /// writer's thread (with whatever else is noted by then).
    pub fn put_new(&self, id: u64, task: NewTask) {
        self.note(id, true, |p| p.new = Some(task));
    }

    /// Note a task's newest state; it is written within one turn, or at once when `urgent`.
    pub fn put(&self, id: u64, update: TaskUpdate, urgent: bool) {
        self.note(id, urgent, |p| p.update = Some(update));
    }

    fn note(&self, id: u64, urgent: bool, f: impl FnOnce(&mut Pending)) {
        let was_empty = {
            let mut pending = lock(&self.shared.pending);
            let was_empty = pending.is_empty();
            f(pending.entry(id).or_default());
            was_empty
        };
        if urgent {
            self.shared.urgent.store(true, Ordering::Release);
        }
        if was_empty || urgent {
            if let Some(t) = &self.thread {
                t.thread().unpark();
            }
        }
    }

    /// Whether anything waits to be written.
    pub fn is_idle(&self) -> bool {
        lock(&self.shared.pending).is_empty()
    }

    /// Write everything noted so far, now, on the caller's thread.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.shared.write().map(drop)
    }

    /// How long a change waits at most.
    pub fn turn(&self) -> Duration {
        self.turn
    }
}

/// The writer thread: asleep until a change is noted, then one turn of gathering, then a write.
fn run(shared: &Shared, turn: Duration) {
    loop {
        std::thread::park();
        let stopping = shared.stop.load(Ordering::Acquire);
        if !stopping && lock(&shared.pending).is_empty() {
            continue; // a spurious wakeup
        }
        // Gather more changes for one turn (a stop or an urgent change cuts it short).
        let until = Instant::now() + turn;
        while !shared.stop.load(Ordering::Acquire) && !shared.urgent.swap(false, Ordering::AcqRel) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::park_timeout(left);
        }
        if let Err(e) = shared.write() {
            tracing::error!(error = %e, "cannot write task changes");
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
    }
}

impl Drop for TaskWriter {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        if let Err(e) = self.shared.write() {
            tracing::error!(error = %e, "cannot write the last task changes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentos_data::NewTask;
    use agentos_dbus_interfaces::TaskState;

    fn update(progress: f64, updated: u64) -> TaskUpdate {
        TaskUpdate {
            state: TaskState::Working,
            progress,
            message: format!("at {progress}"),
            result: None,
            updated,
        }
    }

    fn store_with_task() -> (tempfile::TempDir, Arc<Mutex<Store>>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = store
            .insert_task(&NewTask {
                parent: 0,
                agent: "a".into(),
                caller: "host".into(),
                goal: "g".into(),
                state: TaskState::Submitted,
                created: 1,
                deadline: 100,
            })
            .unwrap();
        (dir, Arc::new(Mutex::new(store)), id)
    }

    #[test]
    fn a_storm_of_changes_lands_as_its_last_state_within_a_turn() {
        let (_dir, store, id) = store_with_task();
        let writer = TaskWriter::start(Arc::clone(&store), Duration::from_millis(50)).unwrap();
        for i in 0..1000u32 {
            writer.put(id, update(f64::from(i) / 1000.0, u64::from(i)), false);
        }
        let stored = |store: &Arc<Mutex<Store>>| lock(store).get_task(id).unwrap().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while stored(&store).updated != 999 {
            assert!(Instant::now() < deadline, "not written within 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(stored(&store).message, "at 0.999");
    }

    #[test]
    fn dropping_the_writer_writes_what_is_left() {
        let (_dir, store, id) = store_with_task();
        let writer = TaskWriter::start(Arc::clone(&store), Duration::from_secs(3600)).unwrap();
        writer.put(id, update(0.5, 7), false);
        let started = Instant::now();
        drop(writer);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stop cuts the turn short"
        );
        assert_eq!(lock(&store).get_task(id).unwrap().unwrap().updated, 7);
    }

    #[test]
    fn an_urgent_change_does_not_wait_for_the_turn() {
        let (_dir, store, id) = store_with_task();
        let writer = TaskWriter::start(Arc::clone(&store), Duration::from_secs(3600)).unwrap();
        writer.put(id, update(0.5, 7), false);
        writer.put(id, update(1.0, 8), true);
        let deadline = Instant::now() + Duration::from_secs(10);
        while lock(&store).get_task(id).unwrap().unwrap().updated != 8 {
            assert!(Instant::now() < deadline, "not written within 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(writer);
    }

    #[test]
    fn new_tasks_take_reserved_ids_and_land_with_their_first_changes() {
        let (dir, store, first) = store_with_task();
        let writer = TaskWriter::start(Arc::clone(&store), Duration::from_secs(3600)).unwrap();
        let a = writer.next_id().unwrap();
        let b = writer.next_id().unwrap();
        assert_eq!((a, b), (first + 1, first + 2));
        let new = |goal: &str| NewTask {
            parent: 0,
            agent: "a".into(),
            caller: "host".into(),
            goal: goal.into(),
            state: TaskState::Submitted,
            created: 1,
            deadline: 100,
        };
        writer.put_new(a, new("first"));
        writer.put(a, update(0.25, 3), false);
        writer.put_new(b, new("second"));
        assert!(!writer.is_idle());
        writer.flush().unwrap();
        assert!(writer.is_idle());
        let stored = lock(&store).get_task(a).unwrap().unwrap();
        assert_eq!((stored.goal.as_str(), stored.progress), ("first", 0.25));
        drop(writer);
        drop(store);
        // After a restart, the ids of the block are not handed out again.
        let store = Arc::new(Mutex::new(Store::open(dir.path()).unwrap()));
        let writer = TaskWriter::start(store, Duration::from_secs(3600)).unwrap();
        assert!(writer.next_id().unwrap() > b + ID_BLOCK - 2);
    }
}

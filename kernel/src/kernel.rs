//! The kernel's state and the operations on it. The bus adapters in `bus/` translate calls into
//! these methods; everything that decides lives in `policy` and `tasks`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use agentos_data::{NewAuditEntry, NewTask, Store, TaskUpdate};
use agentos_dbus_interfaces::{Error, TaskState};
use tokio::sync::watch;

use crate::agents::AgentSlot;
use crate::clock::Clock;
use crate::identity_cache::IdentityCache;
use crate::policy::Policy;
use crate::tasks::{Task, TaskTable};

/// Settings of a kernel instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the database and artifacts live.
    pub data_dir: PathBuf,
    /// Manifest directories, in order of precedence.
    pub agent_dirs: Vec<PathBuf>,
    /// Where bare `exec` names of manifests are looked up.
    pub exec_dirs: Vec<PathBuf>,
    /// How long the user has to answer a consent prompt.
    pub consent_timeout: Duration,
    /// Default time limit of a task.
    pub task_timeout: Duration,
    /// The user's documents folder, passed to agents as context.
    pub documents_dir: Option<PathBuf>,
    /// The desktop's portal backend for the Access dialog, used when the panel is not running.
    pub desktop_access: Option<String>,
}

/// Who asks the kernel to do something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The user's own host processes (agentctl, the panel).
    Host,
    /// A host process in a desktop app's systemd unit, by principal (`host:<app id>`).
    HostApp(String),
    /// A sandboxed app, by app id.
    App(String),
    /// An agent, acting for one of its tasks.
    Agent { id: String, task: u64 },
}

impl Caller {
    /// How a prompt names an app caller.
    pub fn display_name(&self) -> String {
        match self {
            Caller::Host => "you".into(),
            Caller::HostApp(p) => format!(
                "{} (an app outside any sandbox)",
                p.trim_start_matches("host:")
            ),
            Caller::App(id) => format!("{id} (a sandboxed app)"),
            Caller::Agent { id, .. } => id.clone(),
        }
    }

    /// The subject of a check for an app caller (no task, no manifest ceiling).
    pub fn app_subject(&self, purpose: String) -> crate::authorize::Subject {
        crate::authorize::Subject {
            chain: vec![self.principal().to_string()],
            declared: true,
            task: None,
            purpose,
            display_name: self.display_name(),
        }
    }

    pub fn principal(&self) -> &str {
        match self {
            Caller::Host => "host",
            Caller::HostApp(principal) => principal,
            Caller::App(id) => id,
            Caller::Agent { id, .. } => id,
        }
    }
}

/// Mutable state behind one lock (never held across an await).
#[derive(Default)]
pub(crate) struct Inner {
    pub policy: Policy,
    pub tasks: TaskTable,
    pub agents: BTreeMap<String, AgentSlot>,
    pub watchers: HashMap<u64, watch::Sender<TaskState>>,
    /// Grants being written to the permission store (principal, entry id): not yet there.
    pub mirror_pending: std::collections::HashSet<(String, String)>,
    /// Agents that registered from a Flatpak sandbox (their id is their app id).
    pub flatpak_agents: std::collections::HashSet<String>,
    /// One consent prompt at a time per principal.
    pub prompt_turns: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// How often the user denied each (principal, capability, scope) since the last reset.
    pub denials: HashMap<(String, String, String), u32>,
}

/// The kernel.
pub struct Kernel {
    pub config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    store: Arc<Mutex<Store>>,
    audit: crate::audit::AuditLog,
    inner: Mutex<Inner>,
    pub(crate) bus: OnceLock<zbus::Connection>,
    pub(crate) http: reqwest::Client,
    pub(crate) launch_lock: tokio::sync::Mutex<()>,
    pub(crate) identities: IdentityCache,
    pub(crate) generations: AtomicU64,
    pub(crate) consent_seq: AtomicU64,
}

impl Kernel {
    /// Build a kernel over an opened store: unfinished tasks of an earlier run are marked
    /// interrupted, stored grants loaded, manifests discovered.
    pub fn new(config: Config, clock: Arc<dyn Clock>, store: Store) -> anyhow::Result<Arc<Kernel>> {
        let now = clock.now_ms();
        let interrupted = store.fail_unfinished_tasks(
            "interrupted: the kernel stopped before the task finished",
            now,
        )?;
        if interrupted > 0 {
            tracing::warn!(interrupted, "marked tasks of an earlier run as interrupted");
        }
        let mut inner = Inner::default();
        for g in store.list_grants()? {
            match crate::agents::grant_from_info(&g) {
                Some(grant) => drop(inner.policy.grants.add(grant)),
                None => {
                    tracing::warn!(?g, "ignoring a stored grant the kernel does not understand")
                }
            }
        }
        inner.agents = crate::agents::discover_slots(&config);
        let http = crate::tools::web::client()?;
        let store = Arc::new(Mutex::new(store));
        Ok(Arc::new(Kernel {
            config,
            clock,
            audit: crate::audit::AuditLog::start(Arc::clone(&store), now)?,
            store,
            inner: Mutex::new(inner),
            bus: OnceLock::new(),
            http,
            launch_lock: tokio::sync::Mutex::new(()),
            identities: IdentityCache::default(),
            generations: AtomicU64::new(1),
            consent_seq: AtomicU64::new(1),
        }))
    }

    pub(crate) fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store, for blocking work off the async thread.
    pub(crate) fn store_handle(&self) -> Arc<Mutex<Store>> {
        Arc::clone(&self.store)
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Append an audit record to the journal; when this returns `Ok`, the record survives a
    /// crash of the kernel.
    pub(crate) fn audit(
        &self,
        principal: &str,
        capability: &str,
        scope: &str,
        decision: &str,
        reason: &str,
    ) -> Result<(), Error> {
        let entry = NewAuditEntry {
            time: self.now(),
            principal: principal.to_string(),
            capability: capability.to_string(),
            scope: scope.to_string(),
            decision: decision.to_string(),
            reason: reason.to_string(),
        };
        self.audit.append(entry).map(drop)
    }

    /// Commit every audit record appended so far to the database, before the log is read.
    pub fn commit_audit(&self) -> Result<(), Error> {
        self.audit.commit()
    }

    /// Create a task for `agent` on behalf of `caller` (permission already checked).
    pub(crate) async fn create_task(
        self: &Arc<Self>,
        caller: &Caller,
        agent: &str,
        goal: &str,
        timeout: Option<Duration>,
    ) -> Result<u64, Error> {
        let now = self.now();
        let timeout = timeout.unwrap_or(self.config.task_timeout);
        let deadline = now.saturating_add(timeout.as_millis() as u64);
        let (parent, delegators) = match caller {
            Caller::Agent { task, .. } => {
                let inner = self.inner();
                let t = inner
                    .tasks
                    .get(*task)
                    .ok_or_else(|| Error::UnknownTask(format!("no task {task}")))?;
                (*task, t.chain())
            }
            _ => (0, Vec::new()),
        };
        let new = NewTask {
            parent,
            agent: agent.to_string(),
            caller: caller.principal().to_string(),
            goal: goal.to_string(),
            state: TaskState::Submitted,
            created: now,
            deadline,
        };
        let id = self.store().insert_task(&new).map_err(store_err)?;
        let task = Task::from_new(id, new, delegators);
        {
            let mut inner = self.inner();
            inner.tasks.insert(task.clone());
            inner
                .watchers
                .insert(id, watch::channel(TaskState::Submitted).0);
        }
        crate::bus::task_iface::export(self, id).await;
        if let Some(conn) = self.bus.get() {
            crate::bus::task_iface::announce(conn, &task).await;
        }
        let kernel = Arc::clone(self);
        tokio::spawn(async move { kernel.start_task(id).await });
        Ok(id)
    }

    /// Start the agent if needed and hand it the task.
    async fn start_task(self: Arc<Self>, id: u64) {
        let Some(task) = self.inner().tasks.get(id).cloned() else {
            return;
        };
        if let Err(why) = self.hand_over(id, &task).await {
            self.finish(id, TaskState::Failed, &why, None).await;
        }
    }

    /// Start the task's agent if needed and ask it to take the task; `Err` says why not.
    async fn hand_over(self: &Arc<Self>, id: u64, task: &Task) -> Result<(), String> {
        let instance = self
            .ensure_instance(&task.agent)
            .await
            .map_err(|e| format!("could not start agent {}: {}", task.agent, e.message()))?;
        if self.transition(id, TaskState::Working, None).await.is_err() {
            return Ok(()); // canceled meanwhile
        }
        let mut context: HashMap<&str, zbus::zvariant::Value<'_>> = HashMap::new();
        context.insert("caller", task.caller.as_str().into());
        context.insert("parent", task.parent.into());
        let docs = self
            .config
            .documents_dir
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned());
        if let Some(d) = &docs {
            context.insert("documents_dir", d.as_str().into());
        }
        let start = instance.service.start(id, &task.goal, context);
        match tokio::time::timeout(Duration::from_secs(30), start).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "agent {} refused the task: {}",
                task.agent,
                e.message()
            )),
            Err(_) => Err(format!(
                "agent {} did not accept the task in time",
                task.agent
            )),
        }
    }

    /// Persist a task's current row.
    fn persist(&self, task: &Task) {
        let update = TaskUpdate {
            state: task.state,
            progress: task.progress,
            message: task.message.clone(),
            result: Some(task.result.clone()),
            updated: task.updated,
        };
        if let Err(e) = self.store().update_task(task.id, &update) {
            tracing::error!(task = task.id, error = %e, "cannot persist a task");
        }
    }

    /// Apply a change to one task of the tree; then wake its waiters, persist it and announce it.
    async fn change(
        &self,
        id: u64,
        f: impl FnOnce(&mut TaskTable, u64) -> Result<&Task, crate::tasks::TaskError>,
    ) -> Result<(), Error> {
        let now = self.now();
        let snapshot = {
            let mut inner = self.inner();
            let task = f(&mut inner.tasks, now).map_err(task_err)?.clone();
            if let Some(w) = inner.watchers.get(&id) {
                w.send_if_modified(|s| std::mem::replace(s, task.state) != task.state);
            }
            task
        };
        self.persist(&snapshot);
        if let Some(conn) = self.bus.get() {
            crate::bus::task_iface::announce(conn, &snapshot).await;
        }
        Ok(())
    }

    /// Move an unfinished task to a non-terminal state.
    pub(crate) async fn transition(
        &self,
        id: u64,
        state: TaskState,
        message: Option<&str>,
    ) -> Result<(), Error> {
        self.change(id, |tasks, now| tasks.set_state(id, state, message, now))
            .await
    }

    /// Record progress reported by an agent.
    pub(crate) async fn progress(
        &self,
        id: u64,
        fraction: f64,
        message: &str,
    ) -> Result<(), Error> {
        self.change(id, |tasks, now| {
            tasks.set_progress(id, fraction, message, now)
        })
        .await
    }

    /// Finish a task (completed with `result`, or failed/canceled with `message`). Returns
    /// whether this call finished it (false if it had already finished).
    pub(crate) async fn finish(
        &self,
        id: u64,
        state: TaskState,
        message: &str,
        result: Option<&str>,
    ) -> bool {
        self.change(id, |tasks, now| match result {
            Some(r) if state == TaskState::Completed => tasks.complete(id, r, now),
            _ => tasks.set_state(id, state, Some(message), now),
        })
        .await
        .is_ok()
    }

    /// Cancel a task and its subtree; tells the agents working on them.
    pub(crate) async fn cancel_subtree(&self, id: u64, why: &str, include_root: bool) {
        let ids = self.inner().tasks.subtree(id);
        for tid in ids.into_iter().filter(|t| include_root || *t != id) {
            let agent = self.inner().tasks.get(tid).map(|t| t.agent.clone());
            if self.finish(tid, TaskState::Canceled, why, None).await {
                if let Some(agent) = agent {
                    self.tell_agent_cancel(&agent, tid);
                }
            }
        }
    }

    /// A user-facing cancel, checked: the user may cancel anything; an app only what it started.
    pub async fn cancel(&self, caller: &Caller, id: u64) -> Result<(), Error> {
        let owner = {
            let inner = self.inner();
            let t = inner.tasks.get(id);
            match t {
                Some(t) => root_caller(&inner.tasks, t),
                None => {
                    drop(inner);
                    return match self.store().get_task(id).map_err(store_err)? {
                        Some(_) => Ok(()), // from an earlier run: already finished
                        None => Err(Error::UnknownTask(format!("no task {id}"))),
                    };
                }
            }
        };
        match caller {
            Caller::Host => {}
            other if other.principal() == owner => {}
            _ => {
                return Err(Error::AccessDenied(format!(
                    "task {id} was not started by you"
                )))
            }
        }
        self.cancel_subtree(id, &format!("canceled by {}", caller.principal()), true)
            .await;
        Ok(())
    }

    /// Fail tasks whose deadline passed (and cancel what hangs below them).
    pub async fn expire_overdue(&self) {
        let overdue = self.inner().tasks.overdue(self.now());
        for id in overdue {
            if self
                .finish(
                    id,
                    TaskState::Failed,
                    "timed out: the task took longer than its time limit",
                    None,
                )
                .await
            {
                self.cancel_subtree(id, "canceled: a task above it timed out", false)
                    .await;
                let agent = self.inner().tasks.get(id).map(|t| t.agent.clone());
                if let Some(agent) = agent {
                    self.tell_agent_cancel(&agent, id);
                }
            }
        }
    }

    /// Mark every unfinished task interrupted (clean shutdown).
    pub async fn interrupt_all(&self, why: &str) {
        let ids = self.inner().tasks.unfinished();
        for id in ids {
            self.finish(id, TaskState::Failed, why, None).await;
        }
    }

    /// Wait until a task has finished; returns its final state.
    pub(crate) async fn wait_finished(&self, id: u64) -> Result<TaskState, Error> {
        let mut rx = self
            .inner()
            .watchers
            .get(&id)
            .map(|w| w.subscribe())
            .ok_or_else(|| Error::UnknownTask(format!("no task {id} in this kernel run")))?;
        let state = rx
            .wait_for(|s| s.is_terminal())
            .await
            .map_err(|_| Error::Failed("the kernel is shutting down".into()))?;
        Ok(*state)
    }

    /// A snapshot of a task of this run, or from the store.
    pub fn task_info(&self, id: u64) -> Result<agentos_dbus_interfaces::TaskInfo, Error> {
        if let Some(t) = self.inner().tasks.get(id) {
            return Ok(t.info());
        }
        self.store()
            .get_task(id)
            .map_err(store_err)?
            .ok_or_else(|| Error::UnknownTask(format!("no task {id}")))
    }

    pub(crate) fn next_generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::SeqCst)
    }
}

/// The caller that started the tree a task belongs to.
fn root_caller(tasks: &TaskTable, task: &Task) -> String {
    let mut cur = task;
    for _ in 0..1_000_000 {
        match tasks.get(cur.parent) {
            Some(p) if cur.parent != 0 => cur = p,
            _ => break,
        }
    }
    cur.caller.clone()
}

pub(crate) fn store_err(e: agentos_data::StoreError) -> Error {
    tracing::error!(error = %e, "store error");
    Error::Failed(format!("the kernel's store failed: {e}"))
}

pub(crate) fn task_err(e: crate::tasks::TaskError) -> Error {
    match e {
        crate::tasks::TaskError::Unknown(id) => Error::UnknownTask(format!("no task {id}")),
        e @ crate::tasks::TaskError::Finished { .. } => Error::InvalidArgument(e.to_string()),
    }
}

/// Check a text argument's size and content.
pub(crate) fn check_text(what: &str, s: &str, max: usize, allow_empty: bool) -> Result<(), Error> {
    if !allow_empty && s.trim().is_empty() {
        return Err(Error::InvalidArgument(format!("the {what} is empty")));
    }
    if s.len() > max {
        return Err(Error::InvalidArgument(format!(
            "the {what} is longer than {max} bytes"
        )));
    }
    if s.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "the {what} contains a NUL character"
        )));
    }
    Ok(())
}

/// Most artifacts one task may return, and the largest one.
pub(crate) const MAX_ARTIFACTS: usize = 64;
pub(crate) const MAX_ARTIFACT_BYTES: u64 = 64 * 1024 * 1024;

impl Kernel {
    /// Put a working task straight into the table (tests of what follows a task's start).
    #[cfg(test)]
    pub(crate) fn insert_working(&self, task: Task) {
        let mut inner = self.inner();
        inner
            .watchers
            .insert(task.id, watch::channel(TaskState::Working).0);
        inner.tasks.insert(task);
    }

    /// A kernel over the data in `data_dir` (a restart, when one ran there before), with the
    /// manifests in `agent_dirs`, on a manual clock; for tests.
    #[cfg(test)]
    pub(crate) fn for_test(
        data_dir: &std::path::Path,
        agent_dirs: Vec<std::path::PathBuf>,
        clock: Arc<crate::clock::ManualClock>,
    ) -> Arc<Kernel> {
        let config = Config {
            data_dir: data_dir.into(),
            agent_dirs,
            exec_dirs: vec![],
            consent_timeout: Duration::from_secs(1),
            task_timeout: Duration::from_secs(60),
            documents_dir: None,
            desktop_access: None,
        };
        let store = Store::open(data_dir).expect("store");
        Kernel::new(config, clock, store).expect("kernel")
    }

    /// How many agents the kernel knows (for logs).
    pub fn inner_agent_count(&self) -> usize {
        self.inner().agents.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn kernel(clock: Arc<ManualClock>) -> (tempfile::TempDir, Arc<Kernel>) {
        let dir = tempfile::tempdir().unwrap();
        let k = Kernel::for_test(dir.path(), vec![], clock);
        (dir, k)
    }

    fn running_task(k: &Kernel, id: u64, parent: u64, deadline: u64) {
        k.insert_working(Task::working(id, parent, "a", vec![], k.now(), deadline));
    }

    #[tokio::test]
    async fn deadlines_follow_the_injected_clock() {
        let clock = Arc::new(ManualClock::new(1_000));
        let (_dir, k) = kernel(Arc::clone(&clock));
        running_task(&k, 1, 0, 31_000);
        running_task(&k, 2, 1, 999_999);
        k.expire_overdue().await;
        assert_eq!(k.inner().tasks.get(1).unwrap().state, TaskState::Working);
        clock.advance(30_000);
        k.expire_overdue().await;
        let inner = k.inner();
        let (parent, child) = (inner.tasks.get(1).unwrap(), inner.tasks.get(2).unwrap());
        assert_eq!(parent.state, TaskState::Failed);
        assert!(parent.message.contains("timed out"));
        assert_eq!(parent.updated, 31_000);
        // What hung below it is canceled, not left running.
        assert_eq!(child.state, TaskState::Canceled);
    }

    #[tokio::test]
    async fn grants_and_audit_records_carry_the_clocks_time() {
        let clock = Arc::new(ManualClock::new(5_000));
        let (_dir, k) = kernel(Arc::clone(&clock));
        k.grant("docs", "files.read", "/home/u", "always")
            .await
            .unwrap();
        assert_eq!(k.list_grants()[0].granted_at, 5_000);
        clock.advance(1);
        k.revoke("docs", "files.read", "").await.unwrap();
        k.commit_audit().unwrap();
        let log = k.store().read_audit(0, 10).unwrap();
        assert_eq!(
            log.iter()
                .map(|r| (r.time, r.decision.as_str()))
                .collect::<Vec<_>>(),
            [(5_000, "grant"), (5_001, "revoke")]
        );
        assert!(k.store().verify_audit().unwrap().ok);
    }

    #[tokio::test]
    async fn a_grant_that_replaces_an_always_grant_replaces_it_in_the_store_too() {
        let clock = Arc::new(ManualClock::new(1));
        let (dir, k) = kernel(Arc::clone(&clock));
        k.grant("docs", "files.read", "/home/u", "always")
            .await
            .unwrap();
        k.grant("docs", "files.read", "/home/u", "once")
            .await
            .unwrap();
        assert_eq!(k.list_grants()[0].lifetime, "once");
        assert!(k.store().list_grants().unwrap().is_empty());
        k.commit_audit().unwrap();
        drop(k);
        // After a restart the "always" grant does not come back.
        assert!(Kernel::for_test(dir.path(), vec![], clock)
            .list_grants()
            .is_empty());
    }
}

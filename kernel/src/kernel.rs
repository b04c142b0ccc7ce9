//! The kernel: its parts, each the owner of its own state behind a few methods (agents, tasks,
//! rights, consent, audit, focus), the event stream they publish on, and the clock. The bus
//! adapters in `bus/` call the operations in `operations/`; nothing here knows the adapters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use agentos_data::Store;
use agentos_dbus_interfaces::Error;

use crate::admission::{Admission, Ticket};
use crate::agents::{AgentRegistry, HostServer};
use crate::audit::AuditLog;
use crate::audit_entry::AuditEntry;
use crate::authorize::desk::ConsentDesk;
use crate::clock::Clock;
use crate::config::{Config, TASK_WRITE_TURN};
use crate::events::{Event, EventHub, Kinds};
use crate::focus::Focus;
use crate::identity_cache::IdentityCache;
use crate::policy::quota::{Quotas, LIMITS};
use crate::policy::Grant;
use crate::rights::Rights;
use crate::tasks::{TaskBoard, TaskWriter};

/// The kernel.
pub struct Kernel {
    pub config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    /// What changed, for whoever listens (the bus adapters among them).
    pub(crate) events: EventHub,
    pub(crate) agents: AgentRegistry,
    pub(crate) tasks: TaskBoard,
    pub(crate) rights: Rights,
    pub(crate) consent: ConsentDesk,
    pub(crate) focus: Focus,
    pub(crate) identities: IdentityCache,
    /// What callers and agents may still have the kernel do (tasks, rates, artifacts, channels).
    pub(crate) quotas: Mutex<Quotas>,
    /// Calls in flight per bus connection.
    admission: Arc<Admission>,
    audit: AuditLog,
    store: Arc<Mutex<Store>>,
    pub(crate) task_writer: TaskWriter,
    bus: OnceLock<zbus::Connection>,
    /// The tools agents may call, by name.
    pub(crate) tools: agentos_tools::Registry,
    /// Serves Host1 on agents' private connections (provided by the bus layer).
    pub(crate) host_server: HostServer,
    /// Model inference: providers, the scheduler, requests queued and running.
    pub(crate) broker: Arc<crate::broker::Broker>,
    /// Files shared with Flatpak agents, taken back when their task or grant ends.
    pub(crate) shares: crate::shares::Shared,
    generations: AtomicU64,
}

impl Kernel {
    /// Build a kernel over an opened store: unfinished tasks of an earlier run are marked
    /// interrupted, stored grants loaded, manifests discovered. `host_server` serves Host1 on
    /// each agent's private connection.
    pub fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        store: Store,
        host_server: HostServer,
    ) -> anyhow::Result<Arc<Kernel>> {
        let now = clock.now_ms();
        let interrupted = store.fail_unfinished_tasks(
            "interrupted: the kernel stopped before the task finished",
            now,
        )?;
        if interrupted > 0 {
            tracing::warn!(interrupted, "marked tasks of an earlier run as interrupted");
        }
        let store = Arc::new(Mutex::new(store));
        // The journal an earlier run left is committed first, then the log checked against its
        // checkpoint; a stored grant is honoured only with the audit record that gave it.
        let audit = AuditLog::start(Arc::clone(&store), now)?;
        let mut grants = Vec::new();
        for g in audit.checked_grants(now)? {
            match Grant::from_info(&g) {
                Some(grant) => grants.push(grant),
                None => {
                    tracing::warn!(?g, "ignoring a stored grant the kernel does not understand")
                }
            }
        }
        // Tools first: they bring their capabilities, which manifests may declare.
        let tools = agentos_tools::Registry::builtin();
        let agents = AgentRegistry::discover(&config);
        let kernel = Arc::new(Kernel {
            config,
            clock,
            events: EventHub::default(),
            agents,
            tasks: TaskBoard::default(),
            rights: Rights::with_grants(grants),
            consent: ConsentDesk::numbered_after(crate::authorize::desk::run_base()),
            focus: Focus::default(),
            identities: IdentityCache::default(),
            quotas: Mutex::new(Quotas::new(LIMITS)),
            admission: Admission::new(LIMITS.calls_in_flight),
            audit,
            broker: Arc::new(
                crate::broker::Broker::new(crate::broker::Settings::of_user())
                    .with_store(Arc::clone(&store), now),
            ),
            task_writer: TaskWriter::start(Arc::clone(&store), TASK_WRITE_TURN)?,
            store,
            bus: OnceLock::new(),
            tools,
            host_server,
            shares: Default::default(),
            generations: AtomicU64::new(1),
        });
        // Agents that changed since their grants were given wait for the user's word.
        kernel.check_agents_at_start();
        Ok(kernel)
    }

    /// The bus the kernel serves on, once it does; the kernel uses it as a client of the
    /// desktop's services (consent, permission store, documents).
    pub fn bus(&self) -> Option<&zbus::Connection> {
        self.bus.get()
    }

    /// The kernel is on `conn` now (set once).
    pub fn attach_bus(&self, conn: zbus::Connection) {
        let _ = self.bus.set(conn);
    }

    /// Receive the kernel's events of `kinds` from now on.
    pub fn subscribe(&self, kinds: Kinds) -> tokio::sync::mpsc::UnboundedReceiver<Arc<Event>> {
        self.events.subscribe(kinds)
    }

    /// The store, with every task noted so far written to it (so readers see them all, and
    /// rows that refer to a task find it).
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.write_tasks();
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store, for blocking work off the async thread (tasks written first, as above).
    pub(crate) fn store_handle(&self) -> Arc<Mutex<Store>> {
        self.write_tasks();
        Arc::clone(&self.store)
    }

    /// Write what the task writer holds now, if anything.
    fn write_tasks(&self) {
        if !self.task_writer.is_idle() {
            if let Err(e) = self.task_writer.flush() {
                tracing::error!(error = %e, "cannot write task changes");
            }
        }
    }

    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Append an audit record to the journal; when this returns `Ok`, the record survives a
    /// crash of the kernel.
    pub(crate) fn audit(&self, entry: AuditEntry<'_>) -> Result<(), Error> {
        let record = self.audit.append(entry.at(self.now()))?;
        self.events
            .publish_with(Kinds::AUDIT, || Event::AuditAppended(record));
        Ok(())
    }

    /// Commit every audit record appended so far to the database, before the log is read.
    pub fn commit_audit(&self) -> Result<(), Error> {
        self.audit.commit()
    }

    /// Admit one more slow call of the bus client `client` (a unique name), or refuse it when
    /// it has too many in flight; the ticket is held while the call runs.
    pub fn admit_call(&self, client: &str) -> Result<Ticket, Error> {
        self.admission.enter(client)
    }

    pub(crate) fn quotas(&self) -> MutexGuard<'_, Quotas> {
        self.quotas.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client `name`, which started top-level task `task`, answers its tree's consent
    /// prompts when no graphical provider runs (until it leaves the bus).
    pub fn answer_consent_here(&self, task: u64, name: &str) {
        self.consent.attend(task, name);
    }

    /// A bus client left: forget what was kept for it.
    pub fn client_left(&self, name: &str) {
        self.identities.forget(name);
        self.focus.forget(name);
        self.consent.forget_attendant(name);
    }

    /// Stop: every unfinished task is marked interrupted, and what is pending is written.
    pub fn shut_down(&self, why: &str) {
        self.interrupt_all(why);
        if let Err(e) = self.task_writer.flush() {
            tracing::error!(error = %e, "cannot write the last task changes");
        }
        if let Err(e) = self.commit_audit() {
            // The records stay in the journal and are committed at the next start.
            tracing::error!(error = %e, "cannot commit the audit journal");
        }
    }

    pub(crate) fn next_generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::SeqCst)
    }

    /// How many agents the kernel knows (for logs).
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// A weak handle, for tasks that must not keep the kernel alive.
    pub fn downgrade(self: &Arc<Self>) -> Weak<Kernel> {
        Arc::downgrade(self)
    }
}

pub(crate) fn store_err(e: agentos_data::StoreError) -> Error {
    tracing::error!(error = %e, "store error");
    Error::Failed(format!("the kernel's store failed: {e}"))
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

#[cfg(test)]
impl Kernel {
    /// Put a working task straight into the tree (tests of what follows a task's start).
    pub(crate) fn insert_working(&self, task: crate::tasks::Task) {
        self.tasks.insert(task);
    }

    /// A kernel over the data in `data_dir` (a restart, when one ran there before), with the
    /// manifests in `agent_dirs`, on a manual clock; for tests.
    pub(crate) fn for_test(
        data_dir: &std::path::Path,
        agent_dirs: Vec<std::path::PathBuf>,
        clock: Arc<crate::clock::ManualClock>,
    ) -> Arc<Kernel> {
        let config = Config {
            data_dir: data_dir.into(),
            agent_dirs,
            exec_dirs: vec![],
            trusted_agent_dirs: vec![],
            consent_timeout: std::time::Duration::from_secs(1),
            task_timeout: std::time::Duration::from_secs(60),
            documents_dir: None,
            desktop_access: None,
        };
        let store = Store::open(data_dir).expect("store");
        Kernel::new(config, clock, store, crate::bus::host_server()).expect("kernel")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::tasks::Task;
    use agentos_dbus_interfaces::TaskState;

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
        k.expire_overdue();
        assert_eq!(k.tasks.get(1).unwrap().state, TaskState::Working);
        clock.advance(30_000);
        k.expire_overdue();
        let (parent, child) = (k.tasks.get(1).unwrap(), k.tasks.get(2).unwrap());
        assert_eq!(parent.state, TaskState::Failed);
        assert!(parent.message.contains("timed out"));
        assert_eq!(parent.updated, 31_000);
        // What hung below it is canceled, not left running.
        assert_eq!(child.state, TaskState::Canceled);
    }

    #[tokio::test]
    async fn the_deadline_watch_sleeps_until_the_nearest_deadline() {
        let clock = Arc::new(ManualClock::new(0));
        let (_dir, k) = kernel(Arc::clone(&clock));
        tokio::spawn(Kernel::watch_deadlines(k.downgrade()));
        tokio::task::yield_now().await;
        // A task arrives while the watch sleeps without a timer; its deadline is 200 ms away.
        running_task(&k, 1, 0, 200);
        clock.advance(200);
        let expired = async {
            while k.tasks.get(1).unwrap().state != TaskState::Failed {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), expired)
            .await
            .expect("the task expires at its deadline");
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

    #[tokio::test]
    async fn changes_are_published_as_events_and_written_in_batches() {
        let clock = Arc::new(ManualClock::new(1));
        let (_dir, k) = kernel(Arc::clone(&clock));
        let mut events = k.subscribe(Kinds::TASKS | Kinds::GRANTS | Kinds::AUDIT);
        let id = k
            .store()
            .insert_task(&agentos_data::NewTask {
                parent: 0,
                agent: "a".into(),
                caller: "host".into(),
                goal: "g".into(),
                state: TaskState::Working,
                created: 1,
                deadline: 100_000,
            })
            .unwrap();
        running_task(&k, id, 0, 100_000);
        for i in 0..100 {
            k.progress(id, f64::from(i) / 100.0, "going").unwrap();
        }
        k.grant("docs", "files.read", "/home/u", "session")
            .await
            .unwrap();
        let got: Vec<String> = std::iter::from_fn(|| events.try_recv().ok())
            .map(|e| match &*e {
                Event::TaskChanged(t) => format!("task {}", t.progress),
                Event::AuditAppended(r) => format!("audit {}", r.decision),
                Event::GrantAdded(g) => format!("grant {}", g.scope),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(got.len(), 102);
        assert_eq!(got[99], "task 0.99");
        assert_eq!(got[100..], ["audit grant", "grant /home/u"]);
        // The store sees the last state once the writer's turn is over, or on a flush.
        k.task_writer.flush().unwrap();
        let stored = k.store().get_task(id).unwrap().unwrap();
        assert_eq!(stored.progress, 0.99);
    }
}

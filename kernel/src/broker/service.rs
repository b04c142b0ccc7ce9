//! The broker as a part of the kernel: it owns the scheduler, the catalog of providers, and the
//! requests queued and running, behind a few methods. A request is submitted (refused at once
//! when over a budget or a full queue), waits for its start (`pump` hands each start to its
//! request's runner, `run.rs`), and is finished by its runner, which frees its slot and starts
//! what waits. Cancelling a queued request removes it; cancelling a running one signals its
//! runner, which drops the provider's stream (closing the connection) and finishes at once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use agentos_data::Store;
use agentos_dbus_interfaces::Error;
use agentos_models::{Http, Limits};
use tokio::sync::{oneshot, Notify};

use super::catalog::Catalog;
use super::convert::Signatures;
use super::scheduler::{
    Config, Finished, ProviderConfig, Request, RequestId, SchedError, Scheduler, Start,
};
use super::settings::Settings;
use super::stored_keys::{self, KeysRead};
use super::usage::Usage;
use super::usage_writer::UsageWriter;
use crate::clock::Clock;
use crate::sync::lock;

/// How long a catalog serves before it is looked at again (in the background while a request
/// is waiting on it; `ListModels` waits for the fresh one).
pub const CATALOG_TTL_MS: u64 = 30_000;
/// How old a catalog `ListModels` answers with.
pub const LIST_TTL_MS: u64 = 5_000;

/// Runs one principal may have at once, from submission until the run returns (queued,
/// running, or handing its last line to a caller that does not read it): each holds a task and
/// the answer's socket.
pub const MAX_LIVE_RUNS: usize = 256;

/// What a started request's runner is handed: its start, and the signal that cancels it.
pub type Go = (Start, Arc<Notify>);

/// Who asked for a request, as the broker keeps it (for `Cancel`, and for a task's end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub principal: String,
    /// The app whose tree it works for, if any.
    pub app: Option<String>,
    pub task: u64,
    /// Submitted as interactive work.
    pub interactive: bool,
}

enum Phase {
    Queued(oneshot::Sender<Go>),
    Running(Arc<Notify>),
}

struct Tracked {
    owner: Owner,
    phase: Phase,
}

struct Loaded {
    catalog: Arc<Catalog>,
    /// When it was loaded (`None`: never).
    at: Option<u64>,
}

/// How fresh a catalog a caller needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Any loaded one (a stale one is refreshed in the background).
    Cached,
    /// One at most this old.
    Within(u64),
}

/// The model broker.
pub struct Broker {
    settings: Settings,
    http: Mutex<Option<Http>>,
    scheduler: Mutex<Scheduler>,
    requests: Mutex<HashMap<RequestId, Tracked>>,
    next_id: AtomicU64,
    catalog: Mutex<Loaded>,
    loading: tokio::sync::Mutex<()>,
    /// Wakes the broker's watch (`watch.rs`) to look at the scheduler's next deadline again.
    pub(crate) wake: Notify,
    /// Told when the last request queued or running ends (a permit is kept if nobody waits).
    idle: Arc<Notify>,
    /// When the last request queued or running ended (the broker's start, before any).
    idle_since: Mutex<tokio::time::Instant>,
    watching: AtomicBool,
    pub(crate) signatures: Mutex<Signatures>,
    /// What writes usage to the store (none in tests of the broker alone).
    usage: Option<Arc<UsageWriter>>,
    refreshing: AtomicBool,
    /// Counts the changes of the user's keys (`keys.rs`): a load that began before one is not
    /// taken as fresh.
    keys_changes: AtomicU64,
    following_keys: AtomicBool,
    /// Whether the keyring's changes are being followed now (`keys.rs` subscribed).
    keys_followed: AtomicBool,
    /// The last successful read of the user's keys (see `stored_keys.rs`).
    keys_read: Mutex<Option<KeysRead>>,
    /// Remote providers whose last request did not reach them (they are not probed: a request
    /// costs), listed as unreachable until one does.
    unanswered: Mutex<HashSet<String>>,
    /// Why the last load could not read the user's keys (no Secret Service, a locked keyring),
    /// for a caller told there is no model.
    keys_unread: Mutex<Option<String>>,
    /// The next request's answer socket, made ahead.
    pub(crate) sockets: super::sockets::Spare,
    /// Runs alive per principal (see [`LiveRun`]).
    live: Arc<Mutex<HashMap<String, usize>>>,
}

/// One of a principal's runs, counted until it is dropped (when the run returns).
#[derive(Debug)]
pub struct LiveRun {
    live: Arc<Mutex<HashMap<String, usize>>>,
    principal: String,
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        let mut live = lock(&self.live);
        if let Some(n) = live.get_mut(&self.principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                live.remove(&self.principal);
            }
        }
    }
}

/// A submitted request whose runner has not freed its place yet: if the runner ends without
/// doing so (its task panicked, or was dropped with the runtime), the request is canceled and
/// finished here, so that no slot, queue place or budget charge is left taken.
pub struct Unsettled {
    broker: Arc<Broker>,
    id: Option<RequestId>,
    clock: Arc<dyn Clock>,
}

impl Unsettled {
    pub fn new(broker: Arc<Broker>, id: RequestId, clock: Arc<dyn Clock>) -> Self {
        Unsettled {
            broker,
            id: Some(id),
            clock,
        }
    }

    /// The runner freed the request's place itself.
    pub fn settled(&mut self) {
        self.id = None;
    }
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let now = self.clock.now_ms();
            tracing::warn!(id, "a model request's run ended without freeing its place");
            self.broker.cancel(id, now);
            self.broker.finish(id, Usage::default(), now);
        }
    }
}

impl Broker {
    pub fn new(settings: Settings) -> Broker {
        let mut scheduler = Scheduler::new(Config {
            discipline: settings.discipline,
            budget: settings.default_budget,
            ..Config::default()
        });
        scheduler.set_budget("host", settings.budget_of("host"));
        for (principal, budget) in &settings.budgets {
            scheduler.set_budget(principal, *budget);
        }
        Broker {
            settings,
            http: Mutex::new(None),
            scheduler: Mutex::new(scheduler),
            requests: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            catalog: Mutex::new(Loaded {
                catalog: Arc::new(Catalog::default()),
                at: None,
            }),
            loading: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            idle: Arc::new(Notify::new()),
            idle_since: Mutex::new(tokio::time::Instant::now()),
            watching: AtomicBool::new(false),
            signatures: Mutex::new(Signatures::default()),
            usage: None,
            refreshing: AtomicBool::new(false),
            keys_changes: AtomicU64::new(0),
            following_keys: AtomicBool::new(false),
            keys_followed: AtomicBool::new(false),
            keys_read: Mutex::new(None),
            keys_unread: Mutex::new(None),
            unanswered: Mutex::default(),
            sockets: Default::default(),
            live: Default::default(),
        }
    }

    /// The broker, counting usage in `store`, and its budgets going on from what the
    /// principals spent there in the hour and day of `now`.
    pub fn with_store(mut self, store: Arc<Mutex<Store>>, now: u64) -> Broker {
        match lock(&store).model_spend() {
            Ok(spent) => {
                let mut scheduler = lock(&self.scheduler);
                for s in spent {
                    scheduler.restore_spend(
                        &s.principal,
                        (s.hour, s.hour_tokens),
                        (s.day, s.day_tokens),
                        now,
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read what model budgets were spent"),
        }
        self.usage = Some(UsageWriter::new(store));
        self
    }

    /// What writes finished requests' usage to the store.
    pub(crate) fn usage_writer(&self) -> Option<&Arc<UsageWriter>> {
        self.usage.as_ref()
    }

    /// Where usage is counted.
    pub fn store(&self) -> Option<&Arc<Mutex<Store>>> {
        self.usage.as_ref().map(|w| w.store())
    }

    /// Claim the one background refresh of the catalog; false while another runs.
    pub(crate) fn begin_refresh(&self) -> bool {
        !self.refreshing.swap(true, Ordering::SeqCst)
    }

    pub(crate) fn end_refresh(&self) {
        self.refreshing.store(false, Ordering::SeqCst);
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The HTTP client of every provider, made on first use.
    pub fn http(&self) -> Result<Http, Error> {
        let mut http = lock(&self.http);
        if let Some(h) = &*http {
            return Ok(h.clone());
        }
        let made = Http::new(Limits::default())
            .map_err(|e| Error::Failed(format!("cannot reach model providers: {e}")))?;
        *http = Some(made.clone());
        Ok(made)
    }

    /// Whether the watch runs already; true the first time only for the one caller that starts
    /// it.
    pub(crate) fn start_watching(&self) -> bool {
        !self.watching.swap(true, Ordering::SeqCst)
    }

    /// The catalog, loaded anew when it is older than `fresh` allows (once for all who wait).
    /// A stale one serves `Cached` callers while `reload` (handed back as `true`) runs.
    pub(crate) fn cached_catalog(&self, now: u64, fresh: Freshness) -> (Arc<Catalog>, bool) {
        let loaded = lock(&self.catalog);
        let age = loaded.at.map(|at| now.saturating_sub(at));
        let fresh_enough = match (age, fresh) {
            (None, _) => false,
            (Some(a), Freshness::Cached) => a < CATALOG_TTL_MS,
            (Some(a), Freshness::Within(limit)) => a < limit,
        };
        (Arc::clone(&loaded.catalog), fresh_enough)
    }

    /// Whether a catalog was loaded that may serve while a newer one loads (none after the
    /// user's keys changed).
    pub(crate) fn has_catalog(&self) -> bool {
        lock(&self.catalog).at.is_some()
    }

    /// The user's keys changed: the catalog, which holds them, is loaded anew before its next
    /// use, instead of serving while it loads.
    pub(crate) fn keys_changed(&self) {
        self.keys_changes.fetch_add(1, Ordering::SeqCst);
        lock(&self.catalog).at = None;
    }

    /// Whether the keyring's changes are being followed now: from when `keys.rs` subscribed
    /// until its subscription ends.
    pub(crate) fn set_keys_followed(&self, followed: bool) {
        self.keys_followed.store(followed, Ordering::SeqCst);
    }

    /// Whether the user's keys are followed already; true the first time only for the one
    /// caller that starts following them.
    pub(crate) fn start_following_keys(&self) -> bool {
        !self.following_keys.swap(true, Ordering::SeqCst)
    }

    /// Why the last catalog load could not read the user's keys, if it could not.
    pub(crate) fn keys_unread(&self) -> Option<String> {
        lock(&self.keys_unread).clone()
    }

    /// Load the catalog now (one load at a time; a caller that waited for another's load and
    /// finds it fresh takes that one).
    pub(crate) async fn reload(
        &self,
        bus: Option<zbus::Connection>,
        now: impl Fn() -> u64,
        fresh: Freshness,
    ) -> Result<Arc<Catalog>, Error> {
        let _one = self.loading.lock().await;
        let (current, fresh_enough) = self.cached_catalog(now(), fresh);
        if fresh_enough {
            return Ok(current);
        }
        let changes = self.keys_changes.load(Ordering::SeqCst);
        let http = self.http()?;
        let last = {
            let last = lock(&self.keys_read);
            let followed = self.keys_followed.load(Ordering::SeqCst);
            stored_keys::reusable(last.as_ref(), fresh, followed, changes, now())
                .then(|| last.as_ref().map(|l| l.keys.clone()))
                .flatten()
        };
        let reused = last.is_some();
        let read = async {
            match (last, bus) {
                (Some(last), _) => Ok(last),
                (None, Some(bus)) => stored_keys::read(bus).await,
                (None, None) => Ok(Vec::new()),
            }
        };
        let (mut found, read) = super::providers::load(&http, &self.settings, read).await;
        *lock(&self.keys_unread) = read.as_ref().err().cloned();
        if !reused {
            *lock(&self.keys_read) = read.ok().map(|keys| KeysRead {
                keys,
                changes,
                at: now(),
            });
        }
        // A remote provider is not probed: what its last request found is listed.
        {
            let unanswered = lock(&self.unanswered);
            for p in found.providers.iter_mut().filter(|p| !p.local) {
                p.reachable = !unanswered.contains(&p.name);
            }
        }
        // A local server that answered before and does not now is listed as unreachable.
        for old in &current.providers {
            if old.local && found.get(&old.name).is_none() {
                found.providers.push(super::catalog::Entry {
                    reachable: false,
                    ..old.clone()
                });
            }
        }
        let catalog = Arc::new(found);
        {
            let mut s = lock(&self.scheduler);
            for p in &catalog.providers {
                let cfg = ProviderConfig {
                    slots: p.slots.max(1),
                    reserved: 1,
                    price: Default::default(),
                };
                if let Err(e) = s.add_provider(&p.name, cfg) {
                    tracing::warn!(provider = %p.name, error = %e, "cannot schedule a provider");
                }
            }
        }
        let mut loaded = lock(&self.catalog);
        loaded.catalog = Arc::clone(&catalog);
        // Keys that changed while it loaded may not be in it: it serves this caller only.
        loaded.at = (self.keys_changes.load(Ordering::SeqCst) == changes).then(&now);
        Ok(catalog)
    }

    /// A request to `provider` ended: whether it reached it. One that did not is listed as
    /// unreachable (a remote one until a request reaches it).
    pub fn answered(&self, provider: &str, reached: bool) {
        let mut unanswered = lock(&self.unanswered);
        if reached {
            unanswered.remove(provider);
            return;
        }
        unanswered.insert(provider.to_string());
        drop(unanswered);
        self.unreachable(provider);
    }

    /// A provider did not answer: the catalog says so, and is looked at again next time.
    pub fn unreachable(&self, provider: &str) {
        let mut loaded = lock(&self.catalog);
        let mut catalog = (*loaded.catalog).clone();
        if let Some(p) = catalog.providers.iter_mut().find(|p| p.name == provider) {
            p.reachable = false;
        }
        loaded.catalog = Arc::new(catalog);
        loaded.at = loaded.at.map(|_| 0);
    }

    /// A new request's id.
    pub fn next_id(&self) -> RequestId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Queue `request` (refused at once when over a budget, a rate or a full queue); its runner
    /// waits on the receiver for its start.
    pub fn submit(&self, request: Request, now: u64) -> Result<oneshot::Receiver<Go>, SchedError> {
        let (tx, rx) = oneshot::channel();
        let owner = Owner {
            principal: request.principal.clone(),
            app: request.app.clone(),
            task: request.task,
            interactive: request.interactive,
        };
        let id = request.id;
        // The request is tracked before the scheduler may start it.
        let mut requests = lock(&self.requests);
        lock(&self.scheduler).submit(request, now)?;
        requests.insert(
            id,
            Tracked {
                owner,
                phase: Phase::Queued(tx),
            },
        );
        drop(requests);
        self.pump(now);
        Ok(rx)
    }

    /// Start what may start now, and hand each start to its runner.
    pub fn pump(&self, now: u64) {
        loop {
            let starts = lock(&self.scheduler).next(now);
            if starts.is_empty() {
                break;
            }
            let mut abandoned = Vec::new();
            {
                let mut requests = lock(&self.requests);
                for start in starts {
                    let id = start.id;
                    let Some(tracked) = requests.get_mut(&id) else {
                        abandoned.push(id);
                        continue;
                    };
                    let cancel = Arc::new(Notify::new());
                    let Phase::Queued(tx) =
                        std::mem::replace(&mut tracked.phase, Phase::Running(Arc::clone(&cancel)))
                    else {
                        continue;
                    };
                    if tx.send((start, cancel)).is_err() {
                        // Its runner is gone (the caller left as it started).
                        self.forget(&mut requests, id);
                        abandoned.push(id);
                    }
                }
            }
            if abandoned.is_empty() {
                break;
            }
            let mut s = lock(&self.scheduler);
            for id in abandoned {
                let _ = s.finish(id, Usage::default(), now);
            }
        }
        self.wake.notify_one();
    }

    /// The request ended having used `usage`: its slot is free, its budget settled, its usage
    /// counted, and what waits starts.
    pub fn finish(&self, id: RequestId, usage: Usage, now: u64) -> Option<Finished> {
        self.forget(&mut lock(&self.requests), id);
        let finished = lock(&self.scheduler).finish(id, usage, now).ok();
        self.pump(now);
        finished
    }

    /// Count a new run of `principal`; refused when it has [`MAX_LIVE_RUNS`] already.
    pub fn begin_run(&self, principal: &str) -> Result<LiveRun, Error> {
        let mut live = lock(&self.live);
        let n = live.entry(principal.to_string()).or_default();
        if *n >= MAX_LIVE_RUNS {
            return Err(Error::QuotaExceeded(format!(
                "{MAX_LIVE_RUNS} model requests of yours are still queued, running or being \
                 delivered; read their answers to the end or close them first"
            )));
        }
        *n += 1;
        Ok(LiveRun {
            live: Arc::clone(&self.live),
            principal: principal.to_string(),
        })
    }

    /// Stop tracking request `id`; the idle signal is told when it was the last one.
    fn forget(&self, requests: &mut HashMap<RequestId, Tracked>, id: RequestId) {
        if requests.remove(&id).is_some() && requests.is_empty() {
            *lock(&self.idle_since) = tokio::time::Instant::now();
            self.idle.notify_one();
        }
    }

    /// How many requests were made since the broker began (each took an id).
    pub fn requests_made(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed)
    }

    /// Whether any request is queued or running.
    pub fn busy(&self) -> bool {
        !lock(&self.requests).is_empty()
    }

    /// How long no request has been queued or running (zero while one is).
    pub fn idle_for(&self) -> std::time::Duration {
        if self.busy() {
            return std::time::Duration::ZERO;
        }
        lock(&self.idle_since).elapsed()
    }

    /// Told when the last request queued or running ends.
    pub fn idle_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.idle)
    }

    /// How many interactive requests of `principal`, or of agents working for it (an app), are
    /// queued or running now.
    pub fn interactive_of(&self, principal: &str) -> usize {
        lock(&self.requests)
            .values()
            .filter(|t| {
                t.owner.interactive
                    && (t.owner.principal == principal || t.owner.app.as_deref() == Some(principal))
            })
            .count()
    }

    /// Whether request `id` holds a slot now (it started at once, or has since).
    pub fn running(&self, id: RequestId) -> bool {
        matches!(
            lock(&self.requests).get(&id).map(|t| &t.phase),
            Some(Phase::Running(_))
        )
    }

    /// Who asked for request `id`, if it is queued or running.
    pub fn owner(&self, id: RequestId) -> Option<Owner> {
        lock(&self.requests).get(&id).map(|t| t.owner.clone())
    }

    /// Cancel one request: a queued one never starts (its runner is told), a running one is
    /// stopped by its runner, which frees its slot.
    pub fn cancel(&self, id: RequestId, now: u64) -> bool {
        self.cancel_ids(&[id], now) > 0
    }

    /// Cancel every request of `task`; how many there were.
    pub fn cancel_task(&self, task: u64, now: u64) -> usize {
        let ids: Vec<RequestId> = lock(&self.requests)
            .iter()
            .filter(|(_, t)| t.owner.task == task)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return 0;
        }
        self.cancel_ids(&ids, now)
    }

    fn cancel_ids(&self, ids: &[RequestId], now: u64) -> usize {
        let mut n = 0;
        let mut requests = lock(&self.requests);
        for id in ids {
            match requests.get(id).map(|t| &t.phase) {
                Some(Phase::Running(cancel)) => {
                    cancel.notify_one();
                    n += 1;
                }
                Some(Phase::Queued(_)) => {
                    lock(&self.scheduler).cancel(*id);
                    // Dropping the sender tells the runner.
                    self.forget(&mut requests, *id);
                    n += 1;
                }
                None => {}
            }
        }
        drop(requests);
        if n > 0 {
            self.pump(now);
        }
        n
    }

    /// The user now watches `tasks`: their queued requests become interactive.
    pub fn promote(&self, tasks: &[u64], now: u64) {
        let mut promoted = 0;
        {
            let mut s = lock(&self.scheduler);
            for task in tasks {
                promoted += s.promote_task(*task, now);
            }
        }
        if promoted > 0 {
            self.pump(now);
        }
    }

    /// When the scheduler may start something without a request arriving or ending.
    pub fn next_deadline(&self, now: u64) -> Option<u64> {
        lock(&self.scheduler).next_deadline(now)
    }

    /// Requests running and queued on `provider` (interactive, background), for tests and logs.
    pub fn load_of(&self, provider: &str) -> (u32, (usize, usize)) {
        let s = lock(&self.scheduler);
        (s.running(provider), s.queued(provider))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(slots: u32) -> Broker {
        let b = Broker::new(Settings::default());
        lock(&b.scheduler)
            .add_provider(
                "p",
                ProviderConfig {
                    slots,
                    reserved: 0,
                    price: Default::default(),
                },
            )
            .unwrap();
        b
    }

    fn request(b: &Broker, principal: &str, task: u64) -> Request {
        Request {
            id: b.next_id(),
            provider: "p".into(),
            principal: principal.into(),
            app: None,
            task,
            interactive: false,
            estimated_tokens: 10,
        }
    }

    #[tokio::test]
    async fn starts_go_to_their_runners_and_a_finish_starts_the_next() {
        let b = broker(1);
        let r1 = request(&b, "a", 1);
        let r2 = request(&b, "a", 1);
        let (id1, id2) = (r1.id, r2.id);
        let mut go1 = b.submit(r1, 0).unwrap();
        let mut go2 = b.submit(r2, 0).unwrap();
        let (start, _cancel) = go1.try_recv().expect("the first starts at once");
        assert_eq!(start.id, id1);
        assert!(go2.try_recv().is_err(), "one slot: the second waits");
        assert_eq!(b.owner(id2).unwrap().principal, "a");
        b.finish(id1, Usage::default(), 5);
        assert_eq!(go2.try_recv().unwrap().0.id, id2);
        assert_eq!(b.load_of("p").0, 1);
    }

    #[tokio::test]
    async fn interactive_requests_are_counted_per_principal_until_they_end() {
        let b = broker(1);
        let mut r1 = request(&b, "org.example.App", 0);
        r1.interactive = true;
        let mut r2 = request(&b, "org.example.App", 0);
        r2.interactive = true;
        let r3 = request(&b, "org.example.App", 0);
        let (id1, id2) = (r1.id, r2.id);
        let _go1 = b.submit(r1, 0).unwrap();
        assert_eq!(b.interactive_of("org.example.App"), 1);
        let _go2 = b.submit(r2, 0).unwrap();
        let _go3 = b.submit(r3, 0).unwrap();
        // Running and queued both count; background work does not, nor other principals.
        assert_eq!(b.interactive_of("org.example.App"), 2);
        assert_eq!(b.interactive_of("org.example.Other"), 0);
        // An agent's interactive request in a tree the app started counts for the app.
        let mut r4 = request(&b, "docs", 4);
        r4.app = Some("org.example.App".into());
        r4.interactive = true;
        let id4 = r4.id;
        let _go4 = b.submit(r4, 0).unwrap();
        assert_eq!(b.interactive_of("org.example.App"), 3);
        assert!(b.cancel(id4, 0));
        b.finish(id1, Usage::default(), 1);
        assert_eq!(b.interactive_of("org.example.App"), 1);
        // A running one that is canceled counts until its runner finishes it.
        assert!(b.cancel(id2, 2));
        assert_eq!(b.interactive_of("org.example.App"), 1);
        b.finish(id2, Usage::default(), 3);
        assert_eq!(b.interactive_of("org.example.App"), 0);
    }

    #[tokio::test]
    async fn cancelling_frees_the_queue_and_signals_the_running() {
        let b = broker(1);
        let r1 = request(&b, "a", 7);
        let r2 = request(&b, "b", 7);
        let r3 = request(&b, "b", 8);
        let (id1, id3) = (r1.id, r3.id);
        let mut go1 = b.submit(r1, 0).unwrap();
        let mut go2 = b.submit(r2, 0).unwrap();
        let mut go3 = b.submit(r3, 0).unwrap();
        let (_, cancel) = go1.try_recv().unwrap();
        assert_eq!(b.cancel_task(7, 1), 2);
        // The queued one is told by its sender going away; the running one by its signal.
        assert!(matches!(
            go2.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        tokio::time::timeout(std::time::Duration::from_secs(1), cancel.notified())
            .await
            .expect("the running request is signalled");
        // Its slot frees when its runner finishes it; then the other task's request starts.
        assert!(go3.try_recv().is_err());
        b.finish(id1, Usage::default(), 2);
        assert_eq!(go3.try_recv().unwrap().0.id, id3);
        assert!(!b.cancel(999, 3));
    }

    #[tokio::test]
    async fn a_run_that_ends_unsettled_frees_its_place_queued_or_running() {
        let b = Arc::new(broker(1));
        let r1 = request(&b, "a", 1);
        let r2 = request(&b, "a", 1);
        let r3 = request(&b, "a", 1);
        let (id1, id2, id3) = (r1.id, r2.id, r3.id);
        let mut go1 = b.submit(r1, 0).unwrap();
        let mut go2 = b.submit(r2, 0).unwrap();
        let mut go3 = b.submit(r3, 0).unwrap();
        assert_eq!(go1.try_recv().unwrap().0.id, id1);
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::ManualClock::new(1));
        let unsettled = |id| Unsettled::new(Arc::clone(&b), id, Arc::clone(&clock));
        // A queued request's runner gone: it leaves the queue, and the third keeps waiting.
        drop(unsettled(id2));
        assert!(matches!(
            go2.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(
            go3.try_recv().is_err(),
            "the running one still holds the slot"
        );
        // The running one's runner gone (as when it panicked): its slot goes to the next.
        drop(unsettled(id1));
        assert_eq!(go3.try_recv().unwrap().0.id, id3);
        // One settled by its runner is left alone.
        let mut settled = unsettled(id3);
        settled.settled();
        drop(settled);
        assert_eq!(b.load_of("p").0, 1, "the third still runs");
    }

    #[tokio::test]
    async fn a_start_whose_runner_left_frees_its_slot_at_once() {
        let b = broker(1);
        let r1 = request(&b, "a", 1);
        let r2 = request(&b, "a", 1);
        let (id1, id2) = (r1.id, r2.id);
        let mut go1 = b.submit(r1, 0).unwrap();
        let go2 = b.submit(r2, 0).unwrap();
        assert!(go1.try_recv().is_ok());
        // Request 2's runner leaves while it waits; its start finds nobody and is finished.
        drop(go2);
        b.finish(id1, Usage::default(), 1);
        assert!(b.owner(id2).is_none());
        assert_eq!(b.load_of("p").0, 0);
        let mut go3 = b.submit(request(&b, "a", 1), 2).unwrap();
        assert!(go3.try_recv().is_ok(), "the slot is free");
    }

    #[tokio::test]
    async fn the_idle_signal_is_told_when_the_last_request_ends_however_it_ends() {
        let b = broker(1);
        let idle = b.idle_signal();
        let wait = std::time::Duration::from_millis(200);
        let told = || tokio::time::timeout(wait, idle.notified());
        assert!(!b.busy());
        // Finished, with another still queued: not idle yet.
        let (r1, r2) = (request(&b, "a", 1), request(&b, "a", 1));
        let (id1, id2) = (r1.id, r2.id);
        let _go1 = b.submit(r1, 0).unwrap();
        let _go2 = b.submit(r2, 0).unwrap();
        b.finish(id1, Usage::default(), 1);
        assert!(b.busy());
        assert!(told().await.is_err(), "one request is still running");
        b.finish(id2, Usage::default(), 2);
        assert!(!b.busy());
        assert!(told().await.is_ok(), "the last one finished");
        // One canceled while queued, with another running: not idle until that one ends.
        let r3 = request(&b, "a", 2);
        let r4 = request(&b, "a", 3);
        let id3 = r3.id;
        let _go3 = b.submit(r3, 3).unwrap();
        let _go4 = b.submit(r4, 3).unwrap();
        assert_eq!(b.cancel_task(3, 4), 1);
        assert!(b.busy());
        assert!(told().await.is_err(), "one request is still running");
        b.finish(id3, Usage::default(), 5);
        assert!(told().await.is_ok(), "the last one finished");
        // A start whose runner had left.
        let r5 = request(&b, "a", 4);
        let r6 = request(&b, "a", 4);
        let id5 = r5.id;
        let _go5 = b.submit(r5, 6).unwrap();
        drop(b.submit(r6, 6).unwrap());
        b.finish(id5, Usage::default(), 7);
        assert!(!b.busy());
        assert!(told().await.is_ok(), "the last one's runner was gone");
    }

    #[test]
    fn a_principal_has_at_most_so_many_runs_alive_until_they_return() {
        let b = broker(1);
        let runs: Vec<LiveRun> = (0..MAX_LIVE_RUNS)
            .map(|_| b.begin_run("org.example.App").unwrap())
            .collect();
        let e = b.begin_run("org.example.App").unwrap_err();
        assert!(
            matches!(&e, Error::QuotaExceeded(m) if m.contains("256")),
            "{e:?}"
        );
        // Others are not held back by it.
        let other = b.begin_run("host").unwrap();
        drop(runs.into_iter().next());
        let again = b.begin_run("org.example.App").unwrap();
        drop((other, again));
        assert_eq!(
            lock(&b.live).get("host"),
            None,
            "a principal with none is forgotten"
        );
    }

    #[tokio::test]
    async fn over_budget_is_refused_at_once() {
        let mut settings = Settings::default();
        settings.budgets.insert(
            "a".into(),
            super::super::Budget {
                tokens_per_hour: Some(15),
                ..super::super::Budget::UNLIMITED
            },
        );
        let b = Broker::new(settings);
        lock(&b.scheduler)
            .add_provider("p", ProviderConfig::local(1))
            .unwrap();
        b.submit(request(&b, "a", 1), 0).unwrap();
        let e = b.submit(request(&b, "a", 1), 0).unwrap_err();
        assert!(matches!(e, SchedError::BudgetExhausted { .. }), "{e}");
        // The user's own tools have no budget unless one is set.
        let mut host = request(&b, "host", 0);
        host.estimated_tokens = 1 << 40;
        b.submit(host, 0).unwrap();
    }
}

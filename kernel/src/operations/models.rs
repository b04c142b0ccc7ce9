//! Model inference for callers: agents (`Host1.Chat`, for one of their running tasks), the
//! user's own tools and other apps (`Models1.Chat`). Who may: the user's tools always; an app
//! with the user's grant of `model.use` ("AgentOS"); an agent for its running task. A request a
//! remote provider would serve also needs `model.remote` on that provider, for the agent or app
//! (asked of the user; the user's own tools need none, and their use is recorded). The request
//! is then routed (a local model first), submitted to the scheduler (over a budget, a rate or a
//! full queue is refused at once), and its answer streams on a socket returned to the caller.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use agentos_dbus_interfaces::chat_pipe::Taken;
use agentos_dbus_interfaces::inference::ChatRequest;
use agentos_dbus_interfaces::{names, AgentInfo, AuditDecision, Error, ModelInfo, UsageInfo};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use super::capability;
use crate::audit_entry::AuditEntry;
use crate::broker::catalog::{self, Catalog, Route, RouteError};
use crate::broker::convert::{self, Events};
use crate::broker::run::{self, Account, Job};
use crate::broker::service::{Freshness, Go, LIST_TTL_MS};
use crate::broker::{pricing, Request, SchedError};
use crate::caller::Caller;
use crate::config::SENT_WAIT;
use crate::events::Kinds;
use crate::focus::Watcher;
use crate::kernel::{check_text, Kernel};
use crate::sync::lock;

/// Tokens an answer may take when the request names no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
/// The longest model name a delegation may give its tree.
const MAX_MODEL_NAME: usize = 256;
/// The fewest tokens an answer is given room for.
const MIN_ANSWER_TOKENS: u32 = 256;

/// A request ready for the scheduler: what to submit, the run to start once it is, and the
/// catalog that routed it, if it is due to be looked at again (once the run has begun).
struct Prepared {
    request: Request,
    job: Job,
    catalog_due: CatalogDue,
}

/// A catalog found stale while it served a caller: it is looked at again in the background when
/// this is dropped. A request holds it until its run has begun (or it was refused), so that
/// the look's probes do not go out ahead of it on the kernel's thread, and a refused request
/// has the catalog looked at all the same.
struct CatalogDue(Option<Arc<Kernel>>);

impl CatalogDue {
    /// The catalog was looked at meanwhile: nothing is due.
    fn settled(mut self) {
        self.0 = None;
    }
}

impl Drop for CatalogDue {
    fn drop(&mut self) {
        if let Some(kernel) = self.0.take() {
            kernel.refresh_catalog();
        }
    }
}

/// The room an answer gets: the default, within what the model's window leaves after the prompt.
fn answer_room(context: u32, prompt_tokens: u64) -> u32 {
    if context == 0 {
        return DEFAULT_MAX_TOKENS;
    }
    let left = u64::from(context).saturating_sub(prompt_tokens);
    let left = u32::try_from(left).unwrap_or(u32::MAX);
    left.clamp(MIN_ANSWER_TOKENS, DEFAULT_MAX_TOKENS)
}

/// The app whose word alone says that the user waits for a request of `account` (its request's
/// flag, or its focus on the tree the request works for, `watcher`): that word holds for one
/// of the app's requests at a time, its agents' included. `None` when the user's own tools say
/// so, or no app does.
fn app_vouching(account: &Account, watcher: Option<Watcher>) -> Option<&str> {
    match (account.kind, watcher) {
        ("app", _) => Some(&account.principal),
        (_, Some(Watcher::App)) => account.app.as_deref(),
        _ => None,
    }
}

fn route_error(e: RouteError) -> Error {
    Error::NoModel(e.to_string())
}

fn sched_error(e: SchedError) -> Error {
    match e {
        SchedError::QueueFull { .. }
        | SchedError::RateLimited { .. }
        | SchedError::BudgetExhausted { .. } => Error::QuotaExceeded(e.to_string()),
        other => Error::Failed(format!("the model scheduler refused the request: {other}")),
    }
}

impl Kernel {
    /// The catalog, as fresh as `fresh` asks. A stale one serves `Cached` callers at once, and
    /// is looked at again when the [`CatalogDue`] handed back with it is dropped.
    async fn model_catalog(
        self: &Arc<Self>,
        fresh: Freshness,
    ) -> Result<(Arc<Catalog>, CatalogDue), Error> {
        let (catalog, fresh_enough) = self.broker.cached_catalog(self.now(), fresh);
        if fresh_enough {
            return Ok((catalog, CatalogDue(None)));
        }
        // The keys a load reads are followed from the first load on (not looked at again on
        // each request).
        if let Some(bus) = self.bus() {
            if self.broker.start_following_keys() {
                tokio::spawn(crate::broker::keys::follow(
                    Arc::clone(&self.broker),
                    bus.clone(),
                ));
            }
        }
        if fresh == Freshness::Cached && self.broker.has_catalog() {
            return Ok((catalog, CatalogDue(Some(Arc::clone(self)))));
        }
        let clock = Arc::clone(&self.clock);
        let catalog = self
            .broker
            .reload(self.bus().cloned(), || clock.now_ms(), fresh)
            .await?;
        Ok((catalog, CatalogDue(None)))
    }

    /// Look at the catalog again in the background (one look at a time), after a caller found
    /// it stale.
    fn refresh_catalog(&self) {
        if tokio::runtime::Handle::try_current().is_err() || !self.broker.begin_refresh() {
            return;
        }
        let broker = Arc::clone(&self.broker);
        let clock = Arc::clone(&self.clock);
        let bus = self.bus().cloned();
        tokio::spawn(async move {
            let r = broker
                .reload(bus, || clock.now_ms(), Freshness::Cached)
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot look for model providers");
            }
            broker.end_refresh();
        });
    }

    /// Which provider and model serve `wanted`; a catalog that finds none is looked at again
    /// once (a server may have started since). With them, whether the catalog is due to be
    /// looked at again (see [`Self::model_catalog`]).
    async fn route_model(
        self: &Arc<Self>,
        wanted: Option<&str>,
    ) -> Result<(Route, Arc<Catalog>, CatalogDue), Error> {
        let (catalog, due) = self.model_catalog(Freshness::Cached).await?;
        match catalog.route(wanted) {
            Ok(route) => Ok((route, catalog, due)),
            Err(_) => {
                // Looked at now, not in the background.
                due.settled();
                let (catalog, _) = self.model_catalog(Freshness::Within(1_000)).await?;
                let route = catalog
                    .route(wanted)
                    .map_err(|e| self.no_route(e, &catalog))?;
                Ok((route, catalog, CatalogDue(None)))
            }
        }
    }

    /// The refusal of a request `catalog` finds no model for, with what more is known: a
    /// remote provider missing may only be a keyring that could not be read; a local one, a
    /// server that stopped answering, or looking for them turned off.
    fn no_route(&self, e: RouteError, catalog: &Catalog) -> Error {
        let keys_matter = e.may_be_unread_keys();
        let local = match e {
            RouteError::NoModel | RouteError::NoLocalModel | RouteError::LocalUnreachable(_) => {
                let settings = self.broker.settings();
                catalog::local_servers_said(
                    catalog,
                    settings.ollama.as_deref(),
                    settings.llama_server.as_deref(),
                )
            }
            _ => None,
        };
        match (route_error(e), self.broker.keys_unread(), local) {
            (Error::NoModel(m), Some(why), _) if keys_matter => Error::NoModel(format!(
                "{m} (the stored API keys could not be read: {why})"
            )),
            (Error::NoModel(m), _, Some(local)) => Error::NoModel(format!("{m} ({local})")),
            (e, _, _) => e,
        }
    }

    /// Check the `model` a client's delegation names for its tree (as `agentctl models` lists
    /// them, or a class): one the broker can route now. An app that names a remote one needs
    /// `model.remote` on its provider itself: its agents' grants are not its to spend. Returned
    /// as it is to be asked for.
    pub(crate) async fn task_model(
        self: &Arc<Self>,
        caller: &Caller,
        model: &str,
    ) -> Result<String, Error> {
        let model = model.trim();
        check_text("model", model, MAX_MODEL_NAME, false)?;
        let (route, catalog, due) = self.route_model(Some(model)).await.map_err(|e| match e {
            Error::NoModel(why) => {
                Error::InvalidArgument(format!("the task cannot use the model {model:?}: {why}"))
            }
            other => other,
        })?;
        // No request of this caller's waits on it: looked at again now.
        drop(due);
        if !route.local && !matches!(caller, Caller::Host) {
            let why = catalog.why_remote_for_tree(model, &route);
            self.check_remote(caller, &route.provider, why).await?;
        }
        Ok(model.to_string())
    }

    /// Who says the user watches `task` or a task above it (the user's tools over an app), if
    /// anyone does.
    fn watched(&self, task: u64) -> Option<Watcher> {
        let watched = self.focus.watchers();
        if watched.is_empty() {
            return None;
        }
        let mut id = task;
        let mut found = None;
        for _ in 0..256 {
            if let Ok(at) = watched.binary_search_by_key(&id, |(task, _)| *task) {
                found = found.max(Some(watched[at].1));
                if found == Some(Watcher::User) {
                    break;
                }
            }
            match self.tasks.get(id) {
                Some(t) if t.parent != 0 => id = t.parent,
                _ => break,
            }
        }
        found
    }

    /// The user now watches `task`: the model requests of its tree that wait are served first.
    pub(crate) fn models_follow_focus(&self, task: u64) {
        if task != 0 {
            self.broker.promote(&self.tasks.subtree(task), self.now());
        }
    }

    /// Check that `caller` may send a request to the remote provider `provider`; `why` it goes
    /// there is said in the prompt.
    async fn check_remote(
        self: &Arc<Self>,
        caller: &Caller,
        provider: &str,
        why: String,
    ) -> Result<(), Error> {
        let cap = capability("model.remote")?;
        let scope = cap
            .normalize_scope(provider)
            .map_err(Error::InvalidArgument)?;
        match caller {
            Caller::Host => self.audit(AuditEntry {
                principal: "host",
                capability: cap.name,
                scope: &scope,
                decision: AuditDecision::Allow,
                reason: "the user's own tool",
            }),
            Caller::Agent { id, task } => {
                let mut subject = self.agent_subject(id, *task, cap)?;
                subject.why = Some(why);
                self.authorize(&subject, cap, &scope).await
            }
            Caller::App(_) | Caller::HostApp(_) => {
                let mut subject =
                    caller.app_subject(format!("send its questions to the model provider {scope}"));
                subject.why = Some(why);
                self.authorize(&subject, cap, &scope).await
            }
        }
    }

    /// Check that the app `caller` may use models (`model.use`, asked of the user).
    async fn may_use_models(self: &Arc<Self>, caller: &Caller) -> Result<(), Error> {
        let cap = capability("model.use")?;
        let subject = caller.app_subject("ask questions of AI models".into());
        self.authorize(&subject, cap, names::MODEL_USE_SCOPE).await
    }

    /// Of the remote providers a request leaves to the kernel, the first that `caller` may
    /// use by its lasting `model.remote` grants alone (and every delegator above it): the user
    /// who granted one provider is not asked about another. None: the catalog's pick stands
    /// (and is asked about); the user's own tools need no grant.
    fn granted_remote(&self, caller: &Caller, catalog: &Catalog) -> Result<Option<Route>, Error> {
        let cap = capability("model.remote")?;
        let subject = match caller {
            Caller::Host => return Ok(None),
            Caller::Agent { id, task } => self.agent_subject(id, *task, cap)?,
            Caller::App(_) | Caller::HostApp(_) => caller.app_subject(String::new()),
        };
        Ok(catalog.remote_routes().into_iter().find(|route| {
            cap.normalize_scope(&route.provider)
                .is_ok_and(|scope| self.rights.allows_lasting(subject.request(cap, &scope)))
        }))
    }

    /// Everything before a request goes to the scheduler: who may, which model, the
    /// provider's request.
    async fn prepare_chat(
        self: &Arc<Self>,
        caller: &Caller,
        json: &str,
    ) -> Result<Prepared, Error> {
        let request = ChatRequest::from_json(json).map_err(Error::InvalidArgument)?;
        let (account, interactive, watcher) = match caller {
            Caller::Agent { id, task } => {
                self.tasks.acting(id, *task)?;
                let owner = self
                    .tasks
                    .root_caller(*task)
                    .unwrap_or_else(|| "host".into());
                let app = (owner != "host").then(|| owner.clone());
                let account = Account {
                    kind: "agent",
                    principal: id.clone(),
                    app,
                    task: *task,
                    owner,
                };
                let watcher = self.watched(*task);
                (account, watcher.is_some(), watcher)
            }
            Caller::Host => {
                let account = Account {
                    kind: "host",
                    principal: "host".into(),
                    app: None,
                    task: 0,
                    owner: "host".into(),
                };
                (account, request.interactive, None)
            }
            Caller::App(p) | Caller::HostApp(p) => {
                self.may_use_models(caller).await?;
                let account = Account {
                    kind: "app",
                    principal: p.clone(),
                    app: None,
                    task: 0,
                    owner: p.clone(),
                };
                // An app says itself that the user waits; the kernel cannot see it. So one
                // interactive request per app at a time: more from it queue as background work,
                // and an app cannot crowd out the user's own questions with its "interactive".
                (account, request.interactive, None)
            }
        };
        // A request that names no model uses its tree's, if its delegation named one.
        let named = request
            .model
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty());
        let tree_model = match (named, caller) {
            (None, Caller::Agent { task, .. }) => self.tasks.model_of(*task),
            _ => None,
        };
        let wanted = named.or(tree_model.as_deref());
        let (mut route, catalog, catalog_due) = self.route_model(wanted).await?;
        if !route.local && catalog::any_remote_will_do(wanted) {
            if let Some(granted) = self.granted_remote(caller, &catalog)? {
                route = granted;
            }
        }
        let entry = catalog
            .get(&route.provider)
            .ok_or_else(|| Error::Failed(format!("provider {} vanished", route.provider)))?;
        let client = entry
            .client
            .clone()
            .ok_or_else(|| Error::Failed(format!("provider {} has no client", route.provider)))?;
        if !route.local {
            let why = match &tree_model {
                Some(model) => catalog.why_remote_for_tree(model, &route),
                None => catalog.why_remote(wanted, &route),
            };
            self.check_remote(caller, &route.provider, why).await?;
        }
        // Its task may have ended while it was checked (a prompt, a catalog read): a task's
        // end cancels its requests, and this one is not submitted yet.
        if let Caller::Agent { id, task } = caller {
            self.tasks.acting(id, *task)?;
        }
        let live = self.broker.begin_run(&account.principal)?;
        let prompt_tokens = (json.len() as u64).div_ceil(4);
        let max_tokens = request
            .max_tokens
            .unwrap_or_else(|| answer_room(route.context, prompt_tokens));
        let interactive = interactive
            && app_vouching(&account, watcher)
                .is_none_or(|app| self.broker.interactive_of(app) == 0);
        let id = self.broker.next_id();
        // Whose thought signatures these are: the principal's, in the tree of whoever started
        // it (an agent working for an app and for the user keeps them apart).
        let signer = format!("{}\u{0}{}", account.principal, account.owner);
        let (provider_request, names) = convert::request(
            &request,
            &route.model,
            Some(max_tokens),
            &lock(&self.broker.signatures),
            &signer,
        );
        let request = Request {
            id,
            provider: route.provider.clone(),
            principal: account.principal.clone(),
            app: account.app.clone(),
            task: account.task,
            interactive,
            estimated_tokens: prompt_tokens.saturating_add(u64::from(max_tokens)),
        };
        let job = Job {
            id,
            on_sent: None,
            taken: None,
            price: pricing::price(&route.model, route.local),
            events: Events::new(names, entry.gemini.then(|| format!("g{id}_")), signer),
            route,
            client,
            request: provider_request,
            prompt_tokens,
            account,
            live,
        };
        Ok(Prepared {
            request,
            job,
            catalog_due,
        })
    }

    /// Submit a prepared request to the scheduler: what says when it may start.
    fn submit_chat(&self, request: Request) -> Result<oneshot::Receiver<Go>, Error> {
        let go = self
            .broker
            .submit(request, self.now())
            .map_err(sched_error)?;
        if self.broker.start_watching() {
            tokio::spawn(crate::broker::watch::watch(
                Arc::clone(&self.broker),
                Arc::clone(&self.clock),
                self.subscribe(Kinds::TASKS),
            ));
        }
        Ok(go)
    }

    /// Start a submitted request's run, its answer streaming on `socket`.
    async fn start_run(&self, job: Job, go: oneshot::Receiver<Go>, socket: UnixStream) {
        let run = run::run(
            Arc::clone(&self.broker),
            Arc::clone(&self.clock),
            job,
            go,
            socket,
        );
        crate::sync::begin_here(run).await;
    }

    /// Ask a model for `caller`: returns the request's id and the caller's end of the socket
    /// its answer streams on.
    pub async fn chat(
        self: &Arc<Self>,
        caller: &Caller,
        json: &str,
    ) -> Result<(u64, OwnedFd), Error> {
        let Prepared {
            request,
            mut job,
            catalog_due,
        } = self.prepare_chat(caller, json).await?;
        let (ours, theirs) = self
            .broker
            .sockets
            .take()
            .map_err(|e| Error::Failed(format!("cannot make the answer's socket: {e}")))?;
        let go = self.submit_chat(request)?;
        let (tell, told) = oneshot::channel();
        job.on_sent = Some(tell);
        let id = job.id;
        self.start_run(job, go, ours).await;
        // Started at once: the caller's reply waits (a little at most) for the provider's
        // request to leave, so answering the caller is not in its way. The next answer socket
        // is made after the reply.
        if self.broker.running(id) {
            let _ = tokio::time::timeout(SENT_WAIT, told).await;
        }
        let broker = Arc::clone(&self.broker);
        tokio::spawn(async move { broker.sockets.refill() });
        drop(catalog_due);
        Ok((id, theirs.into()))
    }

    /// Ask a model for `caller`, who sent the request (`json`, or why it could not be read) on
    /// its chat pipe with `socket`: the answer streams on that socket after a first line that
    /// says whether the request was taken (`chat_pipe::Taken`).
    pub async fn chat_on(
        self: &Arc<Self>,
        caller: &Caller,
        json: Result<String, Error>,
        socket: UnixStream,
    ) {
        let prepared = match json {
            Ok(json) => self.prepare_chat(caller, &json).await,
            Err(e) => Err(e),
        };
        let submitted =
            prepared.and_then(|p| Ok((self.submit_chat(p.request)?, p.job, p.catalog_due)));
        match submitted {
            Ok((go, mut job, catalog_due)) => {
                job.taken = Some(Taken::Accepted { id: job.id }.to_line());
                self.start_run(job, go, socket).await;
                // Queued behind the task that writes the request just begun.
                drop(catalog_due);
            }
            Err(e) => run::refuse(socket, &e),
        }
    }

    /// The models the broker can serve now (for an agent: for one of its running tasks).
    pub async fn list_models(self: &Arc<Self>, caller: &Caller) -> Result<Vec<ModelInfo>, Error> {
        match caller {
            Caller::Agent { id, task } => {
                self.tasks.acting(id, *task)?;
            }
            // What the user set up (providers, key accounts) is for an app that may ask them.
            Caller::App(_) | Caller::HostApp(_) => self.may_use_models(caller).await?,
            Caller::Host => {}
        }
        Ok(self
            .model_catalog(Freshness::Within(LIST_TTL_MS))
            .await?
            .0
            .infos())
    }

    /// Cancel one of `caller`'s own model requests.
    pub fn cancel_chat(&self, caller: &Caller, id: u64) -> Result<(), Error> {
        let mine = self
            .broker
            .owner(id)
            .is_some_and(|o| o.principal == caller.principal());
        if !mine || !self.broker.cancel(id, self.now()) {
            return Err(Error::InvalidArgument(format!(
                "no model request {id} of yours is queued or running"
            )));
        }
        Ok(())
    }

    /// For the user's own tools: the file the model settings were read from (empty when there
    /// is none to read) and why it was ignored (empty when it was not).
    pub fn model_settings(&self, caller: &Caller) -> Result<(String, String), Error> {
        if !matches!(caller, Caller::Host) {
            return Err(Error::AccessDenied(
                "only the user's own tools read the model settings".into(),
            ));
        }
        let (file, ignored) = self.broker.settings().source();
        Ok((
            file.map(|f| f.display().to_string()).unwrap_or_default(),
            ignored.unwrap_or_default().to_string(),
        ))
    }

    /// Model use since the store began: every row for the user's own tools, an app's own rows
    /// and its tasks' for an app.
    pub async fn list_usage(&self, caller: &Caller) -> Result<Vec<UsageInfo>, Error> {
        let owner = match caller {
            Caller::Host => None,
            Caller::App(p) | Caller::HostApp(p) => Some(p.clone()),
            Caller::Agent { .. } => {
                return Err(Error::AccessDenied("agents do not read model usage".into()))
            }
        };
        let Some(store) = self.broker.store().cloned() else {
            return Ok(Vec::new());
        };
        super::blocking(move || {
            lock(&store)
                .list_model_usage(owner.as_deref())
                .map_err(crate::kernel::store_err)
        })
        .await
    }

    /// The agents `agent` may hand work to or call (all but itself), for one of its running
    /// tasks: what a planning agent offers its model.
    pub fn agents_for(&self, agent: &str, task: u64) -> Result<Vec<AgentInfo>, Error> {
        self.tasks.acting(agent, task)?;
        Ok(self
            .list_agents()
            .into_iter()
            .filter(|a| a.id != agent)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_gets_room_within_the_window() {
        assert_eq!(answer_room(0, 100), DEFAULT_MAX_TOKENS);
        assert_eq!(answer_room(2048, 1000), 1048);
        assert_eq!(answer_room(100_000, 10), DEFAULT_MAX_TOKENS);
        assert_eq!(answer_room(2048, 5000), MIN_ANSWER_TOKENS);
    }

    #[tokio::test]
    async fn an_agents_request_is_interactive_while_the_user_watches_its_tree() {
        use crate::clock::ManualClock;
        use crate::tasks::Task;
        let dir = tempfile::tempdir().unwrap();
        let k = Kernel::for_test(dir.path(), vec![], Arc::new(ManualClock::new(1)));
        k.insert_working(Task::working(1, 0, "sidekick", vec![], 1, 1_000_000));
        k.insert_working(Task::working(
            2,
            1,
            "docs",
            vec!["sidekick".into()],
            1,
            1_000_000,
        ));
        k.insert_working(Task::working(3, 0, "web", vec![], 1, 1_000_000));
        assert_eq!(k.watched(2), None);
        k.focus.set(":1.7", 1, Watcher::App);
        assert_eq!(k.watched(2), Some(Watcher::App));
        k.focus.set(":1.8", 2, Watcher::User);
        assert_eq!(k.watched(1), Some(Watcher::App));
        assert_eq!(
            k.watched(2),
            Some(Watcher::User),
            "the user's tool over the app"
        );
        assert_eq!(k.watched(3), None);
        k.focus.forget(":1.7");
        k.focus.forget(":1.8");
        assert_eq!(k.watched(2), None);
    }

    #[test]
    fn an_apps_word_that_the_user_waits_is_its_own_and_its_agents_one_at_a_time() {
        let account = |kind: &'static str, principal: &str, app: Option<&str>| Account {
            kind,
            principal: principal.into(),
            app: app.map(String::from),
            task: 0,
            owner: app.unwrap_or("host").into(),
        };
        let app = account("app", "org.example.App", None);
        assert_eq!(app_vouching(&app, None), Some("org.example.App"));
        let agent = account("agent", "docs", Some("org.example.App"));
        assert_eq!(
            app_vouching(&agent, Some(Watcher::App)),
            Some("org.example.App"),
            "the app's focus on its tree"
        );
        assert_eq!(app_vouching(&agent, Some(Watcher::User)), None);
        assert_eq!(app_vouching(&agent, None), None);
        let users = account("agent", "docs", None);
        assert_eq!(app_vouching(&users, Some(Watcher::User)), None);
        assert_eq!(app_vouching(&account("host", "host", None), None), None);
    }

    #[tokio::test]
    async fn a_stale_catalog_is_looked_at_again_once_its_finder_lets_it_go() {
        use crate::broker::service::CATALOG_TTL_MS;
        use crate::clock::ManualClock;
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1));
        let k = Kernel::for_test(dir.path(), vec![], Arc::clone(&clock));
        let fresh = |k: &Kernel| k.broker.cached_catalog(k.now(), Freshness::Cached).1;
        // A first look, made now; then it ages past its time.
        let (_, due) = k.model_catalog(Freshness::Within(0)).await.unwrap();
        assert!(due.0.is_none() && fresh(&k));
        clock.advance(CATALOG_TTL_MS + 1);
        assert!(!fresh(&k));

        // Found stale: it serves at once, and nothing looks at it while the finder holds it.
        let (_, due) = k.model_catalog(Freshness::Cached).await.unwrap();
        assert!(due.0.is_some());
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(!fresh(&k), "looked at before its finder let it go");
        // Let go (a request begun, or refused): looked at in the background.
        drop(due);
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while !fresh(&k) {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the catalog was looked at again");

        // Looked at meanwhile (`settled`): nothing more is due.
        clock.advance(CATALOG_TTL_MS + 1);
        let (_, due) = k.model_catalog(Freshness::Cached).await.unwrap();
        due.settled();
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(!fresh(&k), "looked at although nothing was due");
    }

    #[test]
    fn refusals_are_named() {
        let e = sched_error(SchedError::RateLimited {
            principal: "docs".into(),
            per_minute: 2,
            retry_after_ms: 500,
        });
        assert!(matches!(e, Error::QuotaExceeded(m) if m.contains("2 model requests a minute")));
        assert!(
            matches!(route_error(RouteError::NoModel), Error::NoModel(m) if m.contains("agentctl models add"))
        );
    }
}

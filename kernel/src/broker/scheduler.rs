//! The model scheduler: which queued model requests start, on which provider, and when. Pure
//! (no I/O, no async): the time comes in as milliseconds, and the caller runs what `next` starts
//! and reports back with `finish`.
//!
//! Local model servers (llama.cpp, Ollama) have no priorities, so this queue is the only place
//! where priority can exist. The rules:
//!
//! - **Slots.** Each provider has a number of slots, and never more requests than slots run on
//!   it: the server's own queue stays empty, so the order chosen here is the order served.
//! - **Interactive first.** A request the user waits on (the watched task, `agentctl ask`, the
//!   panel) takes any free slot before background work.
//! - **A held slot.** `reserved` slots of each provider are held back from background work while
//!   an interactive request waits, or one arrived in the last `hold_ms`: background work then
//!   holds at most `slots - reserved` slots. When no interactive request arrived for `hold_ms`,
//!   background work borrows every slot. The hold, rather than holding back only while an
//!   interactive request waits, is what makes the second question of a conversation start at
//!   once: borrowing the slot the moment the first answer ends would make the next question wait
//!   for a whole background generation. `hold_ms = 0` is the plain borrowing rule.
//! - **Round robin.** Within a class, principals (agents, apps) take turns, first in first out
//!   within each.
//! - **Aging.** Background work that has had no slot on a provider for `age_ms` while it waited
//!   takes the next free slot, even the held one, even ahead of interactive requests; then the
//!   clock starts again. Aging counts the time the background class went unserved rather than
//!   each request's wait: under a steady flood every background request waits longer than any
//!   bound in a full queue, and promoting each would turn the scheduler back into FIFO exactly
//!   when priority matters. So background work gets at least one slot per `age_ms`, and with the
//!   queue bounded no request waits forever.
//! - **Admission.** Over a budget or rate, or into a full queue, is an error at submit, never a
//!   wait: `BudgetExhausted`, `RateLimited` (with the retry-after), `QueueFull`.
//!
//! `Discipline::Fifo` serves every request in arrival order with no reservation: the baseline
//! benchmark B3 compares against.

use std::collections::{BTreeMap, HashMap};

use super::budget::{Budget, Budgets, Charge, Refusal};
use super::lanes::Lanes;
pub use super::request::{
    Canceled, Class, Finished, Request, RequestId, SchedError, Start, Ticket,
};
use super::usage::{Ledger, Price, Record, Usage};

/// How long after an interactive request arrived its provider's reserved slots stay held back.
pub const HOLD_MS: u64 = 10_000;
/// How long background work may go without a slot while it waits.
pub const AGE_MS: u64 = 30_000;

/// The order requests are served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discipline {
    /// Interactive first, a held slot, round robin, aging.
    Priority,
    /// Arrival order, no reservation (the baseline).
    Fifo,
}

/// The scheduler's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub discipline: Discipline,
    pub hold_ms: u64,
    pub age_ms: u64,
    /// Requests of one class (interactive, background) queued for one provider.
    pub max_queued: usize,
    /// Requests of one class one principal may have queued for one provider.
    pub max_queued_per_principal: usize,
    /// The budget of principals that have none of their own.
    pub budget: Budget,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            discipline: Discipline::Priority,
            hold_ms: HOLD_MS,
            age_ms: AGE_MS,
            max_queued: 256,
            max_queued_per_principal: 32,
            budget: Budget::UNLIMITED,
        }
    }
}

/// A provider's capacity and price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderConfig {
    /// Requests it serves at once (a llama.cpp server's `--parallel`, Ollama's
    /// `OLLAMA_NUM_PARALLEL`, a remote API's concurrency limit).
    pub slots: u32,
    /// Slots held back from background work (at most `slots`).
    pub reserved: u32,
    pub price: Price,
}

impl ProviderConfig {
    /// A local server: `slots` slots, one held for interactive work, free of charge.
    pub fn local(slots: u32) -> ProviderConfig {
        ProviderConfig {
            slots,
            reserved: 1,
            price: Price::default(),
        }
    }
}

/// A queued or running request, with what it was charged.
#[derive(Debug, Clone)]
struct Entry {
    req: Request,
    submitted_at: u64,
    charges: Vec<Charge>,
}

#[derive(Debug, Clone)]
struct Running {
    entry: Entry,
    started_at: u64,
}

/// The lane of interactive requests and the lane of background ones.
const INTERACTIVE: usize = 0;
const BACKGROUND: usize = 1;

#[derive(Debug, Clone)]
struct Provider {
    cfg: ProviderConfig,
    lanes: [Lanes<Entry>; 2],
    running: u32,
    running_background: u32,
    last_interactive: Option<u64>,
    /// Since when the background lane has been non-empty.
    background_since: u64,
    last_background_start: u64,
}

impl Provider {
    fn holding(&self, now: u64, hold_ms: u64) -> bool {
        !self.lanes[INTERACTIVE].is_empty()
            || self
                .last_interactive
                .is_some_and(|t| now.saturating_sub(t) < hold_ms)
    }

    fn starved(&self, now: u64, age_ms: u64) -> bool {
        !self.lanes[BACKGROUND].is_empty()
            && now.saturating_sub(self.background_since.max(self.last_background_start)) >= age_ms
    }

    /// The lane to start a request from now, and how, if any.
    fn choose(&self, now: u64, config: &Config) -> Option<(usize, Class)> {
        if self.running >= self.cfg.slots {
            return None;
        }
        if config.discipline == Discipline::Fifo {
            return (!self.lanes[BACKGROUND].is_empty()).then_some((BACKGROUND, Class::Background));
        }
        let starved = self.starved(now, config.age_ms);
        if !self.lanes[INTERACTIVE].is_empty() {
            if starved {
                return Some((BACKGROUND, Class::Aged));
            }
            return Some((INTERACTIVE, Class::Interactive));
        }
        if self.lanes[BACKGROUND].is_empty() {
            return None;
        }
        let held = if self.holding(now, config.hold_ms) {
            self.cfg.reserved
        } else {
            0
        };
        if self.running_background < self.cfg.slots.saturating_sub(held) {
            Some((BACKGROUND, Class::Background))
        } else if starved {
            Some((BACKGROUND, Class::Aged))
        } else {
            None
        }
    }
}

/// Queued and running model requests of every provider, the budgets, and the usage.
#[derive(Debug, Clone)]
pub struct Scheduler {
    config: Config,
    providers: BTreeMap<String, Provider>,
    budgets: Budgets,
    ledger: Ledger,
    /// Queued requests' providers.
    queued: HashMap<RequestId, String>,
    running: HashMap<RequestId, Running>,
}

impl Default for Scheduler {
    fn default() -> Scheduler {
        Scheduler::new(Config::default())
    }
}

impl Scheduler {
    pub fn new(config: Config) -> Scheduler {
        Scheduler {
            config,
            providers: BTreeMap::new(),
            budgets: Budgets::new(config.budget),
            ledger: Ledger::default(),
            queued: HashMap::new(),
            running: HashMap::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Add a provider, or change one's slots and price (its queue stays; requests running past
    /// fewer slots finish, and no more start until it is under them).
    pub fn add_provider(&mut self, name: &str, cfg: ProviderConfig) -> Result<(), SchedError> {
        if cfg.slots == 0 {
            return Err(SchedError::NoSlots {
                provider: name.to_string(),
            });
        }
        let cfg = ProviderConfig {
            reserved: cfg.reserved.min(cfg.slots),
            ..cfg
        };
        self.providers
            .entry(name.to_string())
            .and_modify(|p| p.cfg = cfg)
            .or_insert_with(|| Provider {
                cfg,
                lanes: Default::default(),
                running: 0,
                running_background: 0,
                last_interactive: None,
                background_since: 0,
                last_background_start: 0,
            });
        Ok(())
    }

    /// `principal`'s own budget instead of the default one.
    pub fn set_budget(&mut self, principal: &str, budget: Budget) {
        self.budgets.set(principal, budget);
    }

    /// What `principal` had spent of its budgets in the windows `hour` and `day`, before this
    /// scheduler (kept by an earlier run of the kernel).
    pub fn restore_spend(&mut self, principal: &str, hour: (u64, u64), day: (u64, u64), now: u64) {
        self.budgets.restore(principal, hour, day, now);
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The task ended: its usage, forgotten by the ledger.
    pub fn take_task_usage(&mut self, task: u64) -> super::usage::Totals {
        self.ledger.take_task(task)
    }

    /// Requests queued for `provider`: (interactive, background).
    pub fn queued(&self, provider: &str) -> (usize, usize) {
        self.providers.get(provider).map_or((0, 0), |p| {
            (p.lanes[INTERACTIVE].len(), p.lanes[BACKGROUND].len())
        })
    }

    /// Requests running on `provider`.
    pub fn running(&self, provider: &str) -> u32 {
        self.providers.get(provider).map_or(0, |p| p.running)
    }

    /// Queue `request`, or refuse it at once.
    pub fn submit(&mut self, request: Request, now: u64) -> Result<Ticket, SchedError> {
        let config = self.config;
        let Some(provider) = self.providers.get_mut(&request.provider) else {
            return Err(SchedError::UnknownProvider {
                provider: request.provider,
            });
        };
        if self.queued.contains_key(&request.id) || self.running.contains_key(&request.id) {
            return Err(SchedError::DuplicateRequest { id: request.id });
        }
        let (lane, key) = match config.discipline {
            Discipline::Priority if request.interactive => {
                (INTERACTIVE, request.principal.as_str())
            }
            Discipline::Priority => (BACKGROUND, request.principal.as_str()),
            Discipline::Fifo => (BACKGROUND, ""),
        };
        let lanes = &provider.lanes[lane];
        if lanes.len() >= config.max_queued {
            return Err(SchedError::QueueFull {
                provider: request.provider,
                principal: None,
                limit: config.max_queued,
            });
        }
        let mine = match config.discipline {
            Discipline::Priority => lanes.count(key),
            Discipline::Fifo => lanes
                .iter()
                .filter(|e| e.req.principal == request.principal)
                .count(),
        };
        if mine >= config.max_queued_per_principal {
            return Err(SchedError::QueueFull {
                provider: request.provider,
                principal: Some(request.principal),
                limit: config.max_queued_per_principal,
            });
        }
        let mut principals = vec![request.principal.as_str()];
        principals.extend(request.app.as_deref());
        let charges = self
            .budgets
            .admit(&principals, request.estimated_tokens, now)
            .map_err(|(principal, refusal)| match refusal {
                Refusal::Rate {
                    per_minute,
                    retry_after_ms,
                } => SchedError::RateLimited {
                    principal,
                    per_minute,
                    retry_after_ms,
                },
                Refusal::Tokens {
                    window,
                    limit,
                    used,
                    requested,
                    free_at,
                } => SchedError::BudgetExhausted {
                    principal,
                    window,
                    limit,
                    used,
                    requested,
                    free_at,
                    retry_after_ms: free_at.saturating_sub(now),
                },
            })?;
        if request.interactive {
            provider.last_interactive = Some(now);
        }
        if lane == BACKGROUND && provider.lanes[BACKGROUND].is_empty() {
            provider.background_since = now;
        }
        let ticket = Ticket {
            id: request.id,
            ahead: provider.lanes[lane].len(),
        };
        self.queued.insert(request.id, request.provider.clone());
        let key = key.to_string();
        provider.lanes[lane].push(
            &key,
            Entry {
                req: request,
                submitted_at: now,
                charges,
            },
        );
        Ok(ticket)
    }

    /// Start what may start now, provider by provider.
    pub fn next(&mut self, now: u64) -> Vec<Start> {
        let Scheduler {
            config,
            providers,
            queued,
            running,
            ..
        } = self;
        let mut starts = Vec::new();
        for (name, p) in providers.iter_mut() {
            while let Some((lane, class)) = p.choose(now, config) {
                let Some(entry) = p.lanes[lane].pop() else {
                    break;
                };
                let class = match class {
                    Class::Aged => Class::Aged,
                    _ if entry.req.interactive => Class::Interactive,
                    _ => Class::Background,
                };
                p.running += 1;
                if !entry.req.interactive {
                    p.running_background += 1;
                    p.last_background_start = now;
                }
                queued.remove(&entry.req.id);
                starts.push(Start {
                    id: entry.req.id,
                    provider: name.clone(),
                    principal: entry.req.principal.clone(),
                    task: entry.req.task,
                    class,
                    charged_tokens: entry.req.estimated_tokens,
                    waited_ms: now.saturating_sub(entry.submitted_at),
                });
                running.insert(
                    entry.req.id,
                    Running {
                        entry,
                        started_at: now,
                    },
                );
            }
        }
        starts
    }

    /// When `next` may start something without a submit or a finish happening first: a hold
    /// that ends, or background work that comes of age. `None`: only events can.
    pub fn next_deadline(&self, now: u64) -> Option<u64> {
        if self.config.discipline == Discipline::Fifo {
            return None;
        }
        self.providers
            .values()
            .filter(|p| p.running < p.cfg.slots && !p.lanes[BACKGROUND].is_empty())
            .flat_map(|p| {
                let aged = p
                    .background_since
                    .max(p.last_background_start)
                    .saturating_add(self.config.age_ms);
                let held = p
                    .last_interactive
                    .map(|t| t.saturating_add(self.config.hold_ms));
                [Some(aged), held]
            })
            .flatten()
            .filter(|t| *t > now)
            .min()
    }

    /// The request `id` ended (done, failed or aborted) having used `usage`: free its slot,
    /// settle its budget, record its usage.
    pub fn finish(
        &mut self,
        id: RequestId,
        usage: Usage,
        now: u64,
    ) -> Result<Finished, SchedError> {
        let Some(Running { entry, started_at }) = self.running.remove(&id) else {
            return Err(SchedError::NotRunning { id });
        };
        let Entry {
            req,
            submitted_at,
            charges,
        } = entry;
        let price = match self.providers.get_mut(&req.provider) {
            Some(p) => {
                p.running = p.running.saturating_sub(1);
                if !req.interactive {
                    p.running_background = p.running_background.saturating_sub(1);
                }
                p.cfg.price
            }
            None => Price::default(),
        };
        for charge in &charges {
            self.budgets.settle(charge, usage.tokens());
        }
        let record = Record {
            usage,
            busy_ms: now.saturating_sub(started_at),
            waited_ms: started_at.saturating_sub(submitted_at),
            cost_micros: price.cost_micros(usage),
        };
        let mut principals = vec![req.principal.as_str()];
        principals.extend(req.app.as_deref());
        self.ledger
            .record(&req.provider, &principals, req.task, &record);
        Ok(Finished {
            id,
            provider: req.provider,
            principal: req.principal,
            task: req.task,
            record,
        })
    }

    /// Cancel one request: removed if queued (its charge given back), listed as running if it
    /// runs (the caller aborts it, then calls `finish`).
    pub fn cancel(&mut self, id: RequestId) -> Canceled {
        self.cancel_where(|req| req.id == id)
    }

    /// Cancel `task`'s requests.
    pub fn cancel_task(&mut self, task: u64) -> Canceled {
        self.cancel_where(|req| req.task == task)
    }

    /// Cancel `principal`'s requests, and those made for it as an app (it went away).
    pub fn cancel_principal(&mut self, principal: &str) -> Canceled {
        self.cancel_where(|req| req.principal == principal || req.app.as_deref() == Some(principal))
    }

    fn cancel_where(&mut self, f: impl Fn(&Request) -> bool) -> Canceled {
        let mut canceled = Canceled::default();
        for p in self.providers.values_mut() {
            for lane in &mut p.lanes {
                for entry in lane.remove_where(|e| f(&e.req)) {
                    for charge in &entry.charges {
                        self.budgets.release(charge);
                    }
                    self.queued.remove(&entry.req.id);
                    canceled.queued.push(entry.req.id);
                }
            }
        }
        canceled.running = self
            .running
            .iter()
            .filter(|(_, r)| f(&r.entry.req))
            .map(|(id, _)| *id)
            .collect();
        canceled.queued.sort_unstable();
        canceled.running.sort_unstable();
        canceled
    }

    /// The user now waits on `task` (it gained focus): its queued background requests become
    /// interactive. Returns how many did.
    pub fn promote_task(&mut self, task: u64, now: u64) -> usize {
        if self.config.discipline == Discipline::Fifo {
            return 0;
        }
        let mut promoted = 0;
        for p in self.providers.values_mut() {
            let mut moved = p.lanes[BACKGROUND].remove_where(|e| e.req.task == task);
            moved.sort_by_key(|e| (e.submitted_at, e.req.id));
            if !moved.is_empty() {
                p.last_interactive = Some(now);
            }
            promoted += moved.len();
            for mut entry in moved {
                entry.req.interactive = true;
                let key = entry.req.principal.clone();
                p.lanes[INTERACTIVE].push(&key, entry);
            }
        }
        promoted
    }
}

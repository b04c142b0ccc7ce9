//! Property tests of the scheduler: random sequences of submits, starts, finishes, cancels,
//! promotions and time passing, checked against a model that keeps every request.
//!
//! The invariants, exactly:
//! - slots: a provider never runs more requests than it has slots;
//! - interactive first: a request started as `Background` starts while no interactive request
//!   waits on its provider, and with background work then holding fewer than
//!   `slots - held` slots, where `held` is `reserved` if an interactive request arrived (or was
//!   promoted) in the last `hold_ms`, else 0;
//! - aging: a request started as `Aged` is background work whose provider started no background
//!   request for `age_ms` while background work waited;
//! - no idle slot: after `next`, a provider with a free slot has no request that these rules
//!   let start;
//! - refusals: a submit is refused exactly when the model says the queue, the rate or a budget
//!   is full, with that error, so budgets are never exceeded;
//! - nothing dropped, nothing waits forever: every admitted request is started once or canceled
//!   while queued, and once submits stop every queued request starts;
//! - usage: the ledger's totals per principal (an agent, or an app with the requests made for
//!   it) and per task match the finished requests.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;

use super::budget::{Budget, Window, DAY_MS, HOUR_MS, MINUTE_MS};
use super::scheduler::{
    Canceled, Class, Config, Discipline, ProviderConfig, Request, SchedError, Scheduler,
};
use super::usage::{Totals, Usage};

const PROVIDERS: [&str; 3] = ["a", "b", "nowhere"];
const SLOTS: [u32; 2] = [2, 3];
const RESERVED: [u32; 2] = [1, 2];
const WHO: [&str; 3] = ["agent.x", "agent.y", "app.z"];
const HOLD: u64 = 3_000;
const AGE: u64 = 8_000;
const MAX_QUEUED: usize = 6;
const PER_PRINCIPAL: usize = 3;
const PER_HOUR: u64 = 2_000;
const PER_DAY: u64 = 5_000;
const PER_MINUTE: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    Submit {
        provider: usize,
        who: usize,
        app: bool,
        task: u64,
        interactive: bool,
        tokens: u64,
    },
    Next,
    Finish {
        pick: usize,
        percent: u64,
    },
    Cancel(u64),
    CancelPrincipal(usize),
    Promote(u64),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (prop_oneof![19 => 0..2usize, 1 => Just(2usize)], 0..3usize, any::<bool>(), 0..4u64, any::<bool>(), 1..700u64).prop_map(
            |(provider, who, app, task, interactive, tokens)| Op::Submit { provider, who, app, task, interactive, tokens }
        ),
        3 => Just(Op::Next),
        5 => (any::<usize>(), 0..=100u64).prop_map(|(pick, percent)| Op::Finish { pick, percent }),
        1 => (0..4u64).prop_map(Op::Cancel),
        1 => (0..3usize).prop_map(Op::CancelPrincipal),
        1 => (0..4u64).prop_map(Op::Promote),
        4 => (0..5_000u64).prop_map(Op::Advance),
        1 => (0..2 * HOUR_MS).prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone)]
struct Queued {
    provider: usize,
    who: usize,
    app: bool,
    task: u64,
    interactive: bool,
    tokens: u64,
}

#[derive(Debug, Clone)]
struct Running {
    provider: usize,
    who: usize,
    app: bool,
    task: u64,
    background: bool,
    tokens: u64,
    started: u64,
}

/// What an admitted request is charged in its windows.
#[derive(Debug, Clone)]
struct Admitted {
    /// The principals charged: the one that asked, and the app (`WHO[APP]`) it asked for.
    to: Vec<usize>,
    at: u64,
    charged: u64,
}

#[derive(Debug, Default)]
struct Model {
    queued: BTreeMap<u64, Queued>,
    running: BTreeMap<u64, Running>,
    admitted: HashMap<u64, Admitted>,
    started: BTreeSet<u64>,
    canceled: BTreeSet<u64>,
    last_interactive: [Option<u64>; 2],
    background_since: [u64; 2],
    last_background_start: [u64; 2],
    by_who: [Totals; 3],
    total: Totals,
}

/// The index of the app in `WHO`.
const APP: usize = 2;

/// The principals a request of `who` (for the app when `app`) is charged to, each once.
fn charged_to(who: usize, app: bool) -> Vec<usize> {
    if app && who != APP {
        vec![who, APP]
    } else {
        vec![who]
    }
}

impl Model {
    fn waiting(&self, p: usize, interactive: bool) -> usize {
        self.queued
            .values()
            .filter(|q| q.provider == p && q.interactive == interactive)
            .count()
    }

    fn running_on(&self, p: usize) -> (u32, u32) {
        let on = self.running.values().filter(|r| r.provider == p);
        let all = on.clone().count() as u32;
        (all, on.filter(|r| r.background).count() as u32)
    }

    fn held(&self, p: usize, now: u64) -> u32 {
        let recent = self.last_interactive[p].is_some_and(|t| now.saturating_sub(t) < HOLD);
        if self.waiting(p, true) > 0 || recent {
            RESERVED[p]
        } else {
            0
        }
    }

    fn starved(&self, p: usize, now: u64) -> bool {
        self.waiting(p, false) > 0
            && now.saturating_sub(self.background_since[p].max(self.last_background_start[p]))
                >= AGE
    }

    /// Tokens charged to `who` in the hour and the day of `now`.
    fn spent(&self, who: usize, now: u64) -> (u64, u64) {
        let mine = self.admitted.values().filter(|a| a.to.contains(&who));
        let hour = mine
            .clone()
            .filter(|a| a.at / HOUR_MS == now / HOUR_MS)
            .map(|a| a.charged)
            .sum();
        let day = mine
            .filter(|a| a.at / DAY_MS == now / DAY_MS)
            .map(|a| a.charged)
            .sum();
        (hour, day)
    }

    /// The error a submit must get, if any, and whose limit it is.
    fn refusal(
        &self,
        provider: usize,
        who: usize,
        app: bool,
        interactive: bool,
        tokens: u64,
        now: u64,
    ) -> Option<String> {
        if provider >= 2 {
            return Some("unknown".into());
        }
        let class = self
            .queued
            .values()
            .filter(|q| q.provider == provider && q.interactive == interactive);
        if class.clone().count() >= MAX_QUEUED {
            return Some("queue".into());
        }
        if class.filter(|q| q.who == who).count() >= PER_PRINCIPAL {
            return Some(format!("queue of {}", WHO[who]));
        }
        for p in charged_to(who, app) {
            let minute = self
                .admitted
                .values()
                .filter(|a| a.to.contains(&p) && a.at + MINUTE_MS > now)
                .count();
            if minute >= PER_MINUTE {
                return Some(format!("rate of {}", WHO[p]));
            }
            let (hour, day) = self.spent(p, now);
            if hour + tokens > PER_HOUR {
                return Some(format!("hour of {}", WHO[p]));
            }
            if day + tokens > PER_DAY {
                return Some(format!("day of {}", WHO[p]));
            }
        }
        None
    }
}

fn name(e: &SchedError) -> String {
    match e {
        SchedError::UnknownProvider { .. } => "unknown".into(),
        SchedError::QueueFull {
            principal: None, ..
        } => "queue".into(),
        SchedError::QueueFull {
            principal: Some(p), ..
        } => format!("queue of {p}"),
        SchedError::RateLimited { principal, .. } => format!("rate of {principal}"),
        SchedError::BudgetExhausted {
            window: Window::Hour,
            principal,
            ..
        } => format!("hour of {principal}"),
        SchedError::BudgetExhausted { principal, .. } => format!("day of {principal}"),
        e => format!("{e:?}"),
    }
}

fn scheduler() -> Scheduler {
    let mut s = Scheduler::new(Config {
        discipline: Discipline::Priority,
        hold_ms: HOLD,
        age_ms: AGE,
        max_queued: MAX_QUEUED,
        max_queued_per_principal: PER_PRINCIPAL,
        budget: Budget {
            tokens_per_hour: Some(PER_HOUR),
            tokens_per_day: Some(PER_DAY),
            requests_per_minute: Some(PER_MINUTE as u32),
        },
    });
    for p in 0..2 {
        let cfg = ProviderConfig {
            slots: SLOTS[p],
            reserved: RESERVED[p],
            price: Default::default(),
        };
        s.add_provider(PROVIDERS[p], cfg).unwrap();
    }
    s
}

/// `next`, checked against the model.
fn next(s: &mut Scheduler, m: &mut Model, now: u64) -> Result<(), TestCaseError> {
    for start in s.next(now) {
        let Some(q) = m.queued.remove(&start.id) else {
            return Err(TestCaseError::fail(format!("{start:?} was not queued")));
        };
        let p = q.provider;
        prop_assert_eq!(start.provider.as_str(), PROVIDERS[p]);
        prop_assert!(m.started.insert(start.id), "{} started twice", start.id);
        let (running, background) = m.running_on(p);
        prop_assert!(running < SLOTS[p], "{:?} past the slots", start);
        match start.class {
            Class::Interactive => prop_assert!(q.interactive),
            Class::Background => {
                prop_assert!(!q.interactive);
                prop_assert_eq!(
                    m.waiting(p, true),
                    0,
                    "{:?} while interactive work waits",
                    start
                );
                prop_assert!(
                    background < SLOTS[p] - m.held(p, now),
                    "{:?} in a held slot",
                    start
                );
            }
            Class::Aged => {
                prop_assert!(!q.interactive);
                // The model's queue still holds nothing of this start: put it back to ask.
                m.queued.insert(start.id, q.clone());
                let starved = m.starved(p, now);
                m.queued.remove(&start.id);
                prop_assert!(starved, "{:?} aged too early", start);
            }
        }
        if !q.interactive {
            m.last_background_start[p] = now;
        }
        m.running.insert(
            start.id,
            Running {
                provider: p,
                who: q.who,
                app: q.app,
                task: q.task,
                background: !q.interactive,
                tokens: q.tokens,
                started: now,
            },
        );
    }
    for p in 0..2 {
        let (running, background) = m.running_on(p);
        prop_assert_eq!(s.running(PROVIDERS[p]), running);
        if running == SLOTS[p] {
            continue;
        }
        prop_assert_eq!(
            m.waiting(p, true),
            0,
            "an interactive request waits by a free slot"
        );
        let may = background < SLOTS[p] - m.held(p, now) || m.starved(p, now);
        prop_assert!(
            m.waiting(p, false) == 0 || !may,
            "background work waits by a slot it may take"
        );
    }
    Ok(())
}

fn finish(
    s: &mut Scheduler,
    m: &mut Model,
    id: u64,
    percent: u64,
    now: u64,
) -> Result<(), TestCaseError> {
    let Some(r) = m.running.remove(&id) else {
        return Ok(());
    };
    let used = r.tokens * percent / 100;
    let usage = Usage {
        tokens_in: used / 2,
        tokens_out: used - used / 2,
    };
    let f = s
        .finish(id, usage, now)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(f.record.busy_ms, now - r.started);
    prop_assert_eq!(f.task, r.task);
    if let Some(a) = m.admitted.get_mut(&id) {
        a.charged = used;
    }
    for p in charged_to(r.who, r.app) {
        let t = &mut m.by_who[p];
        t.requests += 1;
        t.tokens_in += usage.tokens_in;
        t.tokens_out += usage.tokens_out;
        t.busy_ms += now - r.started;
    }
    m.total.requests += 1;
    m.total.tokens_in += usage.tokens_in;
    m.total.tokens_out += usage.tokens_out;
    Ok(())
}

/// A cancellation, checked against the model: `queued` and `running` select what it cancels.
fn cancel(
    m: &mut Model,
    c: Canceled,
    queued: impl Fn(&Queued) -> bool,
    running: impl Fn(&Running) -> bool,
) -> Result<(), TestCaseError> {
    let want: Vec<u64> = m
        .queued
        .iter()
        .filter(|(_, q)| queued(q))
        .map(|(id, _)| *id)
        .collect();
    let want_running: Vec<u64> = m
        .running
        .iter()
        .filter(|(_, r)| running(r))
        .map(|(id, _)| *id)
        .collect();
    prop_assert_eq!(&c.queued, &want);
    prop_assert_eq!(&c.running, &want_running);
    for id in want {
        m.queued.remove(&id);
        m.canceled.insert(id);
        if let Some(a) = m.admitted.get_mut(&id) {
            a.charged = 0;
        }
    }
    Ok(())
}

fn check(s: &Scheduler, m: &Model, now: u64) -> Result<(), TestCaseError> {
    for (who, name) in WHO.iter().enumerate() {
        let (hour, day) = m.spent(who, now);
        prop_assert!(hour <= PER_HOUR && day <= PER_DAY);
        let t = s.ledger().principal(name);
        let want = m.by_who[who];
        prop_assert_eq!(
            (t.requests, t.tokens_in, t.tokens_out, t.busy_ms),
            (want.requests, want.tokens_in, want.tokens_out, want.busy_ms)
        );
    }
    let mut by_task = Totals::default();
    for (_, t) in s.ledger().tasks() {
        by_task.requests += t.requests;
        by_task.tokens_in += t.tokens_in;
        by_task.tokens_out += t.tokens_out;
    }
    let Totals {
        requests,
        tokens_in,
        tokens_out,
        ..
    } = m.total;
    prop_assert_eq!(
        (by_task.requests, by_task.tokens_in, by_task.tokens_out),
        (requests, tokens_in, tokens_out)
    );
    for (p, provider) in PROVIDERS.iter().take(2).enumerate() {
        prop_assert_eq!(
            s.queued(provider),
            (m.waiting(p, true), m.waiting(p, false))
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_scheduler_keeps_its_rules(ops in proptest::collection::vec(op(), 1..300), start in 0..DAY_MS) {
        let mut s = scheduler();
        let mut m = Model::default();
        let mut now = 20_000 * DAY_MS + start;
        let mut id = 0;
        for op in ops {
            match op {
                Op::Submit { provider, who, app, task, interactive, tokens } => {
                    id += 1;
                    let want = m.refusal(provider, who, app, interactive, tokens, now);
                    let got = s.submit(Request {
                        id,
                        provider: PROVIDERS[provider].to_string(),
                        principal: WHO[who].to_string(),
                        app: app.then(|| WHO[APP].to_string()),
                        task,
                        interactive,
                        estimated_tokens: tokens,
                    }, now);
                    prop_assert_eq!(got.as_ref().err().map(name), want.clone(), "{:?}", got);
                    if let Err(SchedError::RateLimited { retry_after_ms, .. }) = got {
                        prop_assert!(retry_after_ms > 0 && retry_after_ms <= MINUTE_MS);
                    }
                    if want.is_none() {
                        if !interactive && m.waiting(provider, false) == 0 {
                            m.background_since[provider] = now;
                        }
                        if interactive {
                            m.last_interactive[provider] = Some(now);
                        }
                        m.queued.insert(id, Queued { provider, who, app, task, interactive, tokens });
                        m.admitted.insert(id, Admitted { to: charged_to(who, app), at: now, charged: tokens });
                    }
                }
                Op::Next => next(&mut s, &mut m, now)?,
                Op::Finish { pick, percent } => {
                    let ids: Vec<u64> = m.running.keys().copied().collect();
                    if !ids.is_empty() {
                        finish(&mut s, &mut m, ids[pick % ids.len()], percent, now)?;
                    }
                }
                Op::Cancel(task) => {
                    let c = s.cancel_task(task);
                    cancel(&mut m, c, |q| q.task == task, |r| r.task == task)?;
                }
                Op::CancelPrincipal(who) => {
                    let c = s.cancel_principal(WHO[who]);
                    let of = |w: usize, app: bool| w == who || (app && who == APP);
                    cancel(&mut m, c, |q| of(q.who, q.app), |r| of(r.who, r.app))?;
                }
                Op::Promote(task) => {
                    let n = s.promote_task(task, now);
                    let mut promoted = 0;
                    for q in m.queued.values_mut().filter(|q| q.task == task && !q.interactive) {
                        q.interactive = true;
                        m.last_interactive[q.provider] = Some(now);
                        promoted += 1;
                    }
                    prop_assert_eq!(n, promoted);
                }
                Op::Advance(ms) => now += ms,
            }
            check(&s, &m, now)?;
        }
        // Submits stop: every queued request starts, round after round.
        let rounds = m.queued.len() + 1;
        for _ in 0..rounds {
            now += AGE;
            next(&mut s, &mut m, now)?;
            let ids: Vec<u64> = m.running.keys().copied().collect();
            for id in ids {
                finish(&mut s, &mut m, id, 100, now)?;
            }
            check(&s, &m, now)?;
        }
        prop_assert!(m.queued.is_empty(), "still waiting: {:?}", m.queued);
        // Nothing dropped: every admitted request started once or was canceled while queued.
        for id in m.admitted.keys() {
            prop_assert!(m.started.contains(id) != m.canceled.contains(id), "{id}");
        }
        prop_assert_eq!(m.started.len() + m.canceled.len(), m.admitted.len());
    }
}

//! Unit tests of the scheduler: the held slot, round robin, aging, refusals, cancellation,
//! promotion and FIFO, each on a small case.

use super::budget::Budget;
use super::scheduler::*;
use super::usage::{Price, Usage};

fn req(id: u64, principal: &str, interactive: bool) -> Request {
    Request {
        id,
        provider: "local".into(),
        principal: principal.into(),
        app: None,
        task: id,
        interactive,
        estimated_tokens: 100,
    }
}

fn ids(starts: &[Start]) -> Vec<u64> {
    starts.iter().map(|s| s.id).collect()
}

fn local(slots: u32) -> Scheduler {
    let mut s = Scheduler::default();
    s.add_provider("local", ProviderConfig::local(slots))
        .unwrap();
    s
}

#[test]
fn background_leaves_the_held_slot_while_interactive_work_is_recent() {
    let mut s = local(2);
    for id in 1..=4 {
        s.submit(req(id, "bg", false), 0).unwrap();
    }
    // Nothing interactive yet: background borrows both slots.
    assert_eq!(ids(&s.next(0)), [1, 2]);
    s.submit(req(10, "user", true), 100).unwrap();
    assert!(s.next(100).is_empty());
    // A slot frees: the interactive request takes it, not background 3.
    s.finish(1, Usage::default(), 200).unwrap();
    let started = s.next(200);
    assert_eq!(ids(&started), [10]);
    assert_eq!(started[0].waited_ms, 100);
    // While the hold lasts, background holds at most one slot.
    s.finish(10, Usage::default(), 300).unwrap();
    assert!(s.next(300).is_empty());
    // The hold ends 10 s after the interactive request arrived: background borrows again.
    assert_eq!(s.next_deadline(300), Some(100 + HOLD_MS));
    assert_eq!(ids(&s.next(100 + HOLD_MS)), [3]);
}

#[test]
fn principals_take_turns() {
    let mut s = local(1);
    for id in 1..=3 {
        s.submit(req(id, "flood", false), 0).unwrap();
    }
    s.submit(req(4, "other", false), 1).unwrap();
    let mut order = Vec::new();
    for t in 0..4 {
        let started = s.next(t);
        order.extend(ids(&started));
        for st in started {
            s.finish(st.id, Usage::default(), t).unwrap();
        }
    }
    assert_eq!(order, [1, 4, 2, 3]);
}

#[test]
fn background_starved_by_interactive_work_gets_a_slot_after_age_ms() {
    let mut s = local(1);
    s.submit(req(1, "bg", false), 0).unwrap();
    s.submit(req(2, "user", true), 0).unwrap();
    assert_eq!(ids(&s.next(0)), [2]);
    let (mut running, mut t, mut id) = (2, 0, 100);
    // One interactive request after another, each arriving before the last ends.
    loop {
        id += 1;
        s.submit(req(id, "user", true), t).unwrap();
        t += 1000;
        s.finish(running, Usage::default(), t).unwrap();
        let started = s.next(t);
        assert_eq!(started.len(), 1);
        running = started[0].id;
        if t < AGE_MS {
            assert_eq!(started[0].class, Class::Interactive);
        } else {
            assert_eq!((started[0].id, started[0].class), (1, Class::Aged));
            break;
        }
    }
}

#[test]
fn refusals_are_named_and_immediate() {
    let mut s = Scheduler::new(Config {
        max_queued: 3,
        max_queued_per_principal: 2,
        budget: Budget {
            tokens_per_hour: Some(250),
            tokens_per_day: None,
            requests_per_minute: Some(2),
        },
        ..Config::default()
    });
    assert_eq!(
        s.add_provider("none", ProviderConfig::local(0)),
        Err(SchedError::NoSlots {
            provider: "none".into()
        })
    );
    s.add_provider("local", ProviderConfig::local(1)).unwrap();
    let mut r = req(1, "a", false);
    r.provider = "cloud".into();
    assert!(matches!(
        s.submit(r, 0),
        Err(SchedError::UnknownProvider { .. })
    ));
    s.submit(req(1, "a", false), 0).unwrap();
    assert_eq!(
        s.submit(req(1, "a", false), 0),
        Err(SchedError::DuplicateRequest { id: 1 })
    );
    s.submit(req(2, "a", false), 0).unwrap();
    let e = s.submit(req(3, "a", false), 0).unwrap_err();
    assert!(matches!(
        e,
        SchedError::QueueFull {
            principal: Some(_),
            limit: 2,
            ..
        }
    ));
    s.submit(req(3, "b", false), 0).unwrap();
    let e = s.submit(req(4, "c", false), 0).unwrap_err();
    assert!(matches!(
        e,
        SchedError::QueueFull {
            principal: None,
            limit: 3,
            ..
        }
    ));
    // An interactive request has its own queue, but "a" made its two requests this minute.
    let e = s.submit(req(4, "a", true), 1000).unwrap_err();
    assert_eq!(
        e,
        SchedError::RateLimited {
            principal: "a".into(),
            per_minute: 2,
            retry_after_ms: 59_000
        }
    );
    assert!(e.to_string().contains("try again in 59000 ms"), "{e}");
    // "a" has 200 of its 250 tokens charged.
    let e = s.submit(req(4, "a", true), 60_000).unwrap_err();
    assert!(matches!(
        e,
        SchedError::BudgetExhausted {
            used: 200,
            limit: 250,
            requested: 100,
            ..
        }
    ));
    assert!(e.to_string().contains("renews in 59 min"), "{e}");
    // Canceling gives the tokens of what never ran back.
    assert_eq!(
        s.cancel_task(2),
        Canceled {
            queued: vec![2],
            running: vec![]
        }
    );
    s.submit(req(4, "a", true), 60_000).unwrap();
}

#[test]
fn cancel_removes_queued_and_returns_running_and_usage_is_recorded() {
    let mut s = Scheduler::default();
    s.add_provider(
        "cloud",
        ProviderConfig {
            slots: 1,
            reserved: 0,
            price: Price {
                per_mtok_in: 1_000_000,
                per_mtok_out: 2_000_000,
            },
        },
    )
    .unwrap();
    let mut a = req(1, "agent", false);
    a.provider = "cloud".into();
    a.task = 7;
    let b = Request { id: 2, ..a.clone() };
    s.submit(a, 0).unwrap();
    s.submit(b, 0).unwrap();
    assert_eq!(ids(&s.next(10)), [1]);
    let c = s.cancel_task(7);
    assert_eq!((c.queued, c.running), (vec![2], vec![1]));
    // The caller aborts 1, and finishes it with what it used.
    let usage = Usage {
        tokens_in: 1000,
        tokens_out: 500,
    };
    let f = s.finish(1, usage, 510).unwrap();
    assert_eq!(f.record.busy_ms, 500);
    assert_eq!(f.record.waited_ms, 10);
    assert_eq!(f.record.cost_micros, 2000);
    assert_eq!(
        s.finish(1, usage, 510),
        Err(SchedError::NotRunning { id: 1 })
    );
    assert_eq!(s.ledger().principal("agent").tokens_out, 500);
    assert_eq!(s.take_task_usage(7).requests, 1);
    assert!(s.next(600).is_empty());
    assert_eq!(s.running("cloud"), 0);
}

#[test]
fn a_watched_task_goes_first() {
    let mut s = local(1);
    s.submit(req(1, "a", false), 0).unwrap();
    s.submit(req(2, "b", false), 0).unwrap();
    s.submit(req(3, "b", false), 0).unwrap();
    assert_eq!(ids(&s.next(0)), [1]);
    assert_eq!(s.promote_task(3, 5), 1);
    assert_eq!(s.queued("local"), (1, 1));
    s.finish(1, Usage::default(), 10).unwrap();
    let started = s.next(10);
    assert_eq!((started[0].id, started[0].class), (3, Class::Interactive));
}

#[test]
fn fifo_serves_in_arrival_order() {
    let mut s = Scheduler::new(Config {
        discipline: Discipline::Fifo,
        ..Config::default()
    });
    s.add_provider("local", ProviderConfig::local(2)).unwrap();
    s.submit(req(1, "a", false), 0).unwrap();
    s.submit(req(2, "a", false), 0).unwrap();
    s.submit(req(3, "a", false), 0).unwrap();
    s.submit(req(4, "user", true), 0).unwrap();
    assert_eq!(ids(&s.next(0)), [1, 2]);
    s.finish(2, Usage::default(), 1).unwrap();
    assert_eq!(ids(&s.next(1)), [3]);
}

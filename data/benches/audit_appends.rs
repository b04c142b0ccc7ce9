//! Audit-log appends per second, measured side by side: each committed in its own transaction
//! (WAL, synchronous=NORMAL), and written to the journal (one `write` each) and then committed in
//! batches of 256, as the kernel does. Both survive a crash of the kernel process once appended.
//!
//! Run: `cargo bench -p agentos-data --bench audit_appends`

use std::time::{Duration, Instant};

use agentos_data::{NewAuditEntry, Store};

const N: usize = 20_000;
const BATCH: usize = 256;

fn entry() -> NewAuditEntry {
    NewAuditEntry {
        time: 1,
        principal: "host".into(),
        capability: "agent.call".into(),
        scope: "host".into(),
        decision: "allow".into(),
        reason: "the user called it".into(),
    }
}

/// Each record in its own transaction.
fn committed(store: &Store) -> Duration {
    let start = Instant::now();
    for _ in 0..N {
        store.append_audit(&entry()).expect("append");
    }
    start.elapsed()
}

/// Each record to the journal, committed to the database every `BATCH` records; returns the time
/// of the appends alone and the total.
fn journaled(store: &Store) -> (Duration, Duration) {
    let (mut journal, _) = store.open_audit_journal().expect("journal");
    let mut appending = Duration::ZERO;
    let start = Instant::now();
    for i in 0..N {
        let t = Instant::now();
        journal.append(entry()).expect("append");
        appending += t.elapsed();
        if (i + 1) % BATCH == 0 || i + 1 == N {
            let batch = journal.take().expect("batch");
            store.commit_journal_batch(&batch).expect("commit");
            journal.retire(batch).expect("retire");
        }
    }
    (appending, start.elapsed())
}

fn per_second(d: Duration) -> f64 {
    N as f64 / d.as_secs_f64()
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let one = committed(&store);
    let (appending, total) = journaled(&store);
    let verify = Instant::now();
    let v = store.verify_audit().expect("verify");
    assert!(v.ok && v.records == 2 * N as u64, "{v:?}");
    let us = |d: Duration| d.as_secs_f64() * 1e6 / N as f64;
    println!(
        "audit appends, each committed:     {:>7.0}/s ({:.1} µs each)",
        per_second(one),
        us(one)
    );
    println!(
        "audit appends, journal then batch: {:>7.0}/s ({:.1} µs each; the append itself {:.1} µs, {:.1}× faster)",
        per_second(total),
        us(total),
        us(appending),
        one.as_secs_f64() / appending.as_secs_f64()
    );
    println!(
        "verifying {} records took {:.0} ms",
        v.records,
        verify.elapsed().as_secs_f64() * 1e3
    );
}

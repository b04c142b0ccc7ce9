//! Audit-log appends per second, each in its own committed transaction (WAL, synchronous=NORMAL:
//! durable against a crash of the kernel process; see `Store::open`).
//!
//! Run: `cargo bench -p agentos-data --bench audit_appends`

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = agentos_data::Store::open(dir.path()).expect("store");
    let entry = agentos_data::NewAuditEntry {
        time: 1,
        principal: "host".into(),
        capability: "agent.call".into(),
        scope: "host".into(),
        decision: "allow".into(),
        reason: "the user called it".into(),
    };
    const N: usize = 20_000;
    let start = std::time::Instant::now();
    for _ in 0..N {
        store.append_audit(&entry).expect("append");
    }
    let took = start.elapsed();
    let verify = std::time::Instant::now();
    let v = store.verify_audit().expect("verify");
    assert!(v.ok);
    println!(
        "audit appends: {:.0}/s ({:.1} µs each, committed); verifying {} records took {:.0} ms",
        N as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / N as f64,
        v.records,
        verify.elapsed().as_secs_f64() * 1e3
    );
}

//! Benchmark B6: one caller floods the kernel, another is still served. A host client keeps 32
//! delegations in flight at all times (the most one connection may have), for `B6_SECS` seconds
//! (10), which the kernel's quotas refuse past the first burst; meanwhile a second client calls
//! `Kernel1.ListAgents` every 10 ms. Its latency is printed idle and under the flood, with the
//! ratio; the target is p99 under 50 ms under the flood.
//!
//! Run: `cargo build --release --workspace && cargo bench -p agentos-tests --bench b6_flood`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentos_dbus_interfaces::proxies::Kernel1Proxy;
use agentos_dbus_interfaces::Error;
use agentos_tests::bench::{percentile, runtime, setting};
use agentos_tests::Env;
use zbus::proxy::CacheProperties;

const TARGET_P99: Duration = Duration::from_millis(50);

async fn client(env: &Env) -> Kernel1Proxy<'static> {
    let conn = zbus::connection::Builder::address(env.address.as_str())
        .expect("address")
        .build()
        .await
        .expect("connect");
    Kernel1Proxy::builder(&conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .expect("proxy")
}

/// Latencies of `ListAgents` calls every 10 ms for `span`.
async fn probe(k: &Kernel1Proxy<'_>, span: Duration) -> Vec<Duration> {
    let mut out = Vec::new();
    let end = Instant::now() + span;
    while Instant::now() < end {
        let t = Instant::now();
        k.list_agents().await.expect("list agents");
        out.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    out
}

fn summary(mut v: Vec<Duration>) -> (Duration, Duration, usize) {
    v.sort();
    (percentile(&v, 0.5), percentile(&v, 0.99), v.len())
}

fn main() {
    let secs: u64 = setting("B6_SECS", 10);
    runtime().block_on(async {
        let env = Env::start().await;
        let flooder = client(&env).await;
        let prober = client(&env).await;
        let _ = probe(&prober, Duration::from_secs(1)).await; // warm up
        let idle = summary(probe(&prober, Duration::from_secs(secs)).await);

        let admitted = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let other = Arc::new(AtomicU64::new(0));
        let end = Instant::now() + Duration::from_secs(secs);
        let mut flood = Vec::new();
        for _ in 0..32 {
            let (k, admitted, refused, other) = (
                flooder.clone(),
                Arc::clone(&admitted),
                Arc::clone(&refused),
                Arc::clone(&other),
            );
            flood.push(tokio::spawn(async move {
                while Instant::now() < end {
                    match k.delegate("tester", "echo flood", Default::default()).await {
                        Ok(_) => admitted.fetch_add(1, Ordering::Relaxed),
                        Err(Error::QuotaExceeded(_)) => refused.fetch_add(1, Ordering::Relaxed),
                        Err(_) => other.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
        let flooded = summary(probe(&prober, Duration::from_secs(secs)).await);
        for f in flood {
            let _ = f.await;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("B6: ListAgents from one client while another floods Delegate (32 in flight)");
        println!(
            "  idle   p50 {:7.2} ms  p99 {:7.2} ms  ({} calls)",
            ms(idle.0),
            ms(idle.1),
            idle.2
        );
        println!(
            "  flood  p50 {:7.2} ms  p99 {:7.2} ms  ({} calls)",
            ms(flooded.0),
            ms(flooded.1),
            flooded.2
        );
        println!(
            "  ratio to idle: p50 {:.2}x  p99 {:.2}x",
            ms(flooded.0) / ms(idle.0),
            ms(flooded.1) / ms(idle.1)
        );
        let total = admitted.load(Ordering::Relaxed)
            + refused.load(Ordering::Relaxed)
            + other.load(Ordering::Relaxed);
        println!(
            "  flood: {} delegations tried ({:.0}/s), {} admitted, {} refused with QuotaExceeded, {} other errors",
            total,
            total as f64 / secs as f64,
            admitted.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
            other.load(Ordering::Relaxed)
        );
        let verdict = if flooded.1 < TARGET_P99 { "meets" } else { "misses" };
        println!(
            "  p99 under the flood {verdict} the target (< {} ms)",
            TARGET_P99.as_millis()
        );
    });
}

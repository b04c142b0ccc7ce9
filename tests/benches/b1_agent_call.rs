//! Benchmark B1: an agent call mediated by the kernel (`Agent1.Call`: caller identity, permission
//! check, audit record, forwarding over the agent's private connection) against a direct D-Bus
//! call to a service with the same handler and payload. Both are measured interleaved in one run,
//! with 1 and 8 concurrent callers; the figures printed are p50, p99 and throughput ratios.
//!
//! Run: `cargo build --release --workspace && cargo bench -p agentos-tests --bench b1_agent_call`

use std::time::{Duration, Instant};

use agentos_dbus_interfaces::names;
use agentos_dbus_interfaces::proxies::Agent1Proxy;
use agentos_sdk::{Agent, Outcome, Task};
use agentos_tests::Env;

const PAYLOAD: usize = 256;
const CALLS_PER_CALLER: usize = 2000;

/// The same handler serves both paths.
fn echo(payload: Vec<u8>) -> Vec<u8> {
    payload
}

struct Echo;
impl Agent for Echo {
    async fn run(&self, _task: Task) -> Result<Outcome, String> {
        Err("this agent only answers calls".into())
    }
    async fn call(&self, _method: &str, payload: Vec<u8>) -> Result<Vec<u8>, agentos_sdk::Error> {
        Ok(echo(payload))
    }
}

/// The direct service: the same method, on the bus, no kernel in between.
struct Direct;
#[zbus::interface(name = "org.agentos.Agent1")]
impl Direct {
    async fn call(&self, _method: &str, payload: Vec<u8>) -> Vec<u8> {
        echo(payload)
    }
}

const DIRECT_NAME: &str = "org.agentos.Bench.Direct";
const DIRECT_PATH: &str = "/org/agentos/Bench/Direct";

struct Samples {
    mediated: Vec<Duration>,
    direct: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `callers` tasks, each with its own connection, alternating mediated and direct calls.
async fn latencies(env: &Env, callers: usize) -> Samples {
    let mut handles = Vec::new();
    for c in 0..callers {
        let address = env.address.clone();
        handles.push(tokio::spawn(async move {
            let conn = zbus::connection::Builder::address(address.as_str())
                .unwrap()
                .build()
                .await
                .unwrap();
            let mediated = Agent1Proxy::builder(&conn)
                .path(names::agent_path("host"))
                .unwrap()
                .build()
                .await
                .unwrap();
            let direct = Agent1Proxy::builder(&conn)
                .destination(DIRECT_NAME)
                .unwrap()
                .path(DIRECT_PATH)
                .unwrap()
                .build()
                .await
                .unwrap();
            let payload = vec![0xa5u8; PAYLOAD];
            let (mut m, mut d) = (Vec::new(), Vec::new());
            for i in 0..CALLS_PER_CALLER + 100 {
                // Alternate which goes first, so neither always follows the other.
                let order = [(i + c) % 2 == 0, (i + c) % 2 != 0];
                for through_kernel in order {
                    let proxy = if through_kernel { &mediated } else { &direct };
                    let start = Instant::now();
                    let reply = proxy.call("echo", &payload).await.expect("call");
                    let took = start.elapsed();
                    assert_eq!(reply.len(), PAYLOAD);
                    if i >= 100 {
                        if through_kernel {
                            m.push(took)
                        } else {
                            d.push(took)
                        }
                    }
                }
            }
            (m, d)
        }));
    }
    let mut samples = Samples {
        mediated: Vec::new(),
        direct: Vec::new(),
    };
    for h in handles {
        let (m, d) = h.await.expect("caller");
        samples.mediated.extend(m);
        samples.direct.extend(d);
    }
    samples.mediated.sort();
    samples.direct.sort();
    samples
}

/// Calls per second of each path, measured in alternating 300 ms windows.
async fn throughput(env: &Env, callers: usize) -> (f64, f64) {
    let window = Duration::from_millis(300);
    let (mut m_calls, mut d_calls, mut m_time, mut d_time) =
        (0usize, 0usize, Duration::ZERO, Duration::ZERO);
    let mut conns = Vec::new();
    for _ in 0..callers {
        conns.push(
            zbus::connection::Builder::address(env.address.as_str())
                .unwrap()
                .build()
                .await
                .unwrap(),
        );
    }
    for round in 0..8 {
        let through_kernel = round % 2 == 0;
        let start = Instant::now();
        let mut handles = Vec::new();
        for conn in &conns {
            let conn = conn.clone();
            handles.push(tokio::spawn(async move {
                let builder = Agent1Proxy::builder(&conn);
                let proxy = if through_kernel {
                    builder.path(names::agent_path("host")).unwrap()
                } else {
                    builder
                        .destination(DIRECT_NAME)
                        .unwrap()
                        .path(DIRECT_PATH)
                        .unwrap()
                };
                let proxy = proxy.build().await.unwrap();
                let payload = vec![0x5au8; PAYLOAD];
                let mut n = 0usize;
                while start.elapsed() < window {
                    proxy.call("echo", &payload).await.expect("call");
                    n += 1;
                }
                n
            }));
        }
        let mut n = 0;
        for h in handles {
            n += h.await.expect("caller");
        }
        let took = start.elapsed();
        if through_kernel {
            m_calls += n;
            m_time += took;
        } else {
            d_calls += n;
            d_time += took;
        }
    }
    (
        m_calls as f64 / m_time.as_secs_f64(),
        d_calls as f64 / d_time.as_secs_f64(),
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let env = Env::start().await;
        let _registration = agentos_sdk::register(Echo, "host", Some(&env.address)).await.expect("register the echo agent");
        let _direct = zbus::connection::Builder::address(env.address.as_str())
            .unwrap()
            .serve_at(DIRECT_PATH, Direct)
            .unwrap()
            .name(DIRECT_NAME)
            .unwrap()
            .build()
            .await
            .expect("direct service");
        println!("B1: kernel-mediated Agent1.Call vs direct D-Bus call, {PAYLOAD}-byte payload, interleaved");
        println!("{:>8} {:>12} {:>12} {:>8} {:>12} {:>12} {:>8} {:>14}", "callers", "p50 kernel", "p50 direct", "ratio", "p99 kernel", "p99 direct", "ratio", "throughput ×");
        for callers in [1usize, 8] {
            let s = latencies(&env, callers).await;
            let (m50, d50) = (percentile(&s.mediated, 0.5), percentile(&s.direct, 0.5));
            let (m99, d99) = (percentile(&s.mediated, 0.99), percentile(&s.direct, 0.99));
            let (mt, dt) = throughput(&env, callers).await;
            println!(
                "{callers:>8} {:>10.0}µs {:>10.0}µs {:>7.2}× {:>10.0}µs {:>10.0}µs {:>7.2}× {:>13.2}×",
                m50.as_secs_f64() * 1e6,
                d50.as_secs_f64() * 1e6,
                m50.as_secs_f64() / d50.as_secs_f64(),
                m99.as_secs_f64() * 1e6,
                d99.as_secs_f64() * 1e6,
                m99.as_secs_f64() / d99.as_secs_f64(),
                dt / mt,
            );
            println!("         (throughput: kernel {mt:.0}/s, direct {dt:.0}/s; ratio is direct/kernel, lower is better)");
        }
        println!("targets: p50 ≤ 1.20×, p99 ≤ 1.50×");
    });
}

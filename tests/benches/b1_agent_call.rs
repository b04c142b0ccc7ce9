//! Benchmark B1: an agent call mediated by the kernel (caller identity, permission check, audit
//! record, forwarding over the agent's private connection) against a direct D-Bus call to a
//! service with the same handler and payload. The kernel is reached two ways: over a private
//! channel (`Kernel1.OpenChannel`, then `Channel1.Call`) and through the bus (`Agent1.Call`). All
//! three are measured interleaved in one run, with 1 and 8 concurrent callers; the figures printed
//! are p50, p99 and throughput, each as a ratio to the direct call.
//!
//! Where a cgroup v2 hierarchy is writable, the callers run as a desktop app (the process moves
//! into an app scope, as desktops launch apps), so every mediated call is checked against the
//! app's grant "may call agent host" as well as recorded.
//!
//! Interleaved two ways. In alternating windows (150 ms each, paths in turn, the order rotating),
//! all callers use one path at a time: latency and throughput of each path under the same load.
//! Mixed, each caller switches call by call between a kernel path and the direct call, so the two
//! compete for the two cores at every moment. Each kernel path is mixed with the direct call on
//! its own: mixed three ways, the bus path's load on the kernel (the kernel relays it, and it
//! costs the kernel more than a channel call) would count against the channel, while the
//! direct call would not carry the same handicap.
//!
//! On a small machine the processes' placement on cores varies from moment to moment and moves
//! every path's figures, so the run is made of rounds: each round measures all paths side by side
//! and yields its own ratios; every round is printed, and the verdict uses the median round.
//!
//! Run: `cargo build --release --workspace && cargo bench -p agentos-tests --bench b1_agent_call`
//! With `B1_PROFILE=<seconds>` it only makes calls for that long, from `B1_PROFILE_CALLERS`
//! callers (1), over the channel or the path named by `B1_PROFILE_PATH` (`direct`, `bus`), to
//! profile the processes
//! (`perf record -p $(pgrep agentosd)`).

use std::time::{Duration, Instant};

use agentos_dbus_interfaces::proxies::{Agent1Proxy, Channel1Proxy};
use agentos_dbus_interfaces::{names, ByteBuf, Bytes};
use agentos_sdk::{Agent, Outcome, Task};
use agentos_tests::Env;
use zbus::proxy::CacheProperties;

const PAYLOAD: usize = 256;
/// Calls per path in one round, shared among the callers.
const CALLS_PER_ROUND: usize = 4000;
const ROUNDS: usize = 7;

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

/// The direct service: the same method and payload types as the SDK's agent service, on the
/// bus, no kernel in between.
struct Direct;
#[zbus::interface(name = "org.agentos.Agent1")]
impl Direct {
    async fn call(&self, _method: &str, payload: ByteBuf) -> ByteBuf {
        ByteBuf::from(echo(payload.into_vec()))
    }
}

const DIRECT_NAME: &str = "org.agentos.Bench.Direct";
const DIRECT_PATH: &str = "/org/agentos/Bench/Direct";

/// The app the callers run as, so that each mediated call goes through the permission check.
const APP_ID: &str = "org.agentos.Bench";

/// This process moved into a cgroup named like a desktop app's systemd scope, as desktops launch
/// apps; the kernel then knows its callers as `host:<APP_ID>`, which needs the grant to call the
/// agent. Dropping it moves the process back and removes the scope.
struct AppScope {
    scope: std::path::PathBuf,
    home: std::path::PathBuf,
}

impl AppScope {
    async fn enter(env: &Env) -> Option<AppScope> {
        env.kernel()
            .await
            .grant(&format!("host:{APP_ID}"), "agent.call", "host", "always")
            .await
            .expect("grant the bench app the right to call the agent");
        // The unified (v2) hierarchy, where the kernel reads the caller's unit from.
        let base = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(std::path::Path::new)
            .find(|b| b.join("cgroup.procs").exists())?;
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let own = own.lines().find_map(|l| l.strip_prefix("0::/"))?;
        let home = base.join(own);
        let scope = base.join(format!("app-gnome-{APP_ID}-{}.scope", std::process::id()));
        std::fs::create_dir(&scope).ok()?;
        let me = std::process::id().to_string();
        if std::fs::write(scope.join("cgroup.procs"), &me).is_err() {
            let _ = std::fs::remove_dir(&scope);
            return None;
        }
        Some(AppScope { scope, home })
    }
}

impl Drop for AppScope {
    fn drop(&mut self) {
        let _ = std::fs::write(
            self.home.join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let _ = std::fs::remove_dir(&self.scope);
    }
}

/// The three ways to make the same call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Channel,
    Bus,
    Direct,
}

const PATHS: [Path; 3] = [Path::Channel, Path::Bus, Path::Direct];

/// One caller's connections and proxies for every path.
struct Caller {
    _conn: zbus::Connection,
    _channel_conn: zbus::Connection,
    channel: Channel1Proxy<'static>,
    bus: Agent1Proxy<'static>,
    direct: Agent1Proxy<'static>,
}

impl Caller {
    async fn new(env: &Env) -> Caller {
        let conn = zbus::connection::Builder::address(env.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();
        let (channel_conn, channel) = env.channel().await;
        let bus = Agent1Proxy::builder(&conn)
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
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .unwrap();
        Caller {
            _conn: conn,
            _channel_conn: channel_conn,
            channel,
            bus,
            direct,
        }
    }

    async fn call(&self, path: Path, payload: &[u8]) -> ByteBuf {
        let payload = Bytes::new(payload);
        match path {
            Path::Channel => self.channel.call("host", "echo", payload).await,
            Path::Bus => self.bus.call("echo", payload).await,
            Path::Direct => self.direct.call("echo", payload).await,
        }
        .expect("call")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Mixed: `callers` tasks, each with its own connections, switching between the two paths of
/// `pair` call by call.
async fn mixed(
    callers: &[std::sync::Arc<Caller>],
    pair: [Path; 2],
    warmup: usize,
) -> [Vec<Duration>; 2] {
    let calls = CALLS_PER_ROUND / callers.len();
    let mut handles = Vec::new();
    for (c, caller) in callers.iter().enumerate() {
        let caller = std::sync::Arc::clone(caller);
        handles.push(tokio::spawn(async move {
            let payload = vec![0xa5u8; PAYLOAD];
            let mut samples: [Vec<Duration>; 2] = Default::default();
            for i in 0..calls + warmup {
                for k in 0..2 {
                    // Alternate the order, so neither path always follows the other.
                    let p = (i + c + k) % 2;
                    let start = Instant::now();
                    let reply = caller.call(pair[p], &payload).await;
                    let took = start.elapsed();
                    assert_eq!(reply.len(), PAYLOAD);
                    if i >= warmup {
                        samples[p].push(took);
                    }
                }
            }
            samples
        }));
    }
    let mut all: [Vec<Duration>; 2] = Default::default();
    for h in handles {
        let s = h.await.expect("caller");
        for p in 0..2 {
            all[p].extend_from_slice(&s[p]);
        }
    }
    for v in &mut all {
        v.sort();
    }
    all
}

/// Latencies and calls per second of each path, in alternating windows in which every caller
/// uses that path.
async fn windows(callers: &[std::sync::Arc<Caller>]) -> ([Vec<Duration>; 3], [f64; 3]) {
    const WINDOW: Duration = Duration::from_millis(150);
    const CYCLES: usize = 4;
    let mut samples: [Vec<Duration>; 3] = Default::default();
    let mut time = [Duration::ZERO; 3];
    for w in 0..3 * CYCLES {
        let p = (w + w / 3) % 3;
        let start = Instant::now();
        let mut handles = Vec::new();
        for caller in callers {
            let caller = std::sync::Arc::clone(caller);
            handles.push(tokio::spawn(async move {
                let payload = vec![0x5au8; PAYLOAD];
                let mut took = Vec::new();
                while start.elapsed() < WINDOW {
                    let t = Instant::now();
                    let reply = caller.call(PATHS[p], &payload).await;
                    took.push(t.elapsed());
                    assert_eq!(reply.len(), PAYLOAD);
                }
                took
            }));
        }
        for h in handles {
            samples[p].extend(h.await.expect("caller"));
        }
        time[p] += start.elapsed();
    }
    let tput = [0, 1, 2].map(|p| samples[p].len() as f64 / time[p].as_secs_f64());
    for v in &mut samples {
        v.sort();
    }
    (samples, tput)
}

/// One round's figures: the direct call's, and each kernel path's ratios to it.
#[derive(Clone, Copy)]
struct Round {
    /// Direct call: p50 and p99 in seconds, calls per second (alternating windows).
    direct: [f64; 3],
    /// p50, p99 and throughput ratios of the channel and the bus path (alternating windows).
    ratios: [[f64; 3]; 2],
    /// p50 and p99 ratios of the channel and the bus path, each mixed call by call with the
    /// direct call.
    mixed: [[f64; 2]; 2],
}

impl Round {
    async fn measure(callers: &[std::sync::Arc<Caller>], warmup: usize) -> Round {
        let mixes = [
            mixed(callers, [Path::Channel, Path::Direct], warmup).await,
            mixed(callers, [Path::Bus, Path::Direct], warmup).await,
        ];
        let (lat, tput) = windows(callers).await;
        let pct = |v: &[Duration]| {
            [
                percentile(v, 0.5).as_secs_f64(),
                percentile(v, 0.99).as_secs_f64(),
            ]
        };
        let d = pct(&lat[2]);
        let direct = [d[0], d[1], tput[2]];
        let ratio = |p: usize| {
            let f = pct(&lat[p]);
            [f[0] / d[0], f[1] / d[1], tput[2] / tput[p]]
        };
        let mixed_ratio = |mix: &[Vec<Duration>; 2]| {
            let (f, md) = (pct(&mix[0]), pct(&mix[1]));
            [f[0] / md[0], f[1] / md[1]]
        };
        Round {
            direct,
            ratios: [ratio(0), ratio(1)],
            mixed: [mixed_ratio(&mixes[0]), mixed_ratio(&mixes[1])],
        }
    }

    /// Each figure's median over the rounds.
    fn median(rounds: &[Round]) -> Round {
        let med = |f: &dyn Fn(&Round) -> f64| {
            let mut v: Vec<f64> = rounds.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let mut m = rounds[0];
        for p in 0..2 {
            for i in 0..3 {
                m.direct[i] = med(&|r| r.direct[i]);
                m.ratios[p][i] = med(&|r| r.ratios[p][i]);
            }
            for i in 0..2 {
                m.mixed[p][i] = med(&|r| r.mixed[p][i]);
            }
        }
        m
    }

    fn print(&self, label: &str) {
        let [p50, p99, tput] = self.direct;
        let r = |r: [f64; 3]| format!("{:.2}× {:.2}× {:.2}×", r[0], r[1], r[2]);
        let m = |r: [f64; 2]| format!("{:.2}× {:.2}×", r[0], r[1]);
        println!(
            "  {label:<7} direct {:>4.0} µs {:>5.0} µs {:>5.0}/s | channel {} | bus {} | mixed: channel {}, bus {}",
            p50 * 1e6,
            p99 * 1e6,
            tput,
            r(self.ratios[0]),
            r(self.ratios[1]),
            m(self.mixed[0]),
            m(self.mixed[1]),
        );
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
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
        let _scope = match AppScope::enter(&env).await {
            Some(scope) => {
                println!("callers are the desktop app {APP_ID}: each mediated call is checked against its grant");
                Some(scope)
            }
            None => {
                println!("no writable cgroup v2 to run the callers as a desktop app: they are the user, whom the kernel checks by identity only");
                None
            }
        };
        println!("B1: kernel-mediated agent call vs direct D-Bus call, {PAYLOAD}-byte payload, interleaved");
        println!("ratios are kernel / direct (latency) and direct / kernel (throughput); lower is better");
        println!("columns: p50 p99 throughput, in alternating windows; then p50 p99, each kernel path mixed call by call with the direct call");
        if let Ok(secs) = std::env::var("B1_PROFILE") {
            let secs: u64 = secs.parse().expect("B1_PROFILE is a number of seconds");
            let path = match std::env::var("B1_PROFILE_PATH").as_deref() {
                Ok("direct") => Path::Direct,
                Ok("bus") => Path::Bus,
                _ => Path::Channel,
            };
            let n: usize = std::env::var("B1_PROFILE_CALLERS").ok().and_then(|n| n.parse().ok()).unwrap_or(1);
            let mut handles = Vec::new();
            let start = Instant::now();
            println!("profiling");
            for _ in 0..n {
                let caller = Caller::new(&env).await;
                handles.push(tokio::spawn(async move {
                    let payload = vec![1u8; PAYLOAD];
                    let mut calls = 0u64;
                    while start.elapsed().as_secs() < secs {
                        caller.call(path, &payload).await;
                        calls += 1;
                    }
                    calls
                }));
            }
            let mut calls = 0;
            for h in handles {
                calls += h.await.expect("caller");
            }
            println!("{calls} calls, {:.1} µs each", us(start.elapsed()) / calls as f64);
            return;
        }
        for n in [1usize, 8] {
            let mut callers = Vec::new();
            for _ in 0..n {
                callers.push(std::sync::Arc::new(Caller::new(&env).await));
            }
            println!("{n} caller(s):");
            let mut rounds = Vec::new();
            for r in 0..ROUNDS {
                let round = Round::measure(&callers, if r == 0 { 100 } else { 10 }).await;
                round.print(&format!("round {}", r + 1));
                rounds.push(round);
            }
            let median = Round::median(&rounds);
            median.print("median");
            let verdict = |ratio: f64, target: f64| if ratio <= target { "meets" } else { "misses" };
            let [p50, p99, _] = median.ratios[0];
            let [mp50, mp99] = median.mixed[0];
            println!(
                "  channel, median round: p50 {} and p99 {} the targets in alternating windows; mixed: p50 {}, p99 {}",
                verdict(p50, 1.2),
                verdict(p99, 1.5),
                verdict(mp50, 1.2),
                verdict(mp99, 1.5),
            );
        }
        println!("targets: p50 ≤ 1.20×, p99 ≤ 1.50×");
    });
}

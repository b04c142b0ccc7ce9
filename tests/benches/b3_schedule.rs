//! Benchmark B3, scheduling: a model server with 4 slots (tests/src/model_server.rs: first come
//! first served inside, like llama-server), 8 background agents flooding it through the kernel
//! (agents the kernel launches, each keeping 2 requests in flight on `Host1.Chat`: the test
//! agent's `flood` step; so about 12 always wait), and one interactive
//! request a second (`Models1.Chat` with "interactive", as `agentctl ask` and the panel send).
//! The kernel's scheduler and FIFO (`discipline = "fifo"` in models.toml) run in the same run,
//! one after the other, with the same load. Printed: the interactive time to first token idle,
//! with the scheduler and with FIFO; the share of slot time the server generated; requests that
//! failed. Targets: interactive time to first token (median) ≤ 1.25× idle and ≤ 0.2× FIFO's;
//! slots busy ≥ 95 %; nothing dropped.
//!
//! Run: `cargo build --release --workspace && cargo bench -p agentos-tests --bench b3_schedule`
//! (`B3_SECS`, default 30: seconds of load in each mode.)

use std::time::{Duration, Instant};

use agentos_client::Client;
use agentos_dbus_interfaces::inference::{ChatEvent, ChatMessage, ChatRequest};
use agentos_tests::bench::{percentile, runtime, setting};
use agentos_tests::model_server::{ModelServer, ServerConfig};
use agentos_tests::{bin, Env};

const SLOTS: u32 = 4;
const AGENTS: usize = 8;
const IN_FLIGHT: usize = 2;
const FIRST_TOKEN: Duration = Duration::from_millis(60);
const TOKEN_GAP: Duration = Duration::from_millis(15);
/// Tokens of a background answer (about 1 s) and of an interactive one (about 0.9 s).
const BACKGROUND_TOKENS: u32 = 64;
const INTERACTIVE_TOKENS: u32 = 56;

fn request(tokens: u32, interactive: bool) -> ChatRequest {
    let mut r = ChatRequest::new(vec![ChatMessage::user("summarise the news")]);
    r.max_tokens = Some(tokens);
    r.temperature = Some(0.0);
    r.interactive = interactive;
    r
}

/// One interactive request: time to its first token (the rest is read in the background).
async fn interactive(client: &Client) -> Result<Duration, String> {
    let start = Instant::now();
    let (_, mut stream) = client
        .chat(&request(INTERACTIVE_TOKENS, true))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match stream.next().await {
            Some(Ok(ChatEvent::Text { .. })) => break,
            Some(Ok(ChatEvent::Error { kind, message })) => {
                return Err(format!("{kind}: {message}"))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the stream ended before a token".into()),
        }
    }
    let first = start.elapsed();
    tokio::spawn(async move { while stream.next().await.is_some() {} });
    Ok(first)
}

/// `count` interactive requests, one a second; their times to first token, sorted.
async fn ask_each_second(client: &Client, count: usize, failed: &mut Vec<String>) -> Vec<Duration> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut pending = Vec::new();
    for _ in 0..count {
        tick.tick().await;
        let client = client.clone();
        pending.push(tokio::spawn(async move { interactive(&client).await }));
    }
    let mut out = Vec::new();
    for p in pending {
        match p.await {
            Ok(Ok(d)) => out.push(d),
            Ok(Err(e)) => failed.push(e),
            Err(e) => failed.push(e.to_string()),
        }
    }
    out.sort();
    out
}

fn pct(v: &[Duration], p: f64) -> Duration {
    percentile(v, p)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct ModeResult {
    ttft: Vec<Duration>,
    busy: f64,
    background_done: u64,
    failed: Vec<String>,
}

/// Start the kernel with `discipline`, flood it, and ask once a second.
async fn run_mode(env: &mut Env, server: &ModelServer, discipline: &str, secs: u64) -> ModeResult {
    let config = env.root().join("config/agentos");
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(
        config.join("models.toml"),
        format!(
            "[local]\nollama = \"off\"\nllama-server = \"{}\"\n\n[scheduler]\ndiscipline = \"{discipline}\"\n\n\
             [budget]\ntokens-per-hour = 1000000000\ntokens-per-day = 1000000000\nrequests-per-minute = 100000\n",
            server.url
        ),
    )
    .expect("models.toml");
    for i in 0..AGENTS {
        env.write_manifest(&format!("flood{i}"), &bin("agentos-test-agent"), &[]);
    }
    env.restart_kernel().await;
    let client = Client::at_address(&env.address).await.expect("client");
    // Each floods for the whole window: 3 s to fill the queue, `secs` measured, 1 s more.
    let goal = format!("flood {IN_FLIGHT} {BACKGROUND_TOKENS} {}", secs + 4);
    let mut tasks = Vec::new();
    for i in 0..AGENTS {
        tasks.push(env.delegate(&format!("flood{i}"), &goal).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let from = server.now();
    let mut failed = Vec::new();
    let ttft = ask_each_second(&client, secs as usize, &mut failed).await;
    let to = server.now();
    let mut background_done = 0;
    for t in tasks {
        let task = env.wait_task(t).await;
        // "done=N failed=M first error"
        let mut words = task.result.split_whitespace();
        let count = |w: Option<&str>, key: &str| {
            w.and_then(|w| w.strip_prefix(key))
                .and_then(|n| n.parse::<u64>().ok())
        };
        match (count(words.next(), "done="), count(words.next(), "failed=")) {
            (Some(done), Some(0)) => background_done += done,
            _ => failed.push(format!("flood task {t}: {} {}", task.state, task.result)),
        }
    }
    ModeResult {
        ttft,
        busy: server.busy_share(from, to),
        background_done,
        failed,
    }
}

fn main() {
    let secs: u64 = setting("B3_SECS", 30);
    runtime().block_on(async {
        let server = ModelServer::start(ServerConfig {
            slots: SLOTS,
            first_token: FIRST_TOKEN,
            token_gap: TOKEN_GAP,
            tokens: BACKGROUND_TOKENS as usize,
            ..ServerConfig::default()
        })
        .await;
        let mut env = Env::start().await;
        let config = env.root().join("config/agentos");
        std::fs::create_dir_all(&config).expect("config dir");
        std::fs::write(
            config.join("models.toml"),
            format!("[local]\nollama = \"off\"\nllama-server = \"{}\"\n", server.url),
        )
        .expect("models.toml");
        env.restart_kernel().await;
        let client = Client::at_address(&env.address).await.expect("client");
        let mut idle_failed = Vec::new();
        let idle = ask_each_second(&client, 10, &mut idle_failed).await;
        drop(client);

        let priority = run_mode(&mut env, &server, "priority", secs).await;
        let fifo = run_mode(&mut env, &server, "fifo", secs).await;

        println!(
            "B3 scheduling: {SLOTS} slots, {AGENTS} background agents x {IN_FLIGHT} in flight \
             ({BACKGROUND_TOKENS} tokens), one interactive request a second ({INTERACTIVE_TOKENS} \
             tokens), first token {} ms, {} ms per token, {secs} s per mode",
            FIRST_TOKEN.as_millis(),
            TOKEN_GAP.as_millis()
        );
        println!(
            "{:>9} | {:>21} | {:>8} | {:>10} | {:>7}",
            "mode", "TTFT p50 / p90 (ms)", "busy", "background", "failed"
        );
        println!(
            "{:>9} | {:>9.1} / {:>9.1} | {:>8} | {:>10} | {:>7}",
            "idle",
            ms(pct(&idle, 0.5)),
            ms(pct(&idle, 0.9)),
            "-",
            "-",
            idle_failed.len()
        );
        for (name, r) in [("scheduler", &priority), ("fifo", &fifo)] {
            println!(
                "{:>9} | {:>9.1} / {:>9.1} | {:>7.1}% | {:>10} | {:>7}",
                name,
                ms(pct(&r.ttft, 0.5)),
                ms(pct(&r.ttft, 0.9)),
                r.busy * 100.0,
                r.background_done,
                r.failed.len()
            );
        }
        let idle50 = ms(pct(&idle, 0.5));
        let vs_idle = ms(pct(&priority.ttft, 0.5)) / idle50;
        let vs_fifo = ms(pct(&priority.ttft, 0.5)) / ms(pct(&fifo.ttft, 0.5));
        let dropped = idle_failed.len() + priority.failed.len() + fifo.failed.len();
        println!(
            "scheduler TTFT / idle = {vs_idle:.2} (target <= 1.25); / fifo = {vs_fifo:.3} (target <= 0.2); \
             busy {:.1}% (target >= 95%); dropped {dropped} (target 0)",
            priority.busy * 100.0
        );
        for e in priority.failed.iter().chain(&fifo.failed).chain(&idle_failed).take(5) {
            println!("  failed: {e}");
        }
        let met = vs_idle <= 1.25 && vs_fifo <= 0.2 && priority.busy >= 0.95 && dropped == 0;
        println!("targets: {}", if met { "MET" } else { "MISSED" });
    });
}

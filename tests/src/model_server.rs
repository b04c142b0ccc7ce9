//! A paced model server for the benchmarks, on 127.0.0.1, that behaves like llama.cpp's
//! `llama-server` where it matters to the broker: `/health`, `/props` (slots and context size, so
//! autodetection finds it), `/v1/models`, and `/v1/chat/completions` streamed as OpenAI
//! server-sent events, with a fixed number of slots served first come first served (requests
//! beyond them wait inside the server, without priorities, as llama-server's do), a fixed time to
//! first token and paced tokens. A client that closes its connection frees its slot at once. It
//! records when each request arrived, got a slot and sent its first token, and how long slots
//! were busy: the benchmarks B2 and B3 measure against it. (Scripted replies for end-to-end
//! tests are `model_fixture`'s.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How the server answers.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Requests generated at once; others wait in arrival order.
    pub slots: u32,
    /// From getting a slot to the first token.
    pub first_token: Duration,
    /// Between tokens.
    pub token_gap: Duration,
    /// Tokens in each answer (at least 1).
    pub tokens: usize,
    /// The context size `/props` reports.
    pub context: u32,
    /// The model's name (`/v1/models`, `-a` of llama-server).
    pub model: String,
    /// Between an answer's `[DONE]` and the end of its chunked body (a server whose last bytes
    /// come in a packet of their own).
    pub end_delay: Duration,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            slots: 4,
            first_token: Duration::from_millis(20),
            token_gap: Duration::from_millis(5),
            tokens: 8,
            context: 4096,
            model: "fixture-model".into(),
            end_delay: Duration::ZERO,
        }
    }
}

/// One chat request as the server saw it, times since the server started.
#[derive(Debug, Clone, Default)]
pub struct Served {
    pub arrived: Duration,
    pub slot: Option<Duration>,
    pub first_token: Option<Duration>,
    pub finished: Option<Duration>,
    /// The client went away before the answer ended.
    pub abandoned: bool,
    /// The request's JSON.
    pub body: String,
    /// Which connection it came on (numbered from 1 in the order they were accepted).
    pub connection: u64,
}

#[derive(Default)]
struct Record {
    served: Vec<Served>,
    /// (time, requests holding a slot from then on)
    busy: Vec<(Duration, u32)>,
    running: u32,
}

/// A running server; it stops with the runtime that started it.
pub struct ModelServer {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    pub config: ServerConfig,
    started: Instant,
    record: Arc<Mutex<Record>>,
}

impl ModelServer {
    /// Listen on a free port of 127.0.0.1.
    pub async fn start(config: ServerConfig) -> ModelServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let started = Instant::now();
        let record = Arc::new(Mutex::new(Record::default()));
        let slots = Arc::new(Semaphore::new(config.slots as usize));
        let shared = Arc::new(Shared {
            config: config.clone(),
            started,
            record: Arc::clone(&record),
            slots,
        });
        tokio::spawn(async move {
            let mut accepted = 0;
            while let Ok((conn, _)) = listener.accept().await {
                let _ = conn.set_nodelay(true);
                accepted += 1;
                tokio::spawn(serve(conn, accepted, Arc::clone(&shared)));
            }
        });
        ModelServer {
            url,
            config,
            started,
            record,
        }
    }

    /// The chat requests so far.
    pub fn served(&self) -> Vec<Served> {
        lock(&self.record).served.clone()
    }

    /// Time since the server started.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// The share of slot time in `[from, to)` during which slots generated (1.0: every slot
    /// busy all the time).
    pub fn busy_share(&self, from: Duration, to: Duration) -> f64 {
        let record = lock(&self.record);
        let mut busy = Duration::ZERO;
        let mut level = 0u32;
        let mut at = from;
        for &(t, running) in &record.busy {
            if t > from {
                let end = t.min(to);
                if end > at {
                    busy += (end - at) * level;
                    at = end;
                }
            }
            if t >= to {
                break;
            }
            level = running;
        }
        if to > at {
            busy += (to - at) * level;
        }
        let total = (to.saturating_sub(from)) * self.config.slots;
        if total.is_zero() {
            0.0
        } else {
            busy.as_secs_f64() / total.as_secs_f64()
        }
    }
}

struct Shared {
    config: ServerConfig,
    started: Instant,
    record: Arc<Mutex<Record>>,
    slots: Arc<Semaphore>,
}

fn lock(m: &Mutex<Record>) -> std::sync::MutexGuard<'_, Record> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One request read from a keep-alive connection.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

async fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.lines();
            let mut first = lines.next()?.split_whitespace();
            let method = first.next()?.to_string();
            let path = first.next()?.to_string();
            let length: usize = lines
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            let start = end + 4;
            while buf.len() < start + length {
                let mut more = [0u8; 16384];
                let n = conn.read(&mut more).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&more[..n]);
            }
            let body = buf[start..start + length].to_vec();
            buf.drain(..start + length);
            return Some(Request { method, path, body });
        }
        let mut more = [0u8; 16384];
        let n = conn.read(&mut more).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&more[..n]);
    }
}

async fn respond_json(conn: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await
}

async fn chunk(conn: &mut TcpStream, data: &str) -> std::io::Result<()> {
    let framed = format!("{:x}\r\n{data}\r\n", data.len());
    conn.write_all(framed.as_bytes()).await
}

async fn serve(mut conn: TcpStream, connection: u64, shared: Arc<Shared>) {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut conn, &mut buf).await {
        let c = &shared.config;
        let path = req.path.split('?').next().unwrap_or("");
        let done = match (req.method.as_str(), path) {
            ("GET", "/health") => respond_json(&mut conn, 200, r#"{"status":"ok"}"#).await,
            ("GET", "/props") => {
                let props = serde_json::json!({
                    "total_slots": c.slots,
                    "default_generation_settings": {"n_ctx": c.context},
                    "model_path": format!("/models/{}.gguf", c.model),
                });
                respond_json(&mut conn, 200, &props.to_string()).await
            }
            ("GET", "/v1/models") => {
                let models = serde_json::json!({
                    "object": "list",
                    "data": [{"id": c.model, "object": "model", "owned_by": "llamacpp"}],
                });
                respond_json(&mut conn, 200, &models.to_string()).await
            }
            ("POST", "/v1/chat/completions") => {
                chat(&mut conn, connection, &shared, req.body).await
            }
            _ => respond_json(&mut conn, 404, r#"{"error":{"message":"not found"}}"#).await,
        };
        if done.is_err() {
            return;
        }
    }
}

/// Stream one answer: wait for a slot, then the first token, then the rest, paced.
async fn chat(
    conn: &mut TcpStream,
    connection: u64,
    shared: &Shared,
    body: Vec<u8>,
) -> std::io::Result<()> {
    let since = || shared.started.elapsed();
    let index = {
        let mut r = lock(&shared.record);
        r.served.push(Served {
            arrived: since(),
            body: String::from_utf8_lossy(&body).into_owned(),
            connection,
            ..Served::default()
        });
        r.served.len() - 1
    };
    let Ok(_slot) = shared.slots.acquire().await else {
        return Ok(());
    };
    let set_running = |delta: i32| {
        let mut r = lock(&shared.record);
        r.running = r.running.saturating_add_signed(delta);
        let running = r.running;
        r.busy.push((since(), running));
    };
    set_running(1);
    lock(&shared.record).served[index].slot = Some(since());
    let wanted = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("max_tokens").and_then(|m| m.as_u64()))
        .map_or(usize::MAX, |m| m as usize);
    let result = stream_answer(conn, shared, index, wanted).await;
    set_running(-1);
    let mut r = lock(&shared.record);
    r.served[index].finished = Some(since());
    r.served[index].abandoned = result.is_err();
    result
}

/// The answer: the configured number of tokens, or fewer when the request's `max_tokens` says so.
async fn stream_answer(
    conn: &mut TcpStream,
    shared: &Shared,
    index: usize,
    max_tokens: usize,
) -> std::io::Result<()> {
    let c = &shared.config;
    conn.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await?;
    tokio::time::sleep(c.first_token).await;
    let event = |delta: serde_json::Value, finish: Option<&str>| {
        let v = serde_json::json!({
            "id": "chatcmpl-fixture", "object": "chat.completion.chunk", "model": c.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        format!("data: {v}\n\n")
    };
    let tokens = c.tokens.min(max_tokens).max(1);
    for i in 0..tokens {
        if i > 0 {
            tokio::time::sleep(c.token_gap).await;
        }
        let delta = if i == 0 {
            serde_json::json!({"role": "assistant", "content": format!("word{i} ")})
        } else {
            serde_json::json!({"content": format!("word{i} ")})
        };
        chunk(conn, &event(delta, None)).await?;
        if i == 0 {
            lock(&shared.record).served[index].first_token = Some(shared.started.elapsed());
        }
    }
    chunk(conn, &event(serde_json::json!({}), Some("stop"))).await?;
    let usage = serde_json::json!({
        "id": "chatcmpl-fixture", "object": "chat.completion.chunk", "model": c.model,
        "choices": [],
        "usage": {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens},
    });
    chunk(conn, &format!("data: {usage}\n\n")).await?;
    chunk(conn, "data: [DONE]\n\n").await?;
    if !c.end_delay.is_zero() {
        tokio::time::sleep(c.end_delay).await;
    }
    conn.write_all(b"0\r\n\r\n").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_are_served_in_arrival_order_and_busy_time_is_counted() {
        let server = ModelServer::start(ServerConfig {
            slots: 1,
            first_token: Duration::from_millis(30),
            token_gap: Duration::from_millis(1),
            tokens: 3,
            ..ServerConfig::default()
        })
        .await;
        let addr = server.url.trim_start_matches("http://").to_string();
        let ask = |addr: String| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let body = r#"{"stream":true}"#;
            let req = format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut all = Vec::new();
            let mut buf = [0u8; 4096];
            while !all.ends_with(b"0\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0);
                all.extend_from_slice(&buf[..n]);
            }
            String::from_utf8(all).unwrap()
        };
        let t0 = server.now();
        let (a, b) = tokio::join!(ask(addr.clone()), ask(addr.clone()));
        let t1 = server.now();
        assert!(a.contains("word0") && a.contains("[DONE]") && b.contains("word2"));
        let served = server.served();
        assert_eq!(served.len(), 2);
        // One slot: the second waited for the first to finish.
        let (first, second) = if served[0].slot < served[1].slot {
            (&served[0], &served[1])
        } else {
            (&served[1], &served[0])
        };
        assert!(second.slot.unwrap() >= first.finished.unwrap());
        let share = server.busy_share(t0, t1);
        assert!(share > 0.5 && share <= 1.0, "{share}");
    }
}

//! A scripted model server on 127.0.0.1 for end-to-end tests, on a thread of its own (so a test
//! that blocks its own runtime cannot stall it). It speaks llama-server's `GET /props` and the
//! OpenAI-compatible `POST /v1/chat/completions`, streamed as SSE `data:` chunks ending in
//! `data: [DONE]`, over real HTTP; the kernel's production code talks to it unchanged.
//!
//! What it answers is chosen by a directive in the last user message:
//!
//! - none: "Hello from the fixture." in five pieces, then usage (11 in, 5 out);
//! - `[slow]`: 200 pieces "tick ", one every 25 ms (5 s in all), then usage;
//! - `[tool]`: a call of the request's first tool with `{"path": "a.txt"}`, in two fragments;
//! - `[no-usage]`: the default answer without a usage chunk (the kernel counts);
//! - `[overflow]`: HTTP 400 in llama-server's words for a prompt over its context;
//! - `[tools-unsupported]`: HTTP 500 in llama-server's words for tools without `--jinja`;
//! - `[500]`: HTTP 500 every time;
//! - `[429]`: HTTP 429 with `Retry-After: 1` the first time, then the default answer;
//! - `[hold]`: the request is read and nothing is sent back for 10 s (a server busy with the
//!   prompt), then the default answer.
//!
//! With a key set, a request without `Authorization: Bearer <key>` gets HTTP 401. It counts the
//! streams in flight (and the most at once) and the streams a client closed before their end.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What `/props` reports.
#[derive(Debug, Clone)]
pub struct Props {
    pub slots: u32,
    pub context: u32,
    pub model_path: String,
}

impl Default for Props {
    fn default() -> Props {
        Props {
            slots: 2,
            context: 8192,
            model_path: "/models/fixture-0.5b-q4_k_m.gguf".into(),
        }
    }
}

/// One chat request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The last user message's text.
    pub fn question(&self) -> String {
        last_user(&self.body)
    }
}

#[derive(Default)]
struct State {
    props: Mutex<Props>,
    key: Mutex<Option<String>>,
    received: Mutex<Vec<Received>>,
    streaming: AtomicUsize,
    max_streaming: AtomicUsize,
    closed_early: AtomicUsize,
    limited: Mutex<HashSet<String>>,
    stop: AtomicBool,
}

/// A running fixture; it stops (and its port closes) when dropped.
pub struct ModelServer {
    pub port: u16,
    state: Arc<State>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ModelServer {
    /// Serve on a free port of 127.0.0.1.
    pub fn start(props: Props) -> ModelServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fixture");
        let port = listener.local_addr().expect("port").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(State {
            props: Mutex::new(props),
            ..State::default()
        });
        let s = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the fixture's runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("listener");
                while !s.stop.load(Ordering::SeqCst) {
                    let accepted =
                        tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
                    if let Ok(Ok((conn, _))) = accepted {
                        tokio::spawn(serve(conn, Arc::clone(&s)));
                    }
                }
            });
        });
        ModelServer {
            port,
            state,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Require `Authorization: Bearer <key>` from now on.
    pub fn require_key(&self, key: &str) {
        *self.state.key.lock().unwrap() = Some(key.to_string());
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Streams being sent now.
    pub fn streaming(&self) -> usize {
        self.state.streaming.load(Ordering::SeqCst)
    }

    /// The most streams sent at once.
    pub fn max_streaming(&self) -> usize {
        self.state.max_streaming.load(Ordering::SeqCst)
    }

    /// Streams whose client closed the connection before their end.
    pub fn closed_early(&self) -> usize {
        self.state.closed_early.load(Ordering::SeqCst)
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn last_user(body: &serde_json::Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// One request: its path, headers and body (`None` if the client went away).
async fn read_request(
    conn: &mut TcpStream,
) -> Option<(String, String, Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((
        method,
        path,
        headers,
        buf[head_end..head_end + len].to_vec(),
    ))
}

async fn reply(conn: &mut TcpStream, status: u16, extra: &str, body: &str) {
    let text = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(text.as_bytes()).await;
    let _ = conn.shutdown().await;
}

fn chunk(delta: serde_json::Value, finish: Option<&str>) -> String {
    let c = serde_json::json!({
        "id": "chatcmpl-fixture",
        "object": "chat.completion.chunk",
        "model": "fixture",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    format!("data: {c}\n\n")
}

/// The SSE body of an answer, as (delay before it, text) parts.
fn answer(body: &serde_json::Value, question: &str) -> Vec<(Duration, String)> {
    let now = Duration::ZERO;
    let mut parts = vec![(
        now,
        chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        ),
    )];
    let finish;
    if question.contains("[slow]") {
        for _ in 0..200 {
            parts.push((
                Duration::from_millis(25),
                chunk(serde_json::json!({"content": "tick "}), None),
            ));
        }
        finish = "stop";
    } else if question.contains("[tool]") {
        let name = body["tools"][0]["function"]["name"]
            .as_str()
            .unwrap_or("none")
            .to_string();
        parts.push((
            now,
            chunk(
                serde_json::json!({"tool_calls": [{"index": 0, "id": "call_fx1", "type": "function",
                    "function": {"name": name, "arguments": "{\"path\": "}}]}),
                None,
            ),
        ));
        parts.push((
            now,
            chunk(
                serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"a.txt\"}"}}]}),
                None,
            ),
        ));
        finish = "tool_calls";
    } else {
        for piece in ["Hello", " from", " the", " fixture", "."] {
            parts.push((now, chunk(serde_json::json!({"content": piece}), None)));
        }
        finish = "stop";
    }
    parts.push((now, chunk(serde_json::json!({}), Some(finish))));
    if !question.contains("[no-usage]") {
        let usage = serde_json::json!({"id": "chatcmpl-fixture", "object": "chat.completion.chunk",
            "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}});
        parts.push((now, format!("data: {usage}\n\n")));
    }
    parts.push((now, "data: [DONE]\n\n".to_string()));
    parts
}

async fn serve(mut conn: TcpStream, state: Arc<State>) {
    let Some((method, path, headers, body)) = read_request(&mut conn).await else {
        return;
    };
    if method == "GET" && path == "/props" {
        let p = state.props.lock().unwrap().clone();
        let props = serde_json::json!({
            "default_generation_settings": {"n_ctx": p.context},
            "total_slots": p.slots,
            "model_path": p.model_path,
            "chat_template": "",
        });
        return reply(&mut conn, 200, "", &props.to_string()).await;
    }
    if method != "POST" || path != "/v1/chat/completions" {
        return reply(
            &mut conn,
            404,
            "",
            r#"{"error":{"message":"File Not Found","type":"not_found_error","code":404}}"#,
        )
        .await;
    }
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let received = Received { headers, body };
    let question = received.question();
    let authorized = match &*state.key.lock().unwrap() {
        Some(key) => received.header("authorization") == Some(&format!("Bearer {key}")),
        None => true,
    };
    state.received.lock().unwrap().push(received.clone());
    if !authorized {
        return reply(&mut conn, 401, "", r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#).await;
    }
    if question.contains("[overflow]") {
        return reply(&mut conn, 400, "", r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9000,"n_ctx":8192}}"#).await;
    }
    if question.contains("[tools-unsupported]") {
        return reply(&mut conn, 500, "", r#"{"error":{"code":500,"message":"tools param requires --jinja flag","type":"server_error"}}"#).await;
    }
    if question.contains("[500]") {
        return reply(
            &mut conn,
            500,
            "",
            r#"{"error":{"code":500,"message":"the fixture failed","type":"server_error"}}"#,
        )
        .await;
    }
    if question.contains("[429]") && state.limited.lock().unwrap().insert(question.clone()) {
        return reply(&mut conn, 429, "retry-after: 1\r\n", r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#).await;
    }
    if question.contains("[hold]") {
        let mut probe = [0u8; 64];
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(10)) => {}
            _ = conn.read(&mut probe) => {
                state.closed_early.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
    let now = state.streaming.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_streaming.fetch_max(now, Ordering::SeqCst);
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
    let mut ok = conn.write_all(head.as_bytes()).await.is_ok();
    for (delay, part) in answer(&received.body, &question) {
        if !ok {
            break;
        }
        if !delay.is_zero() {
            // The client sends nothing more: a read that ends means it closed the connection.
            let mut probe = [0u8; 64];
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = conn.read(&mut probe) => {
                    ok = false;
                    break;
                }
            }
        }
        ok = conn.write_all(part.as_bytes()).await.is_ok() && conn.flush().await.is_ok();
    }
    if ok {
        let _ = conn.shutdown().await;
    } else {
        state.closed_early.fetch_add(1, Ordering::SeqCst);
    }
    state.streaming.fetch_sub(1, Ordering::SeqCst);
}

//! End to end through the kernel with the Anthropic Messages API and the Gemini API: the key
//! stored by `agentctl models add` in a real gnome-keyring, the kernel's broker asking a server on
//! 127.0.0.1 that speaks each API's own wire format (Anthropic's typed SSE events with
//! `input_json_delta` fragments; Gemini's whole `functionCall` parts with a thought signature),
//! and the answer streamed to the caller: text, a tool offered under its dotted name and called
//! back under it, usage. The key reaches the server in the provider's own header and nowhere
//! else the caller sees; a key removed or added is followed without a restart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentos_client::{ChatEvent, ChatMessage, ChatRequest, Client, ToolDefinition};
use agentos_tests::keyring::Keyring;
use agentos_tests::{bounded_for, Env};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the server saw: the request's headers (lowercased names) and JSON body.
#[derive(Debug, Clone, Default)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
    body: serde_json::Value,
}

/// One provider's server: answers every POST with `answer(body)` as server-sent events.
async fn serve(answer: fn(&serde_json::Value) -> String) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let (head_end, length) = loop {
                    let mut more = [0u8; 8192];
                    let Ok(n) = conn.read(&mut more).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&more[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let mut more = [0u8; 8192];
                    match conn.read(&mut more).await {
                        Ok(n) if n > 0 => buf.extend_from_slice(&more[..n]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut lines = head.lines();
                let path = lines
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("")
                    .to_string();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
                    .collect();
                let body: serde_json::Value =
                    serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or_default();
                let events = answer(&body);
                log.lock().unwrap().push(Seen {
                    path,
                    headers,
                    body,
                });
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{events}",
                    events.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

/// Anthropic's events: text, then the first offered tool called in two fragments.
fn anthropic_answer(body: &serde_json::Value) -> String {
    let tool = body["tools"][0]["name"]
        .as_str()
        .unwrap_or("none")
        .to_string();
    let events = [
        (
            "message_start",
            serde_json::json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-3-5-haiku-latest", "stop_reason": null, "usage": {"input_tokens": 21, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Reading "}}),
        ),
        (
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "it now."}}),
        ),
        (
            "content_block_stop",
            serde_json::json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": tool, "input": {}}}),
        ),
        (
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"path\": \"a"}}),
        ),
        (
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ".txt\"}"}}),
        ),
        (
            "content_block_stop",
            serde_json::json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "message_delta",
            serde_json::json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 17}}),
        ),
        ("message_stop", serde_json::json!({"type": "message_stop"})),
    ];
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

/// Gemini's events: text, then a whole function call with its thought signature.
fn gemini_answer(body: &serde_json::Value) -> String {
    let tool = body["tools"][0]["functionDeclarations"][0]["name"]
        .as_str()
        .unwrap_or("none")
        .to_string();
    let chunks = [
        serde_json::json!({"candidates": [{"content": {"parts": [{"text": "Reading it now."}], "role": "model"}, "index": 0}], "usageMetadata": {"promptTokenCount": 21, "candidatesTokenCount": 4, "totalTokenCount": 25}}),
        serde_json::json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": tool, "args": {"path": "a.txt"}}, "thoughtSignature": "c2lnbmF0dXJl"}], "role": "model"}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 21, "candidatesTokenCount": 17, "totalTokenCount": 38}}),
    ];
    chunks.iter().map(|c| format!("data: {c}\n\n")).collect()
}

/// Ask through the kernel with one dotted tool offered; the events that came back.
async fn ask(env: &Env) -> Vec<ChatEvent> {
    let c = Client::at_address(&env.address).await.unwrap();
    let mut r = ChatRequest::new(vec![
        ChatMessage::system("You read files with files.read."),
        ChatMessage::user("What does a.txt say?"),
    ]);
    r.tools = vec![ToolDefinition {
        name: "files.read".into(),
        description: "Read a file".into(),
        parameters: serde_json::json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    }];
    r.model = Some("remote".into());
    let (_, mut stream) = c.chat(&r).await.expect("chat through the kernel");
    let mut events = Vec::new();
    while let Some(e) = stream.next().await {
        let e = e.expect("event");
        let last = e.is_last();
        events.push(e);
        if last {
            break;
        }
    }
    events
}

fn check(events: &[ChatEvent], provider: &str) {
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Reading it now.", "{events:#?}");
    assert!(
        events.iter().any(
            |e| matches!(e, ChatEvent::Started { provider: p, local: false, .. } if p == provider)
        ),
        "{events:#?}"
    );
    let call = events
        .iter()
        .find_map(|e| match e {
            ChatEvent::ToolCall { call } => Some(call),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no tool call: {events:#?}"));
    assert_eq!(
        call.name, "files.read",
        "the dotted name comes back: {call:?}"
    );
    assert_eq!(call.arguments, serde_json::json!({"path": "a.txt"}));
    assert!(
        events.iter().any(|e| matches!(
            e,
            ChatEvent::Usage {
                input_tokens: 21,
                output_tokens: 17,
                ..
            }
        )),
        "{events:#?}"
    );
    assert!(
        matches!(events.last(), Some(ChatEvent::Done { .. })),
        "{events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_and_gemini_answer_through_the_kernel_with_their_keys_from_the_keyring() {
    bounded_for(Duration::from_secs(90), async {
        let mut env = Env::start().await;
        let _keyring = Keyring::start(&env).await;
        let pid = std::process::id();

        let (anthropic, anthropic_seen) = serve(anthropic_answer).await;
        let key = format!("sk-ant-e2e-{pid}");
        env.add_model_key("anthropic", None, &anthropic, &key);
        env.restart_kernel().await;
        let events = ask(&env).await;
        check(&events, "anthropic");
        // A model with a list price: an estimated cost, nothing unpriced.
        let c = Client::at_address(&env.address).await.unwrap();
        let usage = c.list_usage().await.unwrap();
        let host = usage.iter().find(|u| u.kind == "host").expect("a host row");
        assert!(
            host.cost_micros > 0 && host.unpriced_requests == 0,
            "{usage:?}"
        );
        let seen = anthropic_seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/v1/messages");
        let header = |s: &Seen, name: &str| {
            s.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header(&seen[0], "x-api-key"), Some(key.clone()));
        // The system text goes apart, as the API wants it.
        assert!(
            seen[0].body["system"].to_string().contains("files.read"),
            "{:?}",
            seen[0].body
        );
        let sent_tool = seen[0].body["tools"][0]["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            !sent_tool.contains('.'),
            "a name the API accepts: {sent_tool}"
        );
        assert!(!format!("{events:?}").contains(&key));

        // Gemini instead: the Anthropic key removed, a Gemini one stored.
        let out = env.agentctl(&["models", "remove", "anthropic"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The kernel follows the keyring: without a restart, the removed key is not used
        // again (the wait is for the keyring's signal to arrive, far below the 30 s for which
        // the kernel keeps what it found).
        tokio::time::sleep(Duration::from_secs(1)).await;
        let c = Client::at_address(&env.address).await.unwrap();
        let mut r = ChatRequest::new(vec![ChatMessage::user("Still there?")]);
        r.model = Some("remote".into());
        if let Ok((_, stream)) = c.chat(&r).await {
            assert!(stream.collect().await.is_err(), "answered without a key");
        }
        assert_eq!(
            anthropic_seen.lock().unwrap().len(),
            1,
            "the removed key was used"
        );
        let (gemini, gemini_seen) = serve(gemini_answer).await;
        let key = format!("gm-e2e-{pid}");
        env.add_model_key("gemini", None, &gemini, &key);
        let listed = tokio::time::timeout(Duration::from_secs(10), async {
            while !c
                .list_models()
                .await
                .unwrap()
                .iter()
                .any(|m| m.provider == "gemini")
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(listed.is_ok(), "the added key was not followed");
        let events = ask(&env).await;
        check(&events, "gemini");
        let seen = gemini_seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        assert!(
            seen[0].path.starts_with("/v1beta/models/")
                && seen[0].path.contains(":streamGenerateContent"),
            "{}",
            seen[0].path
        );
        assert_eq!(header(&seen[0], "x-goog-api-key"), Some(key.clone()));
        assert!(!seen[0].path.contains(&key), "the key is not in the URL");
        assert!(!format!("{events:?}").contains(&key));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_provider_its_last_request_did_not_reach_is_listed_unreachable() {
    bounded_for(Duration::from_secs(60), async {
        let mut env = Env::start().await;
        let _keyring = Keyring::start(&env).await;
        // A port nobody listens on any more.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        env.add_model_key("anthropic", None, &format!("http://{closed}"), "sk-ant-e2e");
        env.restart_kernel().await;
        let c = Client::at_address(&env.address).await.unwrap();
        let reachable = |models: Vec<agentos_dbus_interfaces::ModelInfo>| {
            models
                .iter()
                .find(|m| m.provider == "anthropic")
                .map(|m| m.reachable)
        };
        // Not probed (a request costs): taken as reachable until a request finds otherwise.
        assert_eq!(reachable(c.list_models().await.unwrap()), Some(true));
        let mut r = ChatRequest::new(vec![ChatMessage::user("Anyone there?")]);
        r.model = Some("remote".into());
        if let Ok((_, stream)) = c.chat(&r).await {
            assert!(
                stream.collect().await.is_err(),
                "answered from a closed port"
            );
        }
        assert_eq!(reachable(c.list_models().await.unwrap()), Some(false));
    })
    .await;
}

/// A vLLM-like server: lists one model (a GET has no body), and answers a chat only for it.
fn vllm_answer(body: &serde_json::Value) -> String {
    const MODEL: &str = "Qwen/Qwen2.5-7B-Instruct";
    if body.is_null() {
        return format!(
            r#"{{"object":"list","data":[{{"id":"{MODEL}","object":"model","max_model_len":32768}}]}}"#
        );
    }
    let text = if body["model"] == MODEL {
        "Served."
    } else {
        "wrong model"
    };
    format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n\
         data: {{\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n\
         data: [DONE]\n\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_compatible_server_is_asked_for_the_models_it_lists() {
    bounded_for(Duration::from_secs(60), async {
        let mut env = Env::start().await;
        let _keyring = Keyring::start(&env).await;
        let (url, seen) = serve(vllm_answer).await;
        env.add_model_key(
            "openai-compatible",
            None,
            &format!("{url}/v1"),
            "sk-vllm-e2e",
        );
        env.restart_kernel().await;
        let c = Client::at_address(&env.address).await.unwrap();
        let models = c.list_models().await.unwrap();
        assert!(
            models.iter().any(|m| m.provider == "openai-compatible"
                && m.model == "Qwen/Qwen2.5-7B-Instruct"
                && m.context == 32768),
            "{models:?}"
        );
        let mut r = ChatRequest::new(vec![ChatMessage::user("Are you there?")]);
        r.model = Some("remote".into());
        let (_, stream) = c.chat(&r).await.expect("chat through the kernel");
        let reply = stream.collect().await.expect("an answer");
        assert_eq!(reply.text, "Served.");
        // Its model has no known price: the cost is unknown, not free.
        let usage = c.list_usage().await.unwrap();
        let host = usage.iter().find(|u| u.kind == "host").expect("a host row");
        assert_eq!(
            (host.requests, host.unpriced_requests, host.cost_micros),
            (1, 1, 0),
            "{usage:?}"
        );
        let out = env.agentctl(&["usage"]);
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with("host") && l.trim_end().ends_with(" unknown")),
            "{shown}"
        );
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen[0].path, "/v1/models");
        assert!(seen.iter().all(|s| s
            .headers
            .contains(&("authorization".into(), "Bearer sk-vllm-e2e".into()))));
    })
    .await;
}

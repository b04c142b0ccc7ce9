//! Against a real small model served by llama.cpp's `llama-server`: Qwen2.5-Coder-0.5B with the
//! fenced tool-call template, set up by `scripts/local-llm` and started here on a private port
//! for this test alone (through the e2e harness's `local_llm`, compiled in below). Set
//! `AGENTOS_LLAMA_SERVER_URL` (for example `http://127.0.0.1:8091`) to use a server you run
//! instead. Without either the test says why it skips, unless `AGENTOS_REQUIRE_LOCAL_LLM=1` (CI):
//! then it fails. Structure is asserted, not wording.

// The harness file uses std and tokio only, so it builds here without a dependency on the
// harness crate; not every helper is used by this test.
#[allow(dead_code)]
#[path = "../../tests/src/local_llm.rs"]
mod local_llm;

use std::time::Duration;

use agentos_models::discovery::probe_llama_server;
use agentos_models::{ChatEvent, ChatRequest, Http, Limits, Message, OpenAi, ToolSpec};
use futures_util::StreamExt;
use serde_json::json;

const VAR: &str = "AGENTOS_LLAMA_SERVER_URL";

#[tokio::test]
async fn a_real_model_calls_a_tool_then_answers() {
    // Kept until the end of the test: dropping it stops the server.
    let (base, _server) = match std::env::var(VAR) {
        Ok(url) => (url, None),
        Err(_) => {
            let Some(llm) = local_llm::or_skip() else {
                return;
            };
            let server = llm
                .start(&local_llm::Options::default())
                .await
                .unwrap_or_else(|e| panic!("the real model did not start: {e}"));
            (server.url(), Some(server))
        }
    };
    tokio::time::timeout(Duration::from_secs(120), async {
        let http = Http::new(Limits::default()).unwrap();
        let server = probe_llama_server(&http, &base, Duration::from_secs(5))
            .await
            .expect("the llama-server did not answer /props");
        assert!(server.context_size.unwrap_or(0) > 0);
        assert!(server.slots.unwrap_or(0) >= 1);
        let provider = OpenAi::new(http, server.openai_base_url(), None);

        let tool = ToolSpec {
            name: "read_file".into(),
            description: "Read a text file and return its contents".into(),
            parameters: json!({"type":"object","properties":{"path":{"type":"string"}},
                "required":["path"]}),
        };
        let mut request = ChatRequest::new(
            local_llm::MODEL_ALIAS,
            vec![Message::user(
                "Read the file notes.txt and tell me what it says.",
            )],
        );
        request.tools = vec![tool];
        request.temperature = Some(0.0);
        request.max_tokens = Some(128);
        let mut events = Vec::new();
        let mut s = provider.chat(&request, None).await.unwrap();
        while let Some(e) = s.next().await {
            events.push(e.unwrap());
        }
        let call = events
            .iter()
            .find_map(|e| match e {
                ChatEvent::ToolCallFinished { call, .. } => Some(call.clone()),
                _ => None,
            })
            .expect("the model called no tool");
        assert_eq!(call.name, "read_file");
        assert!(call.arguments.is_object());
        assert!(matches!(events.last(), Some(ChatEvent::Done { .. })));

        // The last turn goes without tools (the model calls them eagerly otherwise).
        let mut answer = ChatRequest::new(
            local_llm::MODEL_ALIAS,
            vec![
                request.messages[0].clone(),
                Message::assistant("", vec![call.clone()]),
                Message::tool_result(&call, "The meeting moved to Thursday."),
            ],
        );
        answer.temperature = Some(0.0);
        answer.max_tokens = Some(64);
        let mut text = String::new();
        let mut usage = None;
        let mut s = provider.chat(&answer, None).await.unwrap();
        while let Some(e) = s.next().await {
            match e.unwrap() {
                ChatEvent::TextDelta(t) => text.push_str(&t),
                ChatEvent::Usage(u) => usage = Some(u),
                _ => {}
            }
        }
        assert!(!text.trim().is_empty());
        assert!(usage.is_some_and(|u| u.input_tokens > 0 && u.output_tokens > 0));
    })
    .await
    .expect("the real model took longer than 120 s");
}

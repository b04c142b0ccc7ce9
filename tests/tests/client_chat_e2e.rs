//! End-to-end: the client side of inference against the real kernel and the real small model
//! (llama-server with Qwen2.5-Coder-0.5B, found by the kernel's own discovery on the test's
//! port): `Client::list_models`, `Client::chat` streamed and collected, a request canceled by
//! id and one dropped mid-answer (the one slot is free again at once), `Client::list_usage`,
//! and `agentctl models` and `agentctl usage` showing the same. Skipped, saying why, without
//! the model (unless AGENTOS_REQUIRE_LOCAL_LLM=1).

use std::time::{Duration, Instant};

use agentos_client::{ChatError, ChatEvent, ChatMessage, ChatRequest, Client};
use agentos_dbus_interfaces::Error;
use agentos_tests::local_llm::{self, Options, MODEL_ALIAS};
use agentos_tests::{bounded_for, Env};

/// Generous: two cores shared with other tests, and a model to load.
const LIMIT: Duration = Duration::from_secs(240);

fn request(prompt: &str, max_tokens: u32) -> ChatRequest {
    let mut r = ChatRequest::new(vec![ChatMessage::user(prompt)]);
    r.max_tokens = Some(max_tokens);
    r.temperature = Some(0.0);
    r.interactive = true;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_lists_asks_streams_cancels_and_counts_through_the_kernel() {
    let Some(llm) = local_llm::or_skip() else {
        return;
    };
    bounded_for(LIMIT, async {
        let server = llm.start(&Options::default()).await.expect("llama-server");
        let mut env = Env::start().await;
        // The kernel finds the server by its own discovery, on this test's port alone.
        let config = env.root().join("config/agentos");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(
            config.join("models.toml"),
            format!(
                "[local]\nollama = \"off\"\nllama-server = \"{}\"\n",
                server.url()
            ),
        )
        .unwrap();
        env.restart_kernel().await;
        let client = Client::with_connection(env.conn.clone()).await.unwrap();

        let models = client.list_models().await.unwrap();
        let model = models
            .iter()
            .find(|m| m.provider == "llama-server")
            .unwrap_or_else(|| panic!("llama-server not listed: {models:?}"));
        assert!(model.local && model.reachable, "{model:?}");
        assert_eq!((model.context, model.slots), (4096, 1), "{model:?}");

        // Refused before any stream, with the kernel's named error and its words.
        let mut unknown = request("Hi", 2);
        unknown.model = Some("nowhere/some-model".into());
        match client.chat(&unknown).await {
            Err(ChatError::Refused(e)) => {
                assert!(!matches!(e, Error::ZBus(_)), "not a named error: {e:?}");
                assert!(e.message().contains("nowhere"), "{e:?}");
            }
            other => panic!("not refused: {other:?}"),
        }

        // Streamed: started first, then text, usage, done last; nothing after it.
        let (id, mut stream) = client
            .chat(&request("Say hello in one word.", 8))
            .await
            .unwrap();
        assert_eq!(stream.id(), Some(id));
        let mut events = Vec::new();
        while let Some(event) = stream.next().await {
            events.push(event.unwrap());
        }
        assert!(
            matches!(&events[0], ChatEvent::Started { provider, local: true, .. } if provider == "llama-server"),
            "{events:?}"
        );
        assert!(
            matches!(events.last(), Some(ChatEvent::Done { .. })),
            "{events:?}"
        );
        assert!(
            events.iter().any(|e| matches!(e, ChatEvent::Text { .. })),
            "{events:?}"
        );

        // Collected.
        let (_, stream) = client
            .chat(&request("What is 2 + 2? Answer with the number.", 8))
            .await
            .unwrap();
        let reply = stream.collect().await.unwrap();
        assert_eq!(reply.provider, "llama-server");
        assert!(reply.local);
        assert!(!reply.text.trim().is_empty(), "{reply:?}");
        let (input, output, _) = reply.usage.expect("usage");
        assert!(input > 0 && output > 0, "{reply:?}");
        assert!(
            reply.finish == "stop" || reply.finish == "length",
            "{reply:?}"
        );

        // A long answer in full, to compare with: counting to 300 fills all 200 tokens.
        let long = || request("Count from 1 to 300, one number per line.", 200);
        let started = Instant::now();
        let (_, stream) = client.chat(&long()).await.unwrap();
        let full = stream.collect().await.unwrap();
        let whole = started.elapsed();
        assert!(full.usage.expect("usage").1 >= 150, "{full:?}");

        // Canceled by id mid-answer: the stream ends with a canceled error.
        let (id, mut stream) = client.chat(&long()).await.unwrap();
        wait_for_text(&mut stream).await;
        client.cancel_chat(id).await.unwrap();
        let err = stream.collect().await.unwrap_err();
        assert_eq!(err.kind(), Some("canceled"), "{err}");

        // Dropped mid-answer: the server's one slot is free again at once, so a short request
        // is served in far less time than the long answer would have kept it.
        let (_, mut stream) = client.chat(&long()).await.unwrap();
        wait_for_text(&mut stream).await;
        drop(stream);
        let asked = Instant::now();
        let (_, stream) = client.chat(&request("Say yes.", 2)).await.unwrap();
        stream.collect().await.unwrap();
        assert!(
            asked.elapsed() < whole / 2,
            "the dropped request kept the slot: {:?} for 2 tokens, {whole:?} for 200",
            asked.elapsed()
        );

        // Counted for the user's own tools.
        let usage = client.list_usage().await.unwrap();
        let host = usage
            .iter()
            .find(|u| u.kind == "host")
            .unwrap_or_else(|| panic!("no host row: {usage:?}"));
        assert!(host.requests >= 6, "{host:?}");
        assert!(host.input_tokens > 0 && host.output_tokens > 0, "{host:?}");
        assert_eq!(host.cost_micros, 0, "local models cost nothing");

        // agentctl shows the same.
        let out = env.agentctl(&["models"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let row = stdout
            .lines()
            .find(|l| l.starts_with("llama-server"))
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(
            row.contains(MODEL_ALIAS) || row.contains("qwen"),
            "{row}"
        );
        assert!(row.contains("local") && row.contains("4096 tokens"), "{row}");
        let out = env.agentctl(&["usage"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.starts_with("KIND"), "{stdout}");
        assert!(
            stdout.lines().any(|l| l.starts_with("host") && l.contains("$0")),
            "{stdout}"
        );
        drop(server);
    })
    .await;
}

/// Read until the first piece of text (the request holds its slot and is generating).
async fn wait_for_text(stream: &mut agentos_client::ChatStream) {
    loop {
        match stream.next().await {
            Some(Ok(ChatEvent::Text { .. })) => return,
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("before any text: {e}"),
            None => panic!("the answer ended before any text"),
        }
    }
}

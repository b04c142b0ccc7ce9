//! End-to-end with the real small model (`scripts/local-llm`): a `llama-server` on
//! 127.0.0.1:8080 is found by the kernel's own discovery, with no settings at all, exactly as a
//! user's would be; a tool offered under its dotted name is called by the model through the
//! broker (OpenAI `tool_calls` fragments assembled, the name turned back); a plain question is
//! answered; and a stream closed mid-answer frees the real server's slot for the next request.
//! Skipped, saying why, without the model (unless AGENTOS_REQUIRE_LOCAL_LLM=1).

use std::time::Duration;

use agentos_client::{ChatEvent, ChatMessage, ChatRequest, Client, ToolDefinition};
use agentos_tests::local_llm::{self, Options};
use agentos_tests::{bounded_for, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_model_is_found_on_its_port_and_calls_tools_through_the_broker() {
    let Some(llm) = local_llm::or_skip() else {
        return;
    };
    bounded_for(Duration::from_secs(300), async {
        let options = Options {
            slots: 1,
            context: 4096,
            ..Options::default()
        };
        let _server = llm
            .start_autodetected(&options)
            .await
            .expect("llama-server on 127.0.0.1:8080");
        // No models.toml (the harness writes one that looks nowhere): the kernel looks where a
        // user's servers listen.
        let mut env = Env::start().await;
        std::fs::remove_file(env.root().join("config/agentos/models.toml")).unwrap();
        env.restart_kernel().await;
        let c = Client::with_connection(env.conn.clone()).await.unwrap();
        let models = c.list_models().await.expect("ListModels");
        let m = models
            .iter()
            .find(|m| m.provider == "llama-server")
            .unwrap_or_else(|| panic!("llama-server not found: {models:?}"));
        assert!(m.local && m.reachable);
        assert_eq!(m.slots, 1);
        assert_eq!(m.context, 4096);
        assert!(m.model.starts_with(local_llm::MODEL_ALIAS), "{m:?}");

        // A tool, asked for by the name the server gives the model (its alias).
        let mut r = ChatRequest::new(vec![
            ChatMessage::system("You can read the user's files with the tool files.read."),
            ChatMessage::user("What does the file notes.txt say? Read it."),
        ]);
        r.tools = vec![ToolDefinition {
            name: "files.read".into(),
            description: "Read a text file by its path".into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {"path": {"type": "string", "description": "the file's path"}},
                "required": ["path"]
            }),
        }];
        r.model = Some(local_llm::MODEL_ALIAS.into());
        r.temperature = Some(0.0);
        r.max_tokens = Some(128);
        let (_, stream) = c.chat(&r).await.expect("Chat with a tool");
        let reply = stream.collect().await.expect("the model's reply");
        assert_eq!(reply.provider, "llama-server");
        assert!(!reply.tool_calls.is_empty(), "no tool call: {reply:?}");
        let call = &reply.tool_calls[0];
        assert_eq!(call.name, "files.read");
        assert!(call.arguments.is_object(), "{call:?}");
        assert!(!call.id.is_empty());

        // A plain question, without tools.
        let mut q = ChatRequest::new(vec![ChatMessage::user(
            "Name the capital of France in one word.",
        )]);
        q.temperature = Some(0.0);
        q.max_tokens = Some(16);
        let (_, stream) = c.chat(&q).await.unwrap();
        let reply = stream.collect().await.expect("an answer");
        assert!(!reply.text.trim().is_empty(), "{reply:?}");
        let (input, output, _) = reply.usage.expect("usage");
        assert!(input > 0 && output > 0);

        // One slot: a long answer closed after its first piece frees it for the next request.
        let mut long = ChatRequest::new(vec![ChatMessage::user(
            "Write a long story about a lighthouse keeper, at least 500 words.",
        )]);
        long.max_tokens = Some(1000);
        let (_, mut stream) = c.chat(&long).await.unwrap();
        loop {
            match stream.next().await {
                Some(Ok(ChatEvent::Text { .. })) => break,
                Some(Ok(_)) => continue,
                other => panic!("the long answer did not begin: {other:?}"),
            }
        }
        let (_, waiting) = c.chat(&q).await.unwrap();
        drop(stream);
        let started = std::time::Instant::now();
        let reply = tokio::time::timeout(Duration::from_secs(60), waiting.collect())
            .await
            .expect("the next request runs once the slot is free")
            .expect("an answer");
        assert!(!reply.text.trim().is_empty());
        // The 1000-token story alone would take half a minute at this model's speed here.
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the slot was not freed at once: {:?}",
            started.elapsed()
        );
    })
    .await;
}

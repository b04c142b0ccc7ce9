//! Finding local servers: scripted Ollama `/api/tags` and llama-server `/props` replies, a closed
//! port and a server too slow to answer.

mod fixture;

use std::time::Duration;

use agentos_models::discovery::{
    probe_llama_server, probe_ollama, probe_openai_models, LlamaServer, OllamaServer, ServedModel,
};
use agentos_models::{discover, Http, Limits, LocalAddresses, ModelError};
use fixture::{within, Fixture, Reply};

fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

#[tokio::test]
async fn both_servers_are_found_with_what_they_serve() {
    within(async {
        let ollama = Fixture::start(vec![Reply::json(
            200,
            r#"{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest","size":2019393189,"details":{"family":"llama"}},{"name":"qwen2.5-coder:0.5b","model":"qwen2.5-coder:0.5b"}]}"#,
        )])
        .await;
        let llama = Fixture::start(vec![Reply::json(
            200,
            r#"{"default_generation_settings":{"n_ctx":8192,"params":{"temperature":0.8}},"total_slots":4,"model_path":"/models/qwen2.5-coder-0.5b-q4_k_m.gguf","chat_template":"..."}"#,
        )])
        .await;
        let http = Http::new(Limits::default()).unwrap();
        let found = discover(
            &http,
            &LocalAddresses {
                ollama: ollama.base.clone(),
                llama_server: format!("{}/", llama.base),
                time_limit: Duration::from_secs(2),
            },
        )
        .await;
        assert_eq!(
            found.ollama,
            Some(OllamaServer {
                base_url: ollama.base.clone(),
                models: vec!["llama3.2:latest".into(), "qwen2.5-coder:0.5b".into()],
            })
        );
        assert_eq!(
            found.llama_server,
            Some(LlamaServer {
                base_url: llama.base.clone(),
                context_size: Some(8192),
                slots: Some(4),
                model_path: Some("/models/qwen2.5-coder-0.5b-q4_k_m.gguf".into()),
            })
        );
        assert_eq!(ollama.received()[0].path, "/api/tags");
        assert_eq!(ollama.received()[0].method, "GET");
        assert_eq!(llama.received()[0].path, "/props");
        assert_eq!(
            found.llama_server.unwrap().openai_base_url(),
            format!("{}/v1", llama.base)
        );
    })
    .await;
}

#[tokio::test]
async fn absent_or_slow_servers_are_reported_quickly() {
    within(async {
        let http = Http::new(Limits::default()).unwrap();
        let closed = closed_port();
        let err = probe_ollama(&http, &closed, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, ModelError::Unreachable { .. }), "{err:?}");

        // Headers sent, the body held back past the limit.
        let slow =
            Fixture::start(vec![Reply::sse(&["{}"]).delay_each(Duration::from_secs(5))]).await;
        let started = std::time::Instant::now();
        let err = probe_llama_server(&http, &slow.base, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, ModelError::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2));

        let found = discover(
            &http,
            &LocalAddresses {
                ollama: closed.clone(),
                llama_server: closed,
                time_limit: Duration::from_millis(300),
            },
        )
        .await;
        assert_eq!(found, Default::default());
    })
    .await;
}

#[tokio::test]
async fn an_openai_compatible_server_lists_its_models_with_the_key() {
    within(async {
        let server = Fixture::start(vec![
            Reply::json(
                200,
                r#"{"object":"list","data":[{"id":"Qwen/Qwen2.5-7B-Instruct","object":"model","owned_by":"vllm","max_model_len":32768},{"id":" "}]}"#,
            ),
            Reply::json(401, r#"{"error":{"message":"Invalid API key"}}"#),
        ])
        .await;
        let http = Http::new(Limits::default()).unwrap();
        let key = agentos_models::ApiKey::new("sk-vllm-0000");
        let base = format!("{}/v1/", server.base);
        let models = probe_openai_models(&http, &base, Some(&key), Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(
            models,
            [ServedModel {
                id: "Qwen/Qwen2.5-7B-Instruct".into(),
                context: Some(32768),
            }]
        );
        let asked = &server.received()[0];
        assert_eq!((asked.method.as_str(), asked.path.as_str()), ("GET", "/v1/models"));
        assert_eq!(asked.header("authorization"), Some("Bearer sk-vllm-0000"));
        // A wrong key is named as such.
        let refused = probe_openai_models(&http, &base, Some(&key), Duration::from_secs(2)).await;
        assert_eq!(refused, Err(ModelError::WrongKey { status: 401 }));
        // Nobody there: unreachable.
        let gone = probe_openai_models(&http, &closed_port(), None, Duration::from_secs(2)).await;
        assert!(matches!(gone, Err(ModelError::Unreachable { .. })), "{gone:?}");
    })
    .await;
}

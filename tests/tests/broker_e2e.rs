//! End-to-end: the kernel's model broker against a scripted llama-server on 127.0.0.1 (the
//! production HTTP code unchanged): the server found without setup beyond its address, answers
//! streamed to the caller alone (never on the bus), usage counted; no model at all named with how
//! to add one; a slot freed at once when the caller closes its socket or cancels; budgets refused
//! at once; each provider error in plain words; a remote provider (its key in a real
//! gnome-keyring) denied to an agent without `model.remote` and used with it, the key in no log;
//! an emulated Flatpak app refused without `model.use` and served with it, on the bus and on a
//! private channel it opened (which asks as the app; an fd the app sends on it ends it); one
//! connection to the model server kept for answer after answer, even when a body's end comes
//! after the answer's last event; a server on the local port used when the user runs it, not
//! when a sandboxed app does.

use std::time::{Duration, Instant};

use agentos_client::{ChatError, ChatEvent, ChatMessage, ChatRequest, ChatStream, Client};
use agentos_dbus_interfaces::proxies::Models1Proxy;
use agentos_dbus_interfaces::{Error, TaskState};
use agentos_tests::keyring::Keyring;
use agentos_tests::model_fixture::{ModelServer, Props};
use agentos_tests::model_server::{ModelServer as PacedServer, ServerConfig};
use agentos_tests::{bin, bounded, bounded_for, channel_on, ConsentReply, Env, Responder};

/// `models.toml` for a kernel that looks for llama-server at `server` and not for Ollama.
fn settings_for(server: Option<&ModelServer>, extra: &str) -> String {
    let llama = server.map_or("off".to_string(), ModelServer::url);
    format!("[local]\nollama = \"off\"\nllama-server = \"{llama}\"\n{extra}")
}

/// A kernel whose model settings are `settings`.
async fn env_with(settings: &str) -> Env {
    let mut env = Env::start().await;
    env.restart_with_model_settings(settings).await;
    env
}

async fn client(env: &Env) -> Client {
    Client::with_connection(env.conn.clone())
        .await
        .expect("client")
}

fn ask(question: &str, max_tokens: Option<u32>) -> ChatRequest {
    let mut r = ChatRequest::new(vec![ChatMessage::user(question)]);
    r.max_tokens = max_tokens;
    r
}

/// The next event, within `limit` (`None`: nothing came).
async fn next_within(s: &mut ChatStream, limit: Duration) -> Option<ChatEvent> {
    match tokio::time::timeout(limit, s.next()).await {
        Ok(Some(Ok(e))) => Some(e),
        Ok(other) => panic!("the stream ended: {other:?}"),
        Err(_) => None,
    }
}

/// Wait until `f` holds (bounded).
async fn until(what: &str, limit: Duration, f: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "{what} did not happen in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_local_server_is_found_and_its_answer_streams_to_the_caller_alone() {
    bounded(async {
        let server = ModelServer::start(Props::default());
        let env = env_with(&settings_for(Some(&server), "")).await;
        let c = client(&env).await;
        let models = c.list_models().await.expect("ListModels");
        assert_eq!(models.len(), 1, "{models:?}");
        let m = &models[0];
        assert_eq!(
            (m.provider.as_str(), m.model.as_str()),
            ("llama-server", "fixture-0.5b-q4_k_m")
        );
        assert!(m.local && m.reachable);
        assert_eq!((m.context, m.slots), (8192, 2));

        // Every signal on the bus is watched while the answer streams.
        let dbus = zbus::fdo::DBusProxy::new(&env.conn).await.unwrap();
        dbus.add_match_rule(
            zbus::MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .build(),
        )
        .await
        .unwrap();
        let mut bus = zbus::MessageStream::from(&env.conn);
        let (_, stream) = c.chat(&ask("hi", Some(64))).await.expect("Chat");
        let reply = stream.collect().await.expect("the answer");
        assert_eq!(reply.text, "Hello from the fixture.");
        assert_eq!(
            (reply.provider.as_str(), reply.local, reply.finish.as_str()),
            ("llama-server", true, "stop")
        );
        assert_eq!(reply.usage, Some((11, 5, false)));
        let sent = &server.received()[0].body;
        assert_eq!(sent["model"], "fixture-0.5b-q4_k_m");
        assert_eq!(sent["stream"], true);
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(sent["max_tokens"], 64);
        // Nothing of the answer went over the bus.
        let quiet = tokio::time::sleep(Duration::from_millis(200));
        tokio::pin!(quiet);
        loop {
            tokio::select! {
                () = &mut quiet => break,
                Some(Ok(msg)) = futures_util::StreamExt::next(&mut bus) => {
                    let body = String::from_utf8_lossy(&msg.body().data()[..]).into_owned();
                    assert!(!body.contains("fixture"), "an answer went over the bus: {body}");
                }
            }
        }

        // Without max_tokens the answer gets room within the window; without usage the kernel
        // counts it.
        let (_, stream) = c.chat(&ask("[no-usage] hi", None)).await.unwrap();
        let reply = stream.collect().await.unwrap();
        assert!(matches!(reply.usage, Some((_, _, true))), "{reply:?}");
        assert_eq!(server.received()[1].body["max_tokens"], 4096);

        // Tool calls come whole, named as the caller named the tool.
        let mut r = ask("[tool] read it", Some(64));
        r.tools = vec![agentos_client::ToolDefinition {
            name: "files.read".into(),
            description: "Read a file".into(),
            parameters: serde_json::json!({"type": "object"}),
        }];
        let (_, stream) = c.chat(&r).await.unwrap();
        let reply = stream.collect().await.unwrap();
        assert_eq!(
            server.received()[2].body["tools"][0]["function"]["name"],
            "files_read"
        );
        assert_eq!(reply.tool_calls.len(), 1, "{reply:?}");
        assert_eq!(reply.tool_calls[0].name, "files.read");
        assert_eq!(
            reply.tool_calls[0].arguments,
            serde_json::json!({"path": "a.txt"})
        );
        assert_eq!(reply.finish, "tool_calls");

        // Usage, kept in the store, for the user's own tools.
        let usage = c.list_usage().await.expect("ListUsage");
        let host = usage.iter().find(|u| u.kind == "host").expect("a host row");
        assert_eq!(host.requests, 3, "{usage:?}");
        assert!(
            host.input_tokens >= 22 && host.output_tokens >= 10,
            "{host:?}"
        );
        assert_eq!(host.cost_micros, 0);
    })
    .await;
}

#[tokio::test]
async fn with_no_model_at_all_asking_says_how_to_add_one() {
    bounded(async {
        let env = env_with(&settings_for(None, "")).await;
        let c = client(&env).await;
        assert!(c.list_models().await.unwrap().is_empty());
        match c.chat(&ask("hi", None)).await {
            Err(ChatError::Refused(Error::NoModel(m))) => {
                assert!(m.contains("agentctl models add"), "{m}");
                assert!(m.contains("llama-server") && m.contains("ollama"), "{m}");
            }
            other => panic!("expected NoModel, got {other:?}"),
        }
        match c.chat(&ask("hi", None).with_model("mystery-model")).await {
            Err(ChatError::Refused(Error::NoModel(_))) => {}
            other => panic!("expected NoModel, got {other:?}"),
        }
    })
    .await;
}

trait WithModel {
    fn with_model(self, model: &str) -> Self;
}

impl WithModel for ChatRequest {
    fn with_model(mut self, model: &str) -> Self {
        self.model = Some(model.into());
        self
    }
}

#[tokio::test]
async fn closing_the_socket_or_cancelling_frees_the_slot_at_once() {
    bounded(async {
        let server = ModelServer::start(Props {
            slots: 1,
            ..Props::default()
        });
        let env = env_with(&settings_for(Some(&server), "")).await;
        let c = client(&env).await;
        let (_, mut slow) = c.chat(&ask("[slow]", None)).await.unwrap();
        assert!(matches!(
            next_within(&mut slow, Duration::from_secs(5)).await,
            Some(ChatEvent::Started { .. })
        ));
        assert!(matches!(
            next_within(&mut slow, Duration::from_secs(5)).await,
            Some(ChatEvent::Text { .. })
        ));
        // One slot: the next request waits, and the server never queues it.
        let (_, mut waiting) = c.chat(&ask("hi", None)).await.unwrap();
        assert_eq!(
            next_within(&mut waiting, Duration::from_millis(300)).await,
            None
        );
        assert_eq!(server.streaming(), 1);
        // Closing the socket cancels the running request: the slot is free at once.
        let closed = Instant::now();
        drop(slow);
        assert!(matches!(
            next_within(&mut waiting, Duration::from_secs(2)).await,
            Some(ChatEvent::Started { .. })
        ));
        let waited = closed.elapsed();
        assert!(
            waited < Duration::from_secs(1),
            "the slot freed after {waited:?}"
        );
        until(
            "the server saw the connection close",
            Duration::from_secs(3),
            || server.closed_early() == 1,
        )
        .await;
        let rest = waiting.collect().await.unwrap();
        assert_eq!(rest.finish, "stop");

        // Cancel by id does the same, and the caller is told.
        let (id, mut slow) = c.chat(&ask("[slow]", None)).await.unwrap();
        assert!(matches!(
            next_within(&mut slow, Duration::from_secs(5)).await,
            Some(ChatEvent::Started { .. })
        ));
        let (_, waiting) = c.chat(&ask("hi", None)).await.unwrap();
        c.cancel_chat(id).await.expect("Cancel");
        let canceled = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match slow.next().await {
                    Some(Ok(ChatEvent::Error { kind, .. })) => return kind,
                    Some(Ok(_)) => continue,
                    other => panic!("{other:?}"),
                }
            }
        })
        .await
        .expect("the canceled stream ends at once");
        assert_eq!(canceled, "canceled");
        let rest = tokio::time::timeout(Duration::from_secs(2), waiting.collect())
            .await
            .expect("the next request runs at once")
            .unwrap();
        assert_eq!(rest.text, "Hello from the fixture.");
        until(
            "the server saw the second close",
            Duration::from_secs(3),
            || server.closed_early() == 2,
        )
        .await;
        assert_eq!(
            server.max_streaming(),
            1,
            "never more than the server's slots"
        );
        // A request that ended cannot be canceled.
        assert!(c.cancel_chat(id).await.is_err());
        // The canceled requests are counted too.
        let usage = c.list_usage().await.unwrap();
        assert_eq!(usage.iter().find(|u| u.kind == "host").unwrap().requests, 4);
    })
    .await;
}

#[tokio::test]
async fn a_request_that_reached_the_provider_counts_its_prompt_though_left_unanswered() {
    bounded(async {
        let server = ModelServer::start(Props::default());
        let env = env_with(&settings_for(Some(&server), "")).await;
        let c = client(&env).await;
        // The server has the prompt (Chat returns once it left) and is silent; the caller goes.
        let long = format!("[hold] {}", "many words ".repeat(400));
        let (_, stream) = c.chat(&ask(&long, None)).await.unwrap();
        drop(stream);
        until(
            "the server saw the connection close",
            Duration::from_secs(3),
            || server.closed_early() == 1,
        )
        .await;
        // Its prompt may have cost the user: it is counted (estimated: the server said nothing).
        let counted = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let usage = c.list_usage().await.unwrap();
                if let Some(u) = usage.iter().find(|u| u.kind == "host") {
                    return (u.requests, u.input_tokens);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the request is counted");
        assert_eq!(counted.0, 1);
        assert!(counted.1 >= 1_100, "prompt tokens counted: {}", counted.1);
    })
    .await;
}

#[tokio::test]
async fn over_its_budget_a_caller_is_refused_at_once() {
    bounded(async {
        let server = ModelServer::start(Props::default());
        let mut env = env_with(&settings_for(
            Some(&server),
            "[budget.principals.host]\ntokens-per-hour = 1000\n",
        ))
        .await;
        let c = client(&env).await;
        // Charged its estimate (prompt and 500), then what it used (16).
        let (_, s) = c.chat(&ask("hi", Some(500))).await.unwrap();
        s.collect().await.unwrap();
        let asked = Instant::now();
        match c.chat(&ask("hi", Some(980))).await {
            Err(ChatError::Refused(Error::QuotaExceeded(m))) => {
                assert!(
                    m.contains("host has used 16 of its 1000 model tokens this hour"),
                    "{m}"
                );
                assert!(m.contains("renews in"), "{m}");
            }
            other => panic!("expected QuotaExceeded, got {other:?}"),
        }
        assert!(asked.elapsed() < Duration::from_secs(1), "refused at once");
        // What fits still runs.
        let (_, s) = c.chat(&ask("hi", Some(900))).await.unwrap();
        s.collect().await.unwrap();
        assert_eq!(server.received().len(), 2);
        // A restart of the kernel does not renew the budget (unless the hour did, meanwhile).
        let hour = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                / 3600
        };
        let before = hour();
        env.restart_kernel().await;
        let c = client(&env).await;
        let refused = c.chat(&ask("hi", Some(980))).await;
        if hour() != before {
            return;
        }
        match refused {
            Err(ChatError::Refused(Error::QuotaExceeded(m))) => assert!(
                m.contains("host has used 32 of its 1000 model tokens this hour"),
                "{m}"
            ),
            other => panic!("expected QuotaExceeded after a restart, got {other:?}"),
        }
        assert_eq!(server.received().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn each_provider_error_reaches_the_caller_in_plain_words() {
    bounded_for(Duration::from_secs(60), async {
        let server = ModelServer::start(Props::default());
        let env = env_with(&settings_for(Some(&server), "")).await;
        let c = client(&env).await;
        let fail = |r: Result<agentos_client::ChatReply, ChatError>| match r {
            Err(ChatError::Model { kind, message }) => (kind, message),
            other => panic!("expected a model error, got {other:?}"),
        };
        let (_, s) = c.chat(&ask("[overflow]", None)).await.unwrap();
        let (kind, message) = fail(s.collect().await);
        assert_eq!(kind, "context_overflow");
        assert!(
            message.starts_with(
                "llama-server: the conversation is longer than the model's context allows"
            ),
            "{message}"
        );

        let mut r = ask("[tools-unsupported]", None);
        r.tools = vec![agentos_client::ToolDefinition {
            name: "web.fetch".into(),
            description: "Fetch".into(),
            parameters: serde_json::json!({"type": "object"}),
        }];
        let (_, s) = c.chat(&r).await.unwrap();
        let (kind, message) = fail(s.collect().await);
        assert_eq!(kind, "tools_not_supported");
        assert!(message.contains("cannot call tools"), "{message}");

        // 429 with Retry-After: 1 is retried after that second.
        let asked = Instant::now();
        let (_, s) = c.chat(&ask("[429] hi", None)).await.unwrap();
        let reply = s.collect().await.expect("answered after the wait");
        assert_eq!(reply.text, "Hello from the fixture.");
        assert!(asked.elapsed() >= Duration::from_secs(1));

        let (_, s) = c.chat(&ask("[500]", None)).await.unwrap();
        let (kind, message) = fail(s.collect().await);
        assert_eq!(kind, "provider");
        assert!(
            message.contains("the model server failed (HTTP 500)"),
            "{message}"
        );

        // The server goes away: unreachable, and listed as such.
        drop(server);
        let (_, s) = c
            .chat(&ask("hi", None).with_model("llama-server/x"))
            .await
            .unwrap();
        let (kind, message) = fail(s.collect().await);
        assert_eq!(kind, "unreachable");
        assert!(message.contains("cannot be reached"), "{message}");
        let models = c.list_models().await.unwrap();
        assert_eq!(models.len(), 1);
        assert!(!models[0].reachable);
        // Nothing reachable: asking for any model says how to add one.
        match c.chat(&ask("hi", None)).await {
            Err(ChatError::Refused(Error::NoModel(m))) => {
                assert!(m.contains("agentctl models add"))
            }
            other => panic!("expected NoModel, got {other:?}"),
        }
    })
    .await;
}

/// `agentctl run` / `ask` with `--model` (the `model` option of `Kernel1.Delegate`).
fn agentctl_for(env: &Env, args: &[&str]) -> (bool, String, String) {
    let out = env.run(
        std::process::Command::new(bin("agentctl"))
            .arg("--address")
            .arg(&env.address)
            .args(args),
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_task_given_a_model_asks_it_when_its_requests_name_none() {
    bounded_for(Duration::from_secs(60), async {
        let server = ModelServer::start(Props::default());
        let mut env = env_with(&settings_for(Some(&server), "")).await;
        write_chatter(&env);
        env.restart_kernel().await;
        // Without the option: the default model.
        let t = env.run_task("chatter", "chat - hello").await;
        assert_eq!(t.state, TaskState::Completed.as_str(), "{t:?}");
        assert!(t.result.starts_with("llama-server/"), "{t:?}");
        assert!(!t.result.contains("llama-server/other"), "{t:?}");
        // With it, the task's requests that name no model ask that one; a request that names
        // its own is served as it asks.
        for (args, answer) in [
            (
                &[
                    "run",
                    "--model",
                    "llama-server/other",
                    "chatter",
                    "chat",
                    "-",
                    "hello",
                ][..],
                "llama-server/other",
            ),
            (
                &[
                    "run",
                    "--model",
                    "llama-server/other",
                    "chatter",
                    "chat",
                    "llama-server/mine",
                    "hi",
                ],
                "llama-server/mine",
            ),
            (
                &[
                    "ask",
                    "--agent",
                    "chatter",
                    "--model",
                    "llama-server/other",
                    "chat",
                    "-",
                    "hi",
                ],
                "llama-server/other",
            ),
        ] {
            let (ok, out, err) = agentctl_for(&env, args);
            assert!(ok, "{args:?}: {out}{err}");
            assert!(
                out.contains(&format!("{answer}: Hello from the fixture.")),
                "{args:?}: {out}"
            );
        }
        // One the broker cannot serve is refused before any task is made.
        let before = client(&env).await.list_usage().await.unwrap();
        let (ok, out, err) = agentctl_for(
            &env,
            &[
                "run",
                "--model",
                "nowhere/x",
                "chatter",
                "chat",
                "-",
                "hello",
            ],
        );
        assert!(!ok, "{out}");
        assert!(
            err.contains("cannot use the model \"nowhere/x\"") && err.contains("nowhere"),
            "{err}"
        );
        let tasks = env.kernel().await.list_tasks(10).await.unwrap();
        assert_eq!(tasks.len(), 4, "no task for the refused one: {tasks:?}");
        assert_eq!(client(&env).await.list_usage().await.unwrap(), before);
    })
    .await;
}

/// An agent that asks a model for its task (`chat` step of the test agent), its manifest
/// declaring `model.remote`.
fn write_chatter(env: &Env) {
    env.write_manifest("chatter", &bin("agentos-test-agent"), &["model.remote"]);
}

#[tokio::test]
async fn a_remote_provider_needs_model_remote_and_its_key_stays_in_the_keyring() {
    bounded_for(Duration::from_secs(60), async {
        let remote = ModelServer::start(Props::default());
        let key = format!("sk-broker-e2e-{}", std::process::id());
        remote.require_key(&key);
        // No local model: a request goes to the remote provider.
        let mut env = env_with(&settings_for(None, "")).await;
        write_chatter(&env);
        let _keyring = Keyring::start(&env).await;
        let base = format!("{}/v1", remote.url());
        // `agentctl models add` reads the key from stdin.
        env.add_model_key("openai-compatible", None, &base, &key);
        // The kernel logs to a file the test reads afterwards.
        let log = env.root().join("kernel.log");
        let mut cmd = env.kernel_command();
        cmd.env("RUST_LOG", "debug")
            .stderr(std::fs::File::create(&log).expect("log file"));
        env.stop_kernel("TERM").await;
        env.start_kernel_with(cmd).await;

        let c = client(&env).await;
        let models = c.list_models().await.unwrap();
        assert_eq!(models.len(), 1, "{models:?}");
        assert_eq!(models[0].provider, "openai-compatible");
        assert!(!models[0].local);

        // No grant, and the user denies when asked.
        let consent = Responder::start(&env.address, &[ConsentReply::Deny]).await;
        let t = env.run_task("chatter", "chat - hello").await;
        assert_eq!(t.state, TaskState::Failed.as_str(), "{t:?}");
        assert!(
            t.message.contains("denied") || t.message.contains("Access"),
            "{t:?}"
        );
        assert!(
            remote.received().is_empty(),
            "nothing was sent without the grant"
        );
        let prompt = &consent.prompts()[0];
        assert!(
            format!("{prompt:?}").contains("openai-compatible"),
            "{prompt:?}"
        );
        // The prompt says why the question would leave the computer.
        assert!(
            prompt.body.contains(
                "No model runs on this computer (no Ollama or llama-server with a model was \
                 found), so its questions would go to openai-compatible, off this computer."
            ),
            "{prompt:?}"
        );

        // With the grant, the answer comes from the remote provider, with the key.
        env.kernel()
            .await
            .grant("chatter", "model.remote", "openai-compatible", "session")
            .await
            .expect("grant");
        let t = env.run_task("chatter", "chat - hello").await;
        assert_eq!(t.state, TaskState::Completed.as_str(), "{t:?}");
        assert_eq!(
            t.result,
            "openai-compatible/default: Hello from the fixture."
        );
        let sent = remote.received();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].header("authorization"),
            Some(format!("Bearer {key}").as_str())
        );
        // Counted for the agent and its task.
        let usage = c.list_usage().await.unwrap();
        assert!(usage
            .iter()
            .any(|u| u.kind == "agent" && u.who == "chatter" && u.requests == 1));
        assert!(usage
            .iter()
            .any(|u| u.kind == "task" && u.who == t.id.to_string()));

        // A wrong key is named as such, without the key.
        remote.require_key("sk-another");
        let t = env.run_task("chatter", "chat - hello").await;
        assert_eq!(t.state, TaskState::Failed.as_str());
        assert!(t.message.contains("refused the API key"), "{t:?}");
        assert!(
            t.message
                .contains("`agentctl models add openai-compatible --base-url URL`"),
            "{t:?}"
        );
        assert!(!t.message.contains(&key));

        env.stop_kernel("TERM").await;
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(!logged.is_empty(), "the kernel logged at debug level");
        assert!(!logged.contains(&key), "the key is in the kernel's log");
        let records = env.root().join("data");
        for entry in std::fs::read_dir(&records).unwrap().flatten() {
            if entry.path().is_file() {
                let bytes = std::fs::read(entry.path()).unwrap();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(&key),
                    "the key is in {}",
                    entry.path().display()
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn of_two_remote_providers_the_one_granted_is_used_and_nobody_is_asked() {
    bounded_for(Duration::from_secs(60), async {
        let (home, work) = (
            ModelServer::start(Props::default()),
            ModelServer::start(Props::default()),
        );
        let pid = std::process::id();
        let (home_key, work_key) = (format!("sk-home-{pid}"), format!("sk-work-{pid}"));
        home.require_key(&home_key);
        work.require_key(&work_key);
        // No local model: a request that names none goes to a remote provider.
        let mut env = env_with(&settings_for(None, "")).await;
        write_chatter(&env);
        let _keyring = Keyring::start(&env).await;
        let kind = "openai-compatible";
        env.add_model_key(kind, None, &format!("{}/v1", home.url()), &home_key);
        env.add_model_key(kind, Some("work"), &format!("{}/v1", work.url()), &work_key);
        env.restart_kernel().await;
        let names: Vec<String> = client(&env)
            .await
            .list_models()
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.provider)
            .collect();
        assert!(
            names.contains(&"openai-compatible".to_string())
                && names.contains(&"openai-compatible:work".to_string()),
            "{names:?}"
        );
        // Each granted in turn, whichever the catalog lists first: no consent provider runs,
        // so a request that asked the user would fail.
        let kernel = env.kernel().await;
        for (scope, server, other) in [
            ("openai-compatible:work", &work, &home),
            ("openai-compatible", &home, &work),
        ] {
            kernel
                .grant("chatter", "model.remote", scope, "session")
                .await
                .expect("grant");
            let (before, others) = (server.received().len(), other.received().len());
            let t = env.run_task("chatter", "chat - hello").await;
            assert_eq!(t.state, TaskState::Completed.as_str(), "{scope}: {t:?}");
            assert_eq!(
                t.result,
                format!("{scope}/default: Hello from the fixture.")
            );
            assert_eq!(server.received().len(), before + 1, "{scope}");
            assert_eq!(
                other.received().len(),
                others,
                "{scope}: the other was asked"
            );
            kernel
                .revoke("chatter", "model.remote", scope)
                .await
                .expect("revoke");
        }
    })
    .await;
}

#[tokio::test]
async fn a_flatpak_app_uses_a_model_only_with_the_users_grant() {
    if !agentos_tests::bwrap_works() {
        eprintln!("skipped: bubblewrap cannot create namespaces here");
        return;
    }
    bounded_for(Duration::from_secs(60), async {
        let server = ModelServer::start(Props::default());
        let env = env_with(&settings_for(Some(&server), "")).await;
        let app_id = "org.example.Writer";
        let (_app, conn) = env.app_connection(app_id).await;
        let models = Models1Proxy::new(&conn).await.unwrap();
        let request = ask("hi", Some(32)).to_json();
        let (_channel, on_channel) = channel_on(&conn).await;

        // No consent provider answers: denied, with the app's real identity in the record, on
        // the bus and on the app's channel alike.
        match models.chat(&request).await {
            Err(Error::AccessDenied(_)) => {}
            other => panic!("expected AccessDenied, got {other:?}"),
        }
        // (The user's own tools need no grant: refused, the channel asked as the app.)
        match on_channel.chat(&request).await {
            Err(Error::AccessDenied(_)) => {}
            other => panic!("expected AccessDenied on the channel, got {other:?}"),
        }
        // Nor does it learn which providers and key accounts the user set up.
        match models.list_models().await {
            Err(Error::AccessDenied(_)) => {}
            other => panic!("expected AccessDenied listing models, got {other:?}"),
        }
        assert!(server.received().is_empty());

        // The user allows it for the session when asked.
        let consent = Responder::start(&env.address, &[ConsentReply::Allow("session")]).await;
        let (_, fd) = models.chat(&request).await.expect("Chat with the grant");
        let reply = ChatStream::from_fd(fd.into()).collect().await.unwrap();
        assert_eq!(reply.text, "Hello from the fixture.");
        let prompt = format!("{:?}", consent.prompts()[0]);
        assert!(prompt.contains(app_id), "{prompt}");
        // The channel asks as the app too: the grant covers it, and it streams the same way.
        let (_, fd) = on_channel
            .chat(&request)
            .await
            .expect("Chat on the channel");
        let reply = ChatStream::from_fd(fd.into()).collect().await.unwrap();
        assert_eq!(reply.text, "Hello from the fixture.");
        let listed = models
            .list_models()
            .await
            .expect("ListModels with the grant");
        assert!(
            listed.iter().any(|m| m.provider == "llama-server"),
            "{listed:?}"
        );

        // Its usage is its own; the user's tools see it too.
        let own = models.list_usage().await.unwrap();
        assert_eq!(own.len(), 1, "{own:?}");
        assert_eq!(own[0].requests, 2, "{own:?}");
        assert_eq!((own[0].kind.as_str(), own[0].who.as_str()), ("app", app_id));
        let all = client(&env).await.list_usage().await.unwrap();
        assert!(all.iter().any(|u| u.kind == "app" && u.who == app_id));
    })
    .await;
}

#[tokio::test]
async fn a_channel_streams_answers_to_its_opener_and_an_fd_sent_on_it_ends_it() {
    bounded(async {
        let server = ModelServer::start(Props::default());
        let mut env = env_with(&settings_for(Some(&server), "")).await;
        let (channel, proxy) = channel_on(&env.conn).await;
        let request = ask("hi", Some(32)).to_json();
        let (id, fd) = proxy.chat(&request).await.expect("Chat on the channel");
        let reply = ChatStream::from_fd(fd.into()).collect().await.unwrap();
        assert_eq!(reply.text, "Hello from the fixture.");
        // Its requests are the opener's: the user's own tools (host) here.
        let usage = client(&env).await.list_usage().await.unwrap();
        assert!(
            usage.iter().any(|u| u.kind == "host" && u.requests >= 1),
            "{usage:?}"
        );
        // Cancel names only the caller's own live requests.
        match proxy.cancel(id).await {
            Err(Error::InvalidArgument(_)) => {}
            other => panic!("a finished request cannot be canceled: {other:?}"),
        }

        // Fds pass only from the kernel: a call that carries one ends the channel.
        let file = tempfile::tempfile().unwrap();
        let sent = channel
            .call_method(
                None::<&str>,
                agentos_dbus_interfaces::names::KERNEL_PATH,
                Some("org.agentos.Channel1"),
                "Chat",
                &(request.as_str(), zbus::zvariant::Fd::from(&file)),
            )
            .await;
        assert!(sent.is_err(), "a call with an fd was answered: {sent:?}");
        let after = tokio::time::timeout(Duration::from_secs(10), proxy.chat(&request)).await;
        assert!(
            matches!(after, Ok(Err(_))),
            "the channel still answers after an fd was sent on it: {after:?}"
        );
        // A peer whose connection cannot take fds is told so, not left waiting for a reply.
        let fd = env.kernel().await.open_channel().await.unwrap();
        let stream = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(fd));
        let socket = agentos_p2p::split_without_fds(stream).unwrap();
        let no_fds = zbus::connection::Builder::socket(socket)
            .p2p()
            .build()
            .await
            .unwrap();
        let refused = tokio::time::timeout(
            Duration::from_secs(10),
            no_fds.call_method(
                None::<&str>,
                agentos_dbus_interfaces::names::KERNEL_PATH,
                Some("org.agentos.Channel1"),
                "Chat",
                &(request.as_str()),
            ),
        )
        .await
        .expect("an answer, not silence");
        match refused {
            Err(zbus::Error::MethodError(_, Some(m), _)) if m.contains("file descriptors") => {}
            other => panic!("expected a named refusal, got {other:?}"),
        }

        // The kernel itself goes on. A client asks on a channel of its own, and opens another
        // when the kernel it had one to was replaced.
        let c = client(&env).await;
        let (_, stream) = c.chat(&ask("hi", Some(32))).await.unwrap();
        assert_eq!(
            stream.collect().await.unwrap().text,
            "Hello from the fixture."
        );
        env.restart_kernel().await;
        let (_, stream) = c
            .chat(&ask("hi", Some(32)))
            .await
            .expect("chat after a restart");
        assert_eq!(
            stream.collect().await.unwrap().text,
            "Hello from the fixture."
        );
    })
    .await;
}

#[tokio::test]
async fn interactive_work_goes_first_and_keeps_a_slot_held() {
    bounded(async {
        let server = ModelServer::start(Props {
            slots: 2,
            ..Props::default()
        });
        let env = env_with(&settings_for(Some(&server), "")).await;
        let c = client(&env).await;
        let started = |e: Option<ChatEvent>| matches!(e, Some(ChatEvent::Started { .. }));
        let wait = Duration::from_secs(3);
        let none = Duration::from_millis(300);
        // Background work borrows every slot while nobody waits on an answer.
        let (_, mut bg1) = c.chat(&ask("[slow] one", None)).await.unwrap();
        let (_, mut bg2) = c.chat(&ask("[slow] two", None)).await.unwrap();
        assert!(started(next_within(&mut bg1, wait).await));
        assert!(started(next_within(&mut bg2, wait).await));
        let (_, mut bg3) = c.chat(&ask("[slow] three", None)).await.unwrap();
        let mut question = ask("hi", None);
        question.interactive = true;
        let (_, mut first) = c.chat(&question).await.unwrap();
        assert!(!started(next_within(&mut bg3, none).await));
        assert!(!started(next_within(&mut first, none).await));
        // A slot frees: the question takes it, ahead of the background request queued before.
        drop(bg1);
        assert!(started(next_within(&mut first, wait).await));
        first.collect().await.unwrap();
        // The question done, its slot stays held for the next one: background work keeps to
        // one slot while questions came in the last 10 s.
        assert!(!started(
            next_within(&mut bg3, Duration::from_millis(500)).await
        ));
        let asked = Instant::now();
        let (_, mut second) = c.chat(&question).await.unwrap();
        assert!(started(next_within(&mut second, wait).await));
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "the second question waited"
        );
        second.collect().await.unwrap();
        // When the background slot frees, background work goes on.
        drop(bg2);
        assert!(started(next_within(&mut bg3, wait).await));
        assert!(server.max_streaming() <= 2);
    })
    .await;
}

#[tokio::test]
async fn the_fifo_baseline_serves_in_arrival_order() {
    bounded(async {
        let server = ModelServer::start(Props {
            slots: 1,
            ..Props::default()
        });
        let env = env_with(&settings_for(
            Some(&server),
            "[scheduler]\ndiscipline = \"fifo\"\n",
        ))
        .await;
        let c = client(&env).await;
        let started = |e: Option<ChatEvent>| matches!(e, Some(ChatEvent::Started { .. }));
        let wait = Duration::from_secs(3);
        let (_, mut bg1) = c.chat(&ask("[slow] one", None)).await.unwrap();
        assert!(started(next_within(&mut bg1, wait).await));
        let (_, mut bg2) = c.chat(&ask("[slow] two", None)).await.unwrap();
        let mut question = ask("hi", None);
        question.interactive = true;
        let (_, mut q) = c.chat(&question).await.unwrap();
        drop(bg1);
        // Under FIFO the background request that came first goes first.
        assert!(started(next_within(&mut bg2, wait).await));
        assert!(!started(
            next_within(&mut q, Duration::from_millis(300)).await
        ));
    })
    .await;
}

#[tokio::test]
async fn cancelling_a_task_cancels_its_model_requests() {
    bounded(async {
        let server = ModelServer::start(Props {
            slots: 1,
            ..Props::default()
        });
        let mut env = env_with(&settings_for(Some(&server), "")).await;
        write_chatter(&env);
        env.restart_kernel().await;
        let task = env.delegate("chatter", "chat - [slow] a long answer").await;
        until(
            "the agent's request streams",
            Duration::from_secs(10),
            || server.streaming() == 1,
        )
        .await;
        env.kernel()
            .await
            .cancel_task(task)
            .await
            .expect("CancelTask");
        until(
            "the request's connection closed",
            Duration::from_secs(2),
            || server.closed_early() == 1,
        )
        .await;
        // Its slot is free: the next request is served at once.
        let c = client(&env).await;
        let (_, s) = c.chat(&ask("hi", None)).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(2), s.collect())
            .await
            .expect("served at once")
            .unwrap();
        assert_eq!(reply.text, "Hello from the fixture.");
        assert_eq!(
            env.wait_task(task).await.state,
            TaskState::Canceled.as_str()
        );
    })
    .await;
}

#[tokio::test]
async fn answers_keep_one_connection_to_the_model_server() {
    bounded(async {
        // The end of each answer's body comes 30 ms after its last event.
        let server = PacedServer::start(ServerConfig {
            first_token: Duration::from_millis(5),
            token_gap: Duration::from_millis(1),
            tokens: 3,
            end_delay: Duration::from_millis(30),
            ..ServerConfig::default()
        })
        .await;
        let settings = format!(
            "[local]\nollama = \"off\"\nllama-server = \"{}\"\n",
            server.url
        );
        let env = env_with(&settings).await;
        let c = client(&env).await;
        for n in 1..=3 {
            let (_, stream) = c.chat(&ask("hi", Some(3))).await.expect("Chat");
            let reply = stream.collect().await.expect("the answer");
            assert_eq!(reply.finish, "stop");
            // The answer was whole before its body ended; then its end was sent.
            until(
                "the server sent the answer's end",
                Duration::from_secs(5),
                || server.served().len() == n && server.served()[n - 1].finished.is_some(),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let served = server.served();
        let connections: Vec<u64> = served.iter().map(|s| s.connection).collect();
        assert!(
            connections.iter().all(|c| *c == connections[0]),
            "each answer came on a connection of its own: {connections:?}"
        );
        assert!(
            served.iter().all(|s| !s.abandoned),
            "the kernel left an answer before its end"
        );
    })
    .await;
}

/// A stand-in for llama-server: answers `/props` on 127.0.0.1:`port`, in Python.
const PROPS_SERVER: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"total_slots": 1, "model_path": "/m/squatter.gguf"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

/// Wait until something listens on 127.0.0.1:`port` (bounded).
async fn listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_server_a_sandboxed_app_runs_on_the_local_port_is_not_used() {
    if !agentos_tests::bwrap_works() {
        eprintln!("skipped: bubblewrap cannot create namespaces here");
        return;
    }
    bounded_for(Duration::from_secs(60), async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let settings = format!("[local]\nollama = \"off\"\nllama-server = \"{url}\"\n");
        let python = std::path::Path::new("/usr/bin/python3");
        let port_arg = port.to_string();

        // The user's own server there is found.
        let mut own = std::process::Command::new(python)
            .args(["-c", PROPS_SERVER, &port_arg])
            .spawn()
            .expect("start python3");
        listening(port).await;
        let mut env = env_with(&settings).await;
        let models = client(&env).await.list_models().await.unwrap();
        assert!(
            models
                .iter()
                .any(|m| m.provider == "llama-server" && m.model == "squatter"),
            "{models:?}"
        );
        let _ = own.kill();
        let _ = own.wait();

        // The same server run by a sandboxed app on that port is not: its prompts would leave
        // for the app.
        let _app = env
            .flatpak(
                "org.example.Squatter",
                python,
                &["-c", PROPS_SERVER, &port_arg],
            )
            .await;
        listening(port).await;
        env.restart_with_model_settings(&settings).await;
        let c = client(&env).await;
        let models = c.list_models().await.unwrap();
        assert!(
            !models.iter().any(|m| m.provider == "llama-server"),
            "{models:?}"
        );
        match c.chat(&ask("hi", None)).await {
            Err(ChatError::Refused(Error::NoModel(_))) => {}
            other => panic!("expected NoModel, got {other:?}"),
        }

        // Unless the user vouches for that app in the settings.
        let vouched = format!("{settings}trusted-apps = [\"org.example.Squatter\"]\n");
        env.restart_with_model_settings(&vouched).await;
        let models = client(&env).await.list_models().await.unwrap();
        assert!(
            models.iter().any(|m| m.provider == "llama-server"),
            "{models:?}"
        );
    })
    .await;
}

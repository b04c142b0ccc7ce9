//! End-to-end permissions: default deny, consent (once, session, always, deny), revocation,
//! attenuation through delegation, spoofing, folder escapes, and the built-in agents.

use std::io::{Read, Write};

use agentos_dbus_interfaces::names;
use agentos_tests::{bounded, ConsentReply, Env, Responder};

/// A folder with a document, a secret beside it and links out of it.
fn documents(env: &Env) -> String {
    let docs = env.home().join("Documents");
    std::fs::write(docs.join("budget.txt"), "the budget for 2026 is 42\n").unwrap();
    std::fs::write(env.home().join("secret.txt"), "ssh key").unwrap();
    std::os::unix::fs::symlink("../secret.txt", docs.join("escape")).unwrap();
    std::fs::canonicalize(docs)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_grant_or_a_provider_the_answer_is_deny() {
    bounded(async {
        let env = Env::start().await;
        let docs = documents(&env);
        let t = env
            .delegate("tester", &format!("read {docs} budget.txt"))
            .await;
        let t = env.wait_task(t).await;
        assert_eq!(t.state, "failed");
        assert!(t.message.contains("no consent provider"), "{}", t.message);
        // It says what was needed and how the user may allow it.
        assert!(
            t.message.contains("tester needs files.")
                && t.message
                    .contains("allow it ahead: agentctl grant -- tester files."),
            "{}",
            t.message
        );
        // An undeclared capability is denied without asking anyone.
        let responder = Responder::start(&env.address, &[ConsentReply::Allow("always")]).await;
        let t = env
            .delegate("narrow", &format!("read {docs} budget.txt"))
            .await;
        assert_eq!(env.wait_task(t).await.state, "failed");
        assert!(responder.prompts().is_empty());
        let log = env.kernel().await.read_audit_log(0, 100).await.unwrap();
        assert!(log.iter().any(|r| r.principal == "tester"
            && r.capability == "files.read"
            && r.decision == "deny"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_once_session_always_deny_and_revocation() {
    bounded(async {
        let env = Env::start().await;
        let docs = documents(&env);
        let read = format!("read {docs} budget.txt");
        let responder = Responder::start(&env.address, &[ConsentReply::Allow("once")]).await;
        let t = env.run_task("tester", &read).await;
        assert_eq!(t.state, "completed", "{t:?}");
        assert!(t.result.contains("42"));
        let prompt = &responder.prompts()[0];
        assert!(
            prompt.title.contains("Test tester") && prompt.title.contains(&docs),
            "{prompt:?}"
        );
        // The exact call: sent whole to the dialog, and its beginning in the body for any dialog.
        let call = prompt.arguments.as_deref().unwrap_or_default();
        assert!(
            call.starts_with("files.read {") && call.contains("budget.txt") && call.contains(&docs),
            "{prompt:?}"
        );
        assert!(prompt.body.contains("The call: files.read"), "{prompt:?}");
        // Its id, as ListConsentRequests names it, and as the handle ends.
        assert!(prompt.request.is_some_and(|id| id > 0), "{prompt:?}");
        // Once means once: the next call asks again, and a denial fails it.
        responder.push(ConsentReply::Deny);
        let t = env.run_task("tester", &read).await;
        assert_eq!(t.state, "failed");
        assert!(t.message.contains("denied"), "{}", t.message);
        assert_eq!(responder.prompts().len(), 2);
        // Session: asked once, then remembered (not stored).
        responder.push(ConsentReply::Allow("session"));
        for _ in 0..2 {
            assert_eq!(env.run_task("tester", &read).await.state, "completed");
        }
        assert_eq!(responder.prompts().len(), 3);
        let k = env.kernel().await;
        assert!(k
            .list_grants()
            .await
            .unwrap()
            .iter()
            .any(|g| g.lifetime == "session"));
        // Revocation applies to the very next call.
        assert_eq!(k.revoke("tester", "files.read", "").await.unwrap(), 1);
        responder.push(ConsentReply::Deny);
        assert_eq!(env.run_task("tester", &read).await.state, "failed");
        // Always: stored.
        responder.push(ConsentReply::Allow("always"));
        assert_eq!(env.run_task("tester", &read).await.state, "completed");
        let grants = k.list_grants().await.unwrap();
        assert!(grants
            .iter()
            .any(|g| g.principal == "tester" && g.lifetime == "always" && g.scope == docs));
        // The subfolder is covered by the grant on the folder; no new prompt.
        let n = responder.prompts().len();
        std::fs::create_dir(std::path::Path::new(&docs).join("sub")).unwrap();
        let t = env.run_task("tester", &format!("list {docs}/sub")).await;
        assert_eq!(t.state, "failed", "files.list is another capability: {t:?}");
        assert_eq!(responder.prompts().len(), n + 1);
        let (ok, _, problem) = k.verify_audit_log().await.unwrap();
        assert!(ok, "{problem}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegated_task_has_at_most_the_delegators_rights() {
    bounded(async {
        let mut env = Env::start().await;
        let docs = documents(&env);
        // relay may delegate but declares no file rights; tester declares them.
        env.write_manifest(
            "relay",
            &agentos_tests::bin("agentos-test-agent"),
            &["agent.delegate"],
        );
        env.restart_kernel().await;
        let responder = Responder::start(&env.address, &[ConsentReply::Allow("session")]).await;
        let k = env.kernel().await;
        for delegator in ["tester", "relay"] {
            k.grant(delegator, "agent.delegate", "helper", "always")
                .await
                .unwrap();
        }
        k.grant("helper", "files.read", &docs, "always")
            .await
            .unwrap();
        // helper alone may read.
        assert_eq!(
            env.run_task("helper", &format!("read {docs} budget.txt"))
                .await
                .state,
            "completed"
        );
        // Through relay, which has no such right and cannot be given it: denied, nobody asked.
        let root = env
            .delegate("relay", &format!("delegate helper read {docs} budget.txt"))
            .await;
        let t = env.wait_task(root).await;
        assert!(
            t.result.starts_with("failed:") && t.result.contains("relay delegated"),
            "{}",
            t.result
        );
        assert!(responder.prompts().is_empty());
        // Through tester, which declares the right but holds none: the user is asked about the
        // chain, and "until logout" gives tester the right too.
        let root = env
            .delegate("tester", &format!("delegate helper read {docs} budget.txt"))
            .await;
        let t = env.wait_task(root).await;
        assert!(
            t.result.contains("the budget for 2026 is 42"),
            "{}",
            t.result
        );
        assert_eq!(responder.prompts().len(), 1);
        let body = &responder.prompts()[0].body;
        assert!(
            body.contains("asked") && body.contains("gives Test tester this right too"),
            "{body}"
        );
        let grants = k.list_grants().await.unwrap();
        assert!(
            grants.iter().any(|g| g.principal == "tester"
                && g.capability == "files.read"
                && g.lifetime == "session"),
            "{grants:?}"
        );
        // Now tester holds it: the next delegation asks nobody.
        let root = env
            .delegate("tester", &format!("delegate helper read {docs} budget.txt"))
            .await;
        assert!(env.wait_task(root).await.result.contains("42"));
        assert_eq!(responder.prompts().len(), 1);
        // Delegation itself needs a grant: without one the user is asked (here: denied).
        let t = env.run_task("helper", "delegate tester echo hi").await;
        assert_eq!(t.state, "failed");
        assert_eq!(responder.prompts().len(), 2);
        assert!(responder.prompts()[1]
            .title
            .contains("hand tasks to the agent"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegators_grant_from_a_prompt_is_recorded_in_its_name_and_kept_after_a_restart() {
    bounded(async {
        let mut env = Env::start().await;
        let docs = documents(&env);
        let responder = Responder::start(&env.address, &[ConsentReply::Allow("always")]).await;
        let k = env.kernel().await;
        k.grant("tester", "agent.delegate", "helper", "always")
            .await
            .unwrap();
        // Tester declares the right and holds none: "always" gives it to tester too.
        let root = env
            .delegate("tester", &format!("delegate helper read {docs} budget.txt"))
            .await;
        assert!(env.wait_task(root).await.result.contains("42"));
        assert_eq!(responder.prompts().len(), 1);
        let given = |grants: &[agentos_dbus_interfaces::GrantInfo]| {
            grants.iter().any(|g| {
                g.principal == "tester"
                    && g.capability == "files.read"
                    && g.scope == docs
                    && g.lifetime == "always"
            })
        };
        let grants = k.list_grants().await.unwrap();
        assert!(
            given(&grants),
            "{grants:#?} {:#?} {:#?}",
            k.read_audit_log(0, 1000).await.unwrap(),
            responder.prompts()
        );
        let log = k.read_audit_log(0, 1000).await.unwrap();
        assert!(
            log.iter().any(|r| r.principal == "tester"
                && r.decision == "grant"
                && r.scope == docs
                && r.reason == "given with helper's request: the user allowed it (always)"),
            "{log:?}"
        );
        // Backed by that record, it is honoured after a restart (not taken for a forged one).
        env.restart_kernel().await;
        let k = env.kernel().await;
        assert!(given(&k.list_grants().await.unwrap()));
        let root = env
            .delegate("tester", &format!("delegate helper read {docs} budget.txt"))
            .await;
        assert!(env.wait_task(root).await.result.contains("42"));
        assert_eq!(responder.prompts().len(), 1, "nobody was asked again");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_right_to_delegate_cancels_the_tasks_it_let_start() {
    bounded(async {
        let env = Env::start().await;
        let k = env.kernel().await;
        k.grant("tester", "agent.delegate", "helper", "always")
            .await
            .unwrap();
        let root = env.delegate("tester", "delegate helper sleep 20000").await;
        // The helper's task runs under tester's right.
        let child = env.wait_child(root).await.id;
        env.wait_state(child, |s| s.as_str() == "working").await;
        assert_eq!(
            k.revoke("tester", "agent.delegate", "helper")
                .await
                .unwrap(),
            1
        );
        let t = tokio::time::timeout(std::time::Duration::from_secs(5), env.wait_task(child))
            .await
            .expect("the task ends at once, not after its 20 s");
        assert_eq!(t.state, "canceled", "{t:?}");
        assert!(
            t.message
                .contains("right to hand tasks to helper was taken away"),
            "{t:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_cannot_act_for_other_tasks_or_be_driven_by_others() {
    bounded(async {
        let env = Env::start().await;
        let docs = documents(&env);
        let k = env.kernel().await;
        k.grant("helper", "files.read", &docs, "always")
            .await
            .unwrap();
        // helper holds a running task with the grant; tester names that task id: refused.
        let victim = env.delegate("helper", "sleep 60000").await;
        env.wait_state(victim, |s| s.as_str() == "working").await;
        let t = env
            .run_task("tester", &format!("read-for {victim} {docs} budget.txt"))
            .await;
        assert_eq!(t.state, "failed");
        assert!(
            t.message.contains("not a running task of agent tester"),
            "{}",
            t.message
        );
        // A self-registered agent is "host", whatever id it asks for.
        struct Idle;
        impl agentos_sdk::Agent for Idle {
            async fn run(&self, _t: agentos_sdk::Task) -> Result<agentos_sdk::Outcome, String> {
                Ok(agentos_sdk::Outcome::text("idle"))
            }
        }
        let reg = agentos_sdk::register(Idle, "docs", Some(&env.address))
            .await
            .unwrap();
        assert_eq!(reg.path, names::agent_path("host"));
        assert!(k
            .list_agents()
            .await
            .unwrap()
            .iter()
            .any(|a| a.id == "host" && a.connected));
        // Another bus peer calling the agent's own bus connection gets nothing.
        let unique = reg.bus.unique_name().unwrap().to_string();
        let empty = std::collections::HashMap::<String, zbus::zvariant::Value<'_>>::new();
        let body = (1u64, "x", empty);
        let call = env.conn.call_method(
            Some(unique.as_str()),
            names::AGENT_SERVICE_PATH,
            Some(names::AGENT_SERVICE_IFACE),
            "Start",
            &body,
        );
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), call)
            .await
            .expect("the agent answers");
        assert!(r.is_err(), "a non-kernel peer drove the agent");
        // Through the kernel it works.
        let t = env.run_task("host", "anything").await;
        assert_eq!(t.result, "idle");
        k.cancel_task(victim).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_escapes_fail() {
    bounded(async {
        let env = Env::start().await;
        let docs = documents(&env);
        env.kernel()
            .await
            .grant("tester", "files.read", &docs, "always")
            .await
            .unwrap();
        for path in [
            "../secret.txt",
            "escape",
            "/etc/passwd",
            "sub/../../secret.txt",
        ] {
            let t = env.run_task("tester", &format!("read {docs} {path}")).await;
            assert_eq!(t.state, "failed", "{path} escaped: {t:?}");
            assert!(!t.result.contains("ssh key"));
        }
        let t = env
            .run_task("tester", &format!("read {docs}/.. secret.txt"))
            .await;
        assert_eq!(t.state, "failed");
    })
    .await;
}

/// A one-shot HTTP server on 127.0.0.1 answering every request with `body`.
fn serve_http(body: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes());
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_agents_find_documents_and_fetch_pages() {
    bounded(async {
        let env = Env::start().await;
        let docs = documents(&env);
        let responder = Responder::start(
            &env.address,
            &[
                ConsentReply::Allow("always"),
                ConsentReply::Allow("always"),
                ConsentReply::Allow("once"),
            ],
        )
        .await;
        let t = env.run_task("docs", "budget").await;
        assert_eq!(t.state, "completed", "{t:?}");
        assert!(t.result.contains("budget.txt"), "{}", t.result);
        assert!(!t.result.contains("secret"), "{}", t.result);
        assert_eq!(responder.prompts().len(), 2, "files.list then files.read");
        let port = serve_http(
            "<html><head><title>Hi</title></head><body><p>Hello agents</p></body></html>",
        );
        let t = env
            .run_task("web", &format!("fetch http://127.0.0.1:{port}/"))
            .await;
        assert_eq!(t.state, "completed", "{t:?}");
        assert!(
            t.result.contains("Hello agents") && t.result.contains("Hi"),
            "{}",
            t.result
        );
        assert!(responder.prompts()[2].title.contains("127.0.0.1"));
        let _ = docs;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_two_denials_the_user_is_not_asked_again_until_reset() {
    bounded(async {
        let env = Env::start().await;
        let docs = documents(&env);
        let read = format!("read {docs} budget.txt");
        let responder =
            Responder::start(&env.address, &[ConsentReply::Deny, ConsentReply::Deny]).await;
        for _ in 0..2 {
            assert_eq!(env.run_task("tester", &read).await.state, "failed");
        }
        let t = env.run_task("tester", &read).await;
        assert!(t.message.contains("denied this twice"), "{}", t.message);
        assert_eq!(responder.prompts().len(), 2);
        // Revoking resets it: the user is asked again.
        env.kernel()
            .await
            .revoke("tester", "files.read", "")
            .await
            .unwrap();
        responder.push(ConsentReply::Allow("once"));
        assert_eq!(env.run_task("tester", &read).await.state, "completed");
        assert_eq!(responder.prompts().len(), 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_prompt_at_a_time_per_agent() {
    bounded(async {
        let env = Env::start().await;
        let docs = documents(&env);
        let responder =
            Responder::start(&env.address, &[ConsentReply::AllowAfter("session", 300)]).await;
        let read = format!("read {docs} budget.txt");
        let (a, b) = (
            env.delegate("tester", &read).await,
            env.delegate("tester", &read).await,
        );
        assert_eq!(env.wait_task(a).await.state, "completed");
        assert_eq!(env.wait_task(b).await.state, "completed");
        // The second request waited for the first answer and needed no prompt of its own.
        assert_eq!(responder.prompts().len(), 1);
        assert_eq!(responder.max_open(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_prompt_is_closed_when_the_agent_goes_away() {
    bounded(async {
        let env = Env::start().await;
        let docs = documents(&env);
        let responder = Responder::start(&env.address, &[ConsentReply::Silent]).await;
        let waiting = env
            .delegate("tester", &format!("read {docs} budget.txt"))
            .await;
        env.wait_state(waiting, |s| s.as_str() == "auth-required")
            .await;
        env.delegate("tester", "crash").await;
        let t = env.wait_task(waiting).await;
        assert_eq!(t.state, "failed");
        let deadline = tokio::time::Instant::now() + agentos_tests::TIMEOUT;
        while responder.closed().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the dialog was never closed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_prompt_is_a_denial_and_is_closed() {
    bounded(async {
        let mut env = Env::start().await;
        env.stop_kernel("TERM").await;
        env.consent_timeout = 1;
        env.start_kernel().await;
        let docs = documents(&env);
        let responder = Responder::start(&env.address, &[ConsentReply::Silent]).await;
        let t = env
            .run_task("tester", &format!("read {docs} budget.txt"))
            .await;
        assert_eq!(t.state, "failed");
        assert!(
            t.message.contains("did not answer within 1 s"),
            "{}",
            t.message
        );
        assert_eq!(responder.closed().len(), 1, "the dialog was left open");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_show_agent_strings_escaped_and_shortened() {
    bounded(async {
        let env = Env::start().await;
        let docs = documents(&env);
        let responder = Responder::start(&env.address, &[ConsentReply::Deny]).await;
        // A goal crafted to mislead: bidi overrides, a fake second line, and a great length.
        let goal = format!(
            "read {docs} budget.txt ; echo \u{202e}txt.exe\nAllowed by your admin {}",
            "x".repeat(500)
        );
        env.run_task("tester", &goal).await;
        let prompt = &responder.prompts()[0];
        let shown = format!("{}{}{}", prompt.title, prompt.subtitle, prompt.body);
        assert!(!shown.contains('\u{202e}'), "{shown:?}");
        assert!(!prompt.body.contains("\nAllowed"), "{:?}", prompt.body);
        assert!(
            prompt.body.contains('…') && prompt.body.len() < 400,
            "{:?}",
            prompt.body
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_requests_waiting_for_the_user_are_listed_and_announced() {
    use futures_util::StreamExt;
    bounded(async {
        let env = Env::start().await;
        let docs = documents(&env);
        let k = env.kernel().await;
        let mut changes = k.receive_consent_requests_changed().await.unwrap();
        assert!(k.list_consent_requests().await.unwrap().is_empty());
        let responder =
            Responder::start(&env.address, &[ConsentReply::AllowAfter("once", 1500)]).await;
        let waiting = env
            .delegate("tester", &format!("read {docs} budget.txt"))
            .await;
        env.wait_state(waiting, |s| s.as_str() == "auth-required")
            .await;
        let pending = k.list_consent_requests().await.unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        let r = &pending[0];
        assert_eq!(
            (r.principal.as_str(), r.capability.as_str(), r.task),
            ("tester", "files.read", waiting)
        );
        assert_eq!(r.scope, docs);
        // The list carries what the dialog shows.
        assert_eq!(responder.prompts()[0].title, r.title);
        let first = changes.next().await.unwrap().args().unwrap().pending;
        assert_eq!(first, 1);
        assert_eq!(env.wait_task(waiting).await.state, "completed");
        let second = changes.next().await.unwrap().args().unwrap().pending;
        assert_eq!(second, 0);
        assert!(k.list_consent_requests().await.unwrap().is_empty());
    })
    .await;
}

/// An HTTP server on 127.0.0.1 that redirects every request to `to`.
fn serve_redirect(to: String) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let reply = format!(
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = s.write_all(reply.as_bytes());
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_are_listed_and_called_by_name_on_the_one_checked_path() {
    bounded(async {
        let env = Env::start().await;
        let docs = documents(&env);
        let k = env.kernel().await;
        let tools = env.run_task("narrow", "tools").await;
        assert_eq!(tools.state, "completed", "{}", tools.message);
        assert_eq!(
            tools.result.lines().collect::<Vec<_>>(),
            [
                "files.list files.list false",
                "files.read files.read false",
                "web.fetch web.fetch false"
            ]
        );
        let tools = env.run_task("tester", "tools").await;
        assert!(
            tools.result.contains("files.read files.read true"),
            "{}",
            tools.result
        );

        // A granted call by name: the file comes back as an fd, the call is audited.
        k.grant("tester", "files.read", &docs, "session")
            .await
            .unwrap();
        let call = |args: String| format!("tool files.read {args}");
        let read = env
            .run_task(
                "tester",
                &call(format!(r#"{{"folder":"{docs}","path":"budget.txt"}}"#)),
            )
            .await;
        assert_eq!(read.state, "completed", "{}", read.message);
        assert!(
            read.result.contains("fd: the budget for 2026 is 42"),
            "{}",
            read.result
        );
        let log = k.read_audit_log(0, 1000).await.unwrap();
        assert!(log.iter().any(|r| r.principal == "tester"
            && r.capability == "files.read"
            && r.scope == docs
            && r.decision == "allow"));
        // The same checks as the typed methods: escapes, unknown tools, bad arguments, no grant.
        for (goal, says) in [
            (
                call(format!(r#"{{"folder":"{docs}","path":"escape"}}"#)),
                "outside",
            ),
            ("tool files.delete {}".to_string(), "no tool named"),
            (call("[1]".into()), "JSON object"),
            (call("{not json".into()), "not JSON"),
            (call(r#"{"path":"x"}"#.into()), "folder"),
            (
                call(r#"{"folder":"/etc","path":"passwd"}"#.into()),
                "no consent provider",
            ),
        ] {
            let t = env.run_task("tester", &goal).await;
            assert_eq!(t.state, "failed", "{goal}: {}", t.result);
            assert!(t.message.contains(says), "{goal}: {}", t.message);
        }
        // A tool that touches a further scope while it runs asks for it first: web.fetch is
        // allowed on 127.0.0.1 only, and the page redirects to localhost.
        let port = serve_http("<p>Hello agents</p>");
        let redirect = serve_redirect(format!("http://localhost:{port}/"));
        k.grant("tester", "web.fetch", "127.0.0.1", "session")
            .await
            .unwrap();
        let fetch = format!(r#"tool web.fetch {{"url":"http://127.0.0.1:{redirect}/"}}"#);
        let t = env.run_task("tester", &fetch).await;
        assert_eq!(t.state, "failed", "{}", t.result);
        assert!(t.message.contains("no consent provider"), "{}", t.message);
        k.grant("tester", "web.fetch", "localhost", "session")
            .await
            .unwrap();
        let t = env.run_task("tester", &fetch).await;
        assert_eq!(t.state, "completed", "{}", t.message);
        assert!(t.result.contains("\"status\":200"), "{}", t.result);
        assert!(
            t.result.contains("data: <p>Hello agents</p>"),
            "{}",
            t.result
        );
    })
    .await;
}

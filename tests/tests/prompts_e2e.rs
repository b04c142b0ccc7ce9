//! End-to-end prompt budgets against the real kernel: one task asking for 25 hosts gets at most
//! its budget of dialogs; requests that arrive while a dialog is open are named together in the
//! next one and its answer covers them all; a closed or unanswered dialog counts as a denial (no
//! provider at all does not); "deny, and ask nothing more for this task" stops that task's
//! prompts, and the audit log says why.

use std::io::{Read, Write};

use agentos_tests::{bounded, ConsentReply, Env, Responder};

/// An HTTP server on 127.0.0.1 ..= 127.0.0.`hosts`, one port for all, answering "hello".
fn serve_hosts(hosts: u8) -> u16 {
    let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = first.local_addr().unwrap().port();
    let mut listeners = vec![first];
    for k in 2..=hosts {
        listeners.push(
            std::net::TcpListener::bind(("127.0.0.".to_string() + &k.to_string(), port)).unwrap(),
        );
    }
    for listener in listeners {
        std::thread::spawn(move || {
            for stream in listener.incoming().take(16) {
                let Ok(mut s) = stream else { continue };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                );
            }
        });
    }
    port
}

fn url(k: u8, port: u16) -> String {
    format!("http://127.0.0.{k}:{port}/")
}

/// An agent in the test process (registered, so its principal is `host`): its goal is
/// `parallel <url>…` (every fetch at once) or `serial <url>…` (one after another); it goes on
/// after a denial and reports one line per URL.
struct Fetcher;

async fn fetch_line(task: &agentos_sdk::Task, url: &str) -> String {
    match task.fetch(url).await {
        Ok((status, _, _)) => format!("{url} {status}"),
        Err(e) => format!("{url} error: {e}"),
    }
}

impl agentos_sdk::Agent for Fetcher {
    async fn run(&self, task: agentos_sdk::Task) -> Result<agentos_sdk::Outcome, String> {
        let goal = task.goal.clone();
        let (mode, urls) = goal.split_once(' ').unwrap_or((goal.as_str(), ""));
        let urls: Vec<&str> = urls.split_whitespace().collect();
        let lines = if mode == "parallel" {
            futures_util::future::join_all(urls.iter().map(|u| fetch_line(&task, u))).await
        } else {
            let mut lines = Vec::new();
            for u in &urls {
                lines.push(fetch_line(&task, u).await);
            }
            lines
        };
        Ok(agentos_sdk::Outcome::text(lines.join("\n")))
    }
}

/// How many scopes a prompt named ("All 24: …" in the body, else one).
fn named(prompt: &agentos_tests::consent::Prompt) -> usize {
    prompt
        .body
        .lines()
        .find_map(|l| l.strip_prefix("All ")?.split_once(':')?.0.parse().ok())
        .unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_five_hosts_in_one_task_get_at_most_the_budget_of_dialogs() {
    bounded(async {
        let env = Env::start().await;
        let port = serve_hosts(25);
        let responder =
            Responder::start(&env.address, &vec![ConsentReply::Allow("once"); 12]).await;
        let many = || {
            (1..=25)
                .map(|k| format!("fetch {}", url(k, port)))
                .collect::<Vec<_>>()
                .join(" ; ")
        };
        // One after another, each allowed once: five dialogs, then denied without one.
        let a = env.run_task("tester", &many()).await;
        assert_eq!(a.state, "failed", "{a:?}");
        assert!(
            a.message.contains(&format!(
                "asked the user 5 times in 10 minutes for task {}",
                a.id
            )),
            "{}",
            a.message
        );
        assert!(
            a.message
                .contains("agentctl grant tester web.fetch 127.0.0.6 session"),
            "{}",
            a.message
        );
        assert_eq!(responder.prompts().len(), 5);
        // Another task gets its own five; then the agent's ten are spent for every task.
        let b = env.run_task("tester", &many()).await;
        assert!(
            b.message.contains(&format!("for task {}", b.id)),
            "{}",
            b.message
        );
        assert_eq!(responder.prompts().len(), 10);
        let c = env.run_task("tester", &many()).await;
        assert!(
            c.message.contains("for all its tasks together"),
            "{}",
            c.message
        );
        assert_eq!(responder.prompts().len(), 10, "denied without a dialog");
        let k = env.kernel().await;
        let log = k.read_audit_log(0, 1000).await.unwrap();
        assert!(log.iter().any(|r| r.principal == "tester"
            && r.decision == "deny"
            && r.reason
                .starts_with("denied without asking: tester has asked the user")));
        // A grant from agentctl starts the count afresh.
        k.grant("tester", "web.fetch", "example.org", "session")
            .await
            .unwrap();
        let d = env
            .run_task("tester", &format!("fetch {}", url(7, port)))
            .await;
        assert_eq!(d.state, "completed", "{d:?}");
        assert_eq!(responder.prompts().len(), 11);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_arrive_while_a_dialog_is_open_are_asked_together() {
    bounded(async {
        let env = Env::start().await;
        let port = serve_hosts(25);
        let responder = Responder::start(
            &env.address,
            &[
                ConsentReply::AllowAfter("session", 1500),
                ConsentReply::Allow("session"),
            ],
        )
        .await;
        let _reg = agentos_sdk::register(Fetcher, "fetcher", Some(&env.address))
            .await
            .unwrap();
        let urls: Vec<String> = (1..=25).map(|k| url(k, port)).collect();
        let t = env
            .run_task("host", &format!("parallel {}", urls.join(" ")))
            .await;
        assert_eq!(t.state, "completed", "{t:?}");
        let lines: Vec<&str> = t.result.lines().collect();
        assert_eq!(lines.len(), 25);
        assert!(lines.iter().all(|l| l.ends_with(" 200")), "{}", t.result);
        // The first dialog asked at once; the rest waited for it and were named together in
        // the next one, whose one answer covered them all.
        let prompts = responder.prompts();
        assert_eq!(prompts.len(), 2, "{prompts:#?}");
        assert_eq!(responder.max_open(), 1);
        assert_eq!(named(&prompts[0]) + named(&prompts[1]), 25, "{prompts:#?}");
        let n = named(&prompts[1]);
        assert!(n > 1, "{prompts:#?}");
        assert!(
            prompts[1]
                .title
                .contains(&format!("and {} other hosts?", n - 1)),
            "{}",
            prompts[1].title
        );
        assert!(prompts[1]
            .body
            .contains("Your answer applies to each of them."));
        let k = env.kernel().await;
        let grants = k.list_grants().await.unwrap();
        assert_eq!(
            grants
                .iter()
                .filter(|g| g.principal == "host"
                    && g.capability == "web.fetch"
                    && g.lifetime == "session")
                .count(),
            25,
            "{grants:?}"
        );
        let log = k.read_audit_log(0, 1000).await.unwrap();
        assert_eq!(
            log.iter()
                .filter(
                    |r| r.capability == "web.fetch" && r.reason == "the user allowed it (session)"
                )
                .count(),
            25
        );
        // The grants of the requests a dialog gathered are recorded as given, whether or not
        // their callers are still there to record their decisions.
        assert_eq!(
            log.iter()
                .filter(|r| r.decision == "grant"
                    && r.reason
                        == "in a dialog for several of its requests: the user allowed it (session)")
                .count(),
            n - 1,
            "{log:#?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_or_unanswered_dialog_counts_as_a_denial_and_no_provider_does_not() {
    bounded(async {
        let mut env = Env::start().await;
        env.stop_kernel("TERM").await;
        env.consent_timeout = 1;
        env.start_kernel().await;
        let port = serve_hosts(1);
        let fetch = format!("fetch {}", url(1, port));
        // Nobody to ask: denied, but the user never saw it, so it is not the user's "no".
        for _ in 0..3 {
            let t = env.run_task("tester", &fetch).await;
            assert!(t.message.contains("no consent provider"), "{}", t.message);
        }
        let responder =
            Responder::start(&env.address, &[ConsentReply::Silent, ConsentReply::Close]).await;
        let t = env.run_task("tester", &fetch).await;
        assert_eq!(t.state, "failed");
        assert!(
            t.message
                .contains("did not answer within 1 s; counted as a denial"),
            "{}",
            t.message
        );
        let t = env.run_task("tester", &fetch).await;
        assert!(
            t.message
                .contains("closed without an answer; counted as a denial"),
            "{}",
            t.message
        );
        let t = env.run_task("tester", &fetch).await;
        assert!(t.message.contains("denied this twice"), "{}", t.message);
        assert_eq!(responder.prompts().len(), 2);
        assert_eq!(
            responder.closed().len(),
            1,
            "the unanswered dialog was closed"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_nothing_more_for_a_task_stops_its_prompts() {
    bounded(async {
        let env = Env::start().await;
        let port = serve_hosts(3);
        let responder = Responder::start(
            &env.address,
            &[ConsentReply::DenyTask, ConsentReply::Allow("once")],
        )
        .await;
        let _reg = agentos_sdk::register(Fetcher, "fetcher", Some(&env.address))
            .await
            .unwrap();
        let urls: Vec<String> = (1..=3).map(|k| url(k, port)).collect();
        let t = env
            .run_task("host", &format!("serial {}", urls.join(" ")))
            .await;
        let lines: Vec<&str> = t.result.lines().collect();
        assert_eq!(lines.len(), 3, "{t:?}");
        assert!(
            lines[0].contains("the user denied it, and said to ask nothing more for this task"),
            "{}",
            lines[0]
        );
        for line in &lines[1..] {
            assert!(
                line.contains(&format!(
                    "denied without asking: the user said to ask nothing more for task {}",
                    t.id
                )),
                "{line}"
            );
        }
        let prompts = responder.prompts();
        assert_eq!(prompts.len(), 1);
        assert_eq!(
            prompts[0].answers,
            ["once", "session", "always", "deny-task"]
        );
        let log = env.kernel().await.read_audit_log(0, 1000).await.unwrap();
        assert_eq!(
            log.iter()
                .filter(|r| r.decision == "deny" && r.reason.contains("ask nothing more for task"))
                .count(),
            2,
            "{log:?}"
        );
        // Another task of the same agent is asked again.
        let t = env.run_task("host", &format!("serial {}", urls[1])).await;
        assert!(t.result.ends_with(" 200"), "{}", t.result);
        assert_eq!(responder.prompts().len(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outlives_a_panel_that_quits_and_is_asked_again_when_it_is_back() {
    bounded(async {
        let env = Env::start().await;
        let docs = env.home().join("Documents");
        std::fs::write(docs.join("budget.txt"), "the budget for 2026 is 42\n").unwrap();
        let docs = std::fs::canonicalize(docs).unwrap();
        let first = Responder::start(&env.address, &[ConsentReply::Silent]).await;
        let t = env
            .delegate("tester", &format!("read {} budget.txt", docs.display()))
            .await;
        while first.prompts().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // The panel quits with the dialog open: the request is not answered, and stays listed.
        first.quit().await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let k = env.kernel().await;
        let pending = k.list_consent_requests().await.unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(k.get_task(t).await.unwrap().state, "auth-required");
        // It comes back: the same request is asked again, and its answer is applied.
        let second = Responder::start(&env.address, &[ConsentReply::Allow("once")]).await;
        let done = env.wait_task(t).await;
        assert_eq!(done.state, "completed", "{done:?}");
        assert!(done.result.contains("42"));
        assert_eq!(second.prompts().len(), 1);
        assert!(k.list_consent_requests().await.unwrap().is_empty());
    })
    .await;
}

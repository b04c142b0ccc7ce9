//! End-to-end: apps in the chain. An app allowed to use an agent has that agent use its own
//! rights in the app's tasks, so the prompt that asks to let the app use the agent lists the
//! agent's lasting rights in plain words, and every prompt asked for a task the app started
//! names the app. Against the real kernel, with a Flatpak app emulated by bubblewrap and
//! xdg-dbus-proxy (skipped, saying why, where bwrap cannot make namespaces).

use agentos_dbus_interfaces::names;
use agentos_dbus_interfaces::proxies::Kernel1Proxy;
use agentos_tests::{bounded_for, ConsentReply, Env, Responder, TIMEOUT};

const APP: &str = "org.example.Reader";

fn skip_without_bwrap() -> bool {
    let works = agentos_tests::bwrap_works();
    if !works {
        eprintln!(
            "skipping: bwrap cannot create namespaces here, so no Flatpak sandbox can be emulated"
        );
    }
    !works
}

async fn delegate_as(k: &Kernel1Proxy<'_>, agent: &str, goal: &str) -> u64 {
    let path = k
        .delegate(agent, goal, Default::default())
        .await
        .expect("the app delegates");
    names::task_id_from_path(path.as_str()).expect("task path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prompt_that_lets_an_app_use_an_agent_says_which_rights_the_app_gains() {
    if skip_without_bwrap() {
        return;
    }
    bounded_for(TIMEOUT * 2, async {
        let env = Env::start().await;
        let docs = env.home().join("Documents");
        std::fs::write(docs.join("budget.txt"), "the budget for 2026 is 42\n").unwrap();
        let docs = std::fs::canonicalize(docs)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let host = env.kernel().await;
        host.grant("tester", "files.read", &docs, "always")
            .await
            .unwrap();
        host.grant("tester", "web.fetch", "example.org", "session")
            .await
            .unwrap();
        // Once-grants are spent on one call: they are no lasting right and are not listed.
        host.grant("tester", "web.fetch", "once.example.org", "once")
            .await
            .unwrap();
        let responder = Responder::start(
            &env.address,
            &[
                ConsentReply::Allow("session"),
                ConsentReply::Allow("once"),
                ConsentReply::Allow("once"),
            ],
        )
        .await;
        let (_app, conn) = env.app_connection(APP).await;
        let app = Kernel1Proxy::new(&conn).await.unwrap();

        // The app asks to use tester: the prompt lists tester's lasting rights.
        let t = delegate_as(&app, "tester", &format!("read {docs} budget.txt")).await;
        let prompts = responder.prompts();
        assert_eq!(prompts.len(), 1);
        let asked = &prompts[0];
        assert!(
            asked.title.contains(APP) && asked.title.contains("hand tasks to the agent tester"),
            "{asked:?}"
        );
        assert!(
            asked.body.contains(&format!("can read files in {docs}"))
                && asked.body.contains("fetch web pages from example.org")
                && asked.body.contains(&format!(
                    "allowing this lets {APP} (a sandboxed app) have it do so for you"
                ))
                && asked.body.contains("later reach this app's tasks too"),
            "{}",
            asked.body
        );
        assert!(!asked.body.contains("once.example.org"), "{}", asked.body);
        // And that is what happens: tester reads the file in the app's task, unasked.
        let done = env.wait_task(t).await;
        assert_eq!(done.state, "completed", "{done:?}");
        assert!(done.result.contains("42"));
        assert_eq!(responder.prompts().len(), 1);

        // A right tester does not have yet is asked for in the app's task: the prompt names
        // the app, whose task it is.
        let t = delegate_as(&app, "tester", &format!("list {docs}")).await;
        let done = env.wait_task(t).await;
        assert_eq!(done.state, "completed", "{done:?}");
        let prompts = responder.prompts();
        assert_eq!(prompts.len(), 2);
        assert!(
            prompts[1]
                .body
                .contains(&format!("This task was started by the app {APP}")),
            "{}",
            prompts[1].body
        );

        // An agent with no lasting rights: the prompt says so.
        let t = delegate_as(&app, "helper", "echo hi").await;
        env.wait_task(t).await;
        let prompts = responder.prompts();
        assert_eq!(prompts.len(), 3);
        assert!(
            prompts[2].body.contains("has no lasting rights now"),
            "{}",
            prompts[2].body
        );
    })
    .await;
}

//! End to end with the real small model (`scripts/local-llm`) and every piece real: `agentctl
//! ask` hands the question to the sidekick (launched by the kernel from its shipped manifest),
//! whose model delegates it to `docs` through the kernel; docs reads the document under the
//! user's grants and answers through the broker; the sidekick answers citing the file. The
//! sidekick holds no file rights of its own, so the user is asked once for the chain (the prompt
//! names the sidekick) and "until logout" gives it them. `agentctl usage` then shows both agents'
//! model use. Skipped, saying why, without the model (unless AGENTOS_REQUIRE_LOCAL_LLM=1).

use std::time::Duration;

use agentos_tests::local_llm::{self, Options};
use agentos_tests::{bounded_for, ConsentReply, Env, Responder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agentctl_ask_reaches_docs_through_the_sidekick_and_cites_the_file() {
    let Some(llm) = local_llm::or_skip() else {
        return;
    };
    bounded_for(Duration::from_secs(600), async {
        let server = llm
            .start(&Options {
                slots: 2,
                context: 2 * 4096,
                ..Options::default()
            })
            .await
            .expect("llama-server");
        let mut env = Env::start().await;
        let docs = env.home().join("Documents");
        std::fs::write(
            docs.join("budget.txt"),
            "Budget 2026\nThe budget for 2026 is 42 thousand euros.\n",
        )
        .unwrap();
        std::fs::write(
            docs.join("recipes.txt"),
            "Pancakes need flour, eggs and milk.\n",
        )
        .unwrap();
        let docs = std::fs::canonicalize(docs).unwrap();
        let docs = docs.to_string_lossy().into_owned();
        std::fs::write(
            env.root().join("config/agentos/models.toml"),
            server.models_toml(),
        )
        .unwrap();
        // The sidekick as shipped, sandboxed where bubblewrap works (as the harness runs docs).
        let shipped = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../packaging/agents/sidekick.toml"),
        )
        .unwrap();
        let sandbox = agentos_tests::bwrap_works();
        std::fs::write(
            env.agents_dir().join("sidekick.toml"),
            shipped.replace("sandbox = true", &format!("sandbox = {sandbox}")),
        )
        .unwrap();
        env.restart_kernel().await;
        let k = env.kernel().await;
        // The user lets the sidekick use docs, and docs read the documents folder.
        k.grant("sidekick", "agent.delegate", "docs", "always")
            .await
            .unwrap();
        for cap in ["files.list", "files.read"] {
            k.grant("docs", cap, &docs, "always").await.unwrap();
        }
        // The chain's prompts (the sidekick holds no file rights): allowed until logout.
        let responder = Responder::start(
            &env.address,
            &[
                ConsentReply::Allow("session"),
                ConsentReply::Allow("session"),
                ConsentReply::Allow("session"),
            ],
        )
        .await;

        let out = tokio::task::block_in_place(|| {
            env.agentctl(&["ask", "What is the budget for 2026? Look in my documents."])
        });
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let tasks = k.list_tasks(100).await.unwrap();
        assert!(
            out.status.success(),
            "agentctl ask failed:\n{stdout}\n{stderr}\ntasks: {tasks:#?}\nprompts: {:#?}",
            responder.prompts()
        );
        // The sidekick delegated to docs, through the kernel.
        let sidekick = tasks
            .iter()
            .find(|t| t.agent == "sidekick")
            .expect("a sidekick task");
        let child = tasks
            .iter()
            .find(|t| t.agent == "docs" && t.parent == sidekick.id)
            .unwrap_or_else(|| panic!("no docs task under the sidekick: {tasks:#?}"));
        assert_eq!(child.state, "completed", "{child:#?}");
        assert!(child.result.contains("budget.txt"), "{}", child.result);
        // The answer has the figure and cites the file.
        assert!(stdout.contains("42"), "{stdout}\n{stderr}");
        assert!(stdout.contains("budget.txt"), "{stdout}\n{stderr}");
        // The user was asked for the chain, naming the sidekick, and it now holds the right.
        assert!(
            responder
                .prompts()
                .iter()
                .any(|p| p.body.contains("Sidekick asked")),
            "{:#?}",
            responder.prompts()
        );
        let grants = k.list_grants().await.unwrap();
        assert!(
            grants
                .iter()
                .any(|g| g.principal == "sidekick" && g.capability == "files.read"),
            "{grants:#?}"
        );
        // Both agents' model use is counted.
        let usage = env.agentctl(&["usage", "--json"]);
        let usage = String::from_utf8_lossy(&usage.stdout).into_owned();
        assert!(
            usage.contains("\"sidekick\"") && usage.contains("\"docs\""),
            "{usage}"
        );
    })
    .await;
}

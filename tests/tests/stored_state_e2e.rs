//! End-to-end: stored state is checked at start. A grant put into the store while the kernel is
//! stopped, with no audit record that gave it, is not honoured, is removed, and a record says
//! so; grants the user gave (from agentctl, or in a dialog) come back. A log whose tail was cut
//! off while the kernel was stopped (its head set back to match, so the chain alone looks
//! intact) is told through the checkpoint beside the database: `agentctl log --verify` fails
//! and says what it checked and what it could not.

use agentos_tests::{bounded, ConsentReply, Env, Responder};

/// A folder with a document the test agent can be told to read.
fn documents(env: &Env) -> String {
    let docs = env.home().join("Documents");
    std::fs::write(docs.join("budget.txt"), "the budget for 2026 is 42\n").unwrap();
    std::fs::canonicalize(docs)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The kernel's database, opened behind its back, with the audit log's triggers dropped.
fn database(env: &Env) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(env.data_dir().join("agentos.db")).unwrap();
    db.execute_batch(
        "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;",
    )
    .unwrap();
    db
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_put_in_the_store_while_the_kernel_is_stopped_is_not_honoured() {
    bounded(async {
        let mut env = Env::start().await;
        let docs = documents(&env);
        let responder = Responder::start(&env.address, &[ConsentReply::Allow("always")]).await;
        // One grant from a dialog, one from the user's tools: both have their records.
        let t = env
            .run_task("tester", &format!("read {docs} budget.txt"))
            .await;
        assert_eq!(t.state, "completed", "{t:?}");
        assert_eq!(responder.prompts().len(), 1);
        let k = env.kernel().await;
        k.grant("helper", "files.read", &docs, "always")
            .await
            .unwrap();
        assert!(env.stop_kernel("TERM").await.success());

        // Behind the kernel's back: a grant nobody gave.
        database(&env)
            .execute(
                "INSERT INTO grants (principal, capability, scope, lifetime, granted_at)
                 VALUES ('intruder', 'files.read', ?1, 'always', 1)",
                [&docs],
            )
            .unwrap();
        env.start_kernel().await;

        let k = env.kernel().await;
        let mut held: Vec<String> = k
            .list_grants()
            .await
            .unwrap()
            .into_iter()
            .map(|g| format!("{} {} {}", g.principal, g.capability, g.lifetime))
            .collect();
        held.sort();
        assert_eq!(
            held,
            ["helper files.read always", "tester files.read always"]
        );
        let log = k.read_audit_log(0, 1000).await.unwrap();
        let said = log
            .iter()
            .find(|r| r.principal == "intruder")
            .expect("a record names the forged grant");
        assert_eq!(
            (said.decision.as_str(), said.scope.as_str()),
            ("revoke", docs.as_str())
        );
        assert!(
            said.reason.contains("no audit record gave this grant"),
            "{}",
            said.reason
        );
        // It is gone from the store too, and the honoured grant still works without asking.
        let stored: u32 = database(&env)
            .query_row(
                "SELECT COUNT(*) FROM grants WHERE principal = 'intruder'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, 0);
        let t = env
            .run_task("tester", &format!("read {docs} budget.txt"))
            .await;
        assert_eq!(t.state, "completed", "{t:?}");
        assert_eq!(responder.prompts().len(), 1);
        let out = tokio::task::block_in_place(|| env.agentctl(&["log", "--verify"]));
        assert!(out.status.success(), "{}", text(&out.stderr));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_cut_off_while_the_kernel_is_stopped_is_told_by_log_verify() {
    bounded(async {
        let mut env = Env::start().await;
        let k = env.kernel().await;
        for host in ["a.org", "b.org", "c.org", "d.org"] {
            k.grant("web", "web.fetch", host, "session").await.unwrap();
        }
        let out = tokio::task::block_in_place(|| env.agentctl(&["log", "--verify"]));
        let said = text(&out.stdout);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(said.contains("checkpoint: matched"), "{said}");
        assert!(said.contains("not checked:"), "{said}");
        assert!(
            said.contains("rewrite the database and the checkpoint together"),
            "{said}"
        );
        assert!(env.stop_kernel("TERM").await.success());

        // Cut the last two records off and set the head back to match.
        let db = database(&env);
        let last: u64 = db
            .query_row("SELECT MAX(seq) FROM audit", [], |r| r.get(0))
            .unwrap();
        let keep = last - 2;
        let hash: String = db
            .query_row("SELECT hash FROM audit WHERE seq = ?1", [keep], |r| {
                r.get(0)
            })
            .unwrap();
        db.execute("DELETE FROM audit WHERE seq > ?1", [keep])
            .unwrap();
        db.execute(
            "UPDATE audit_head SET seq = ?1, hash = ?2",
            rusqlite::params![keep, hash],
        )
        .unwrap();
        drop(db);
        env.start_kernel().await;

        let out = tokio::task::block_in_place(|| env.agentctl(&["log", "--verify"]));
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        let (said, warned) = (text(&out.stdout), text(&out.stderr));
        assert!(warned.contains("TAMPERED"), "{warned}");
        let missing = format!("records {} to {last} are missing", keep + 1);
        assert!(warned.contains(&missing), "{warned}");
        assert!(said.contains("hash chain: all"), "{said}");
        assert!(said.contains("findings: record"), "{said}");
        let (ok, _, problem, _, _, unchecked) =
            env.kernel().await.verify_audit_log_details().await.unwrap();
        assert!(!ok && problem.contains(&missing), "{problem}");
        assert!(unchecked.iter().any(|l| l.contains("running as you")));
        // The plain VerifyAuditLog says the same.
        let (ok, _, problem) = env.kernel().await.verify_audit_log().await.unwrap();
        assert!(!ok && problem.contains(&missing), "{problem}");
    })
    .await;
}

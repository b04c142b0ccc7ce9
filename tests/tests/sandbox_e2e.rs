//! End-to-end: agents the kernel runs under bubblewrap try to get out, and cannot; what they are
//! granted still reaches them through the kernel.

use agentos_tests::{bounded, Env};

/// bubblewrap needs user namespaces; where it cannot make them, these tests say why and skip.
fn bwrap_works() -> bool {
    let ok = agentos_tests::bwrap_works();
    if !ok {
        eprintln!("skipping: bwrap cannot create namespaces here (`bwrap --ro-bind / / --unshare-all true` failed)");
    }
    ok
}

async fn run(env: &Env, goal: &str) -> agentos_dbus_interfaces::TaskInfo {
    env.run_task("caged", goal).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_agent_cannot_get_out() {
    if !bwrap_works() {
        return;
    }
    bounded(async {
        let env = Env::start().await;
        let ssh = env.home().join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::write(ssh.join("id_ed25519"), "PRIVATE KEY").unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();

        let t = run(
            &env,
            &format!("try-read {}", ssh.join("id_ed25519").display()),
        )
        .await;
        assert!(t.result.starts_with("refused"), "read ~/.ssh: {t:?}");
        let t = run(&env, "try-read /etc/passwd").await;
        assert!(t.result.starts_with("refused"), "read /etc/passwd: {t:?}");
        let t = run(
            &env,
            &format!("try-connect-unix {}", env.root().join("bus").display()),
        )
        .await;
        assert!(t.result.starts_with("refused"), "session bus: {t:?}");
        let t = run(&env, &format!("try-connect-tcp 127.0.0.1:{port}")).await;
        assert!(t.result.starts_with("refused"), "network: {t:?}");
        let t = run(
            &env,
            &format!("try-write {}", env.data_dir().join("agentos.db").display()),
        )
        .await;
        assert!(t.result.starts_with("refused"), "kernel data: {t:?}");
        let t = run(&env, "env").await;
        assert_eq!(t.state, "completed");
        assert!(
            !t.result.contains("DBUS_SESSION_BUS_ADDRESS") && !t.result.contains("XDG_DATA_HOME"),
            "{}",
            t.result
        );
        // Goals never become command-line options.
        let t = run(&env, "echo --bind / /host").await;
        assert_eq!(t.result, "--bind / /host");
        drop(listener);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_files_still_reach_a_sandboxed_agent_through_the_kernel() {
    if !bwrap_works() {
        return;
    }
    bounded(async {
        let env = Env::start().await;
        let docs = std::fs::canonicalize(env.home().join("Documents")).unwrap();
        std::fs::write(docs.join("note.txt"), "inside").unwrap();
        let k = env.kernel().await;
        k.grant("caged", "files.read", &docs.to_string_lossy(), "always")
            .await
            .unwrap();
        let t = run(&env, &format!("read {} note.txt", docs.display())).await;
        assert_eq!(
            (t.state.as_str(), t.result.as_str()),
            ("completed", "inside"),
            "{t:?}"
        );
        // The same path opened directly from inside is not there.
        let t = run(
            &env,
            &format!("try-read {}", docs.join("note.txt").display()),
        )
        .await;
        assert!(t.result.starts_with("refused"), "{t:?}");
    })
    .await;
}

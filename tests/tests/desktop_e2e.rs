//! End-to-end with the desktop's own machinery: grants mirrored into the real
//! xdg-permission-store, seen and revoked with the flatpak CLI.

use std::process::Command;

use agentos_tests::{bounded, Env, Services};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_are_mirrored_and_revocable_from_the_desktop() {
    bounded(async {
        let env = Env::start_with(Services {
            permission_store: true,
        })
        .await;
        let docs = std::fs::canonicalize(env.home().join("Documents"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        std::fs::write(format!("{docs}/a.txt"), "alpha").unwrap();
        let k = env.kernel().await;
        k.grant("tester", "files.read", &docs, "always")
            .await
            .unwrap();
        k.grant("tester", "web.fetch", "example.org", "session")
            .await
            .unwrap();
        let shown = env.run(Command::new("flatpak").args(["permission-show", "tester"]));
        let text = stdout(&shown);
        assert!(
            text.contains(&format!("files.read:{docs}")) && text.contains("always"),
            "{text}"
        );
        assert!(
            text.contains("web.fetch:example.org") && text.contains("session"),
            "{text}"
        );
        assert_eq!(
            env.wait_task(env.delegate("tester", &format!("read {docs} a.txt")).await)
                .await
                .result,
            "alpha"
        );

        // flatpak permission-reset revokes everything of the app; the next call is denied.
        assert!(env
            .run(Command::new("flatpak").args(["permission-reset", "tester"]))
            .status
            .success());
        let deadline = tokio::time::Instant::now() + agentos_tests::TIMEOUT;
        while !k.list_grants().await.unwrap().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the kernel kept the grants"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let t = env
            .wait_task(env.delegate("tester", &format!("read {docs} a.txt")).await)
            .await;
        assert_eq!(t.state, "failed");
        let log = k.read_audit_log(0, 1000).await.unwrap();
        assert!(log
            .iter()
            .any(|r| r.decision == "revoke" && r.reason.contains("from the desktop")));

        // A grant written straight into the store (it has no access control) is never honoured,
        // and is removed from it.
        let forged = env.run(Command::new("gdbus").args([
            "call",
            "--session",
            "-d",
            "org.freedesktop.impl.portal.PermissionStore",
            "-o",
            "/org/freedesktop/impl/portal/PermissionStore",
            "-m",
            "org.freedesktop.impl.portal.PermissionStore.SetPermission",
            "agentos",
            "true",
            &format!("files.read:{docs}"),
            "tester",
            "['always']",
        ]));
        assert!(
            forged.status.success(),
            "{}",
            String::from_utf8_lossy(&forged.stderr)
        );
        let t = env
            .wait_task(env.delegate("tester", &format!("read {docs} a.txt")).await)
            .await;
        assert_eq!(t.state, "failed", "a forged grant was honoured");
        assert!(k.list_grants().await.unwrap().is_empty());
        let deadline = tokio::time::Instant::now() + agentos_tests::TIMEOUT;
        loop {
            let shown =
                stdout(&env.run(Command::new("flatpak").args(["permission-show", "tester"])));
            if !shown.contains("always") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the forged entry stayed: {shown}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_removed_while_the_kernel_was_down_stays_revoked() {
    bounded(async {
        let mut env = Env::start_with(Services {
            permission_store: true,
        })
        .await;
        let k = env.kernel().await;
        k.grant("tester", "web.fetch", "example.org", "always")
            .await
            .unwrap();
        k.grant("helper", "web.fetch", "example.org", "always")
            .await
            .unwrap();
        env.stop_kernel("TERM").await;
        let removed = env.run(Command::new("flatpak").args([
            "permission-remove",
            "agentos",
            "web.fetch:example.org",
            "tester",
        ]));
        assert!(
            removed.status.success(),
            "{}",
            String::from_utf8_lossy(&removed.stderr)
        );
        env.start_kernel().await;
        let k = env.kernel().await;
        let deadline = tokio::time::Instant::now() + agentos_tests::TIMEOUT;
        loop {
            let grants = k.list_grants().await.unwrap();
            let principals: Vec<&str> = grants.iter().map(|g| g.principal.as_str()).collect();
            if principals == ["helper"] {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "grants after restart: {principals:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

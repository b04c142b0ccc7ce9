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
            ..Services::default()
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
            env.run_task("tester", &format!("read {docs} a.txt"))
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
        let t = env.run_task("tester", &format!("read {docs} a.txt")).await;
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
        let t = env.run_task("tester", &format!("read {docs} a.txt")).await;
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
async fn grants_given_at_once_all_stay_and_all_reach_the_desktop() {
    bounded(async {
        let env = Env::start_with(Services {
            permission_store: true,
            ..Services::default()
        })
        .await;
        // Each write into the permission store is announced with the whole entry as it was
        // then, and the kernel looks the table over as it starts: a view taken before a grant
        // was written must not take that grant away (see `confirm_lost`).
        let principals: Vec<String> = (0..32).map(|i| format!("agent{i}")).collect();
        let k = env.kernel().await;
        let grants = principals
            .iter()
            .map(|p| k.grant(p, "web.fetch", "example.org", "always"));
        for r in futures_util::future::join_all(grants).await {
            r.expect("grant");
        }
        // The announcements of those writes have reached the kernel once a later write has.
        k.grant("last", "web.fetch", "example.net", "always")
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let kept = k.list_grants().await.unwrap();
        let lost: Vec<&String> = principals
            .iter()
            .filter(|p| !kept.iter().any(|g| &g.principal == *p))
            .collect();
        assert!(lost.is_empty(), "grants taken away: {lost:?}");
        for p in &principals {
            let shown = env.run(Command::new("flatpak").args(["permission-show", p]));
            assert!(
                String::from_utf8_lossy(&shown.stdout).contains("example.org"),
                "the desktop does not show the grant to {p}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_removed_while_the_kernel_was_down_stays_revoked() {
    bounded(async {
        let mut env = Env::start_with(Services {
            permission_store: true,
            ..Services::default()
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

/// A cgroup (v2) folder this test may create, named like a desktop app's systemd scope.
fn app_scope(app_id: &str) -> Option<std::path::PathBuf> {
    for base in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        let is_v2 = std::path::Path::new(base).join("cgroup.procs").exists();
        let scope = std::path::Path::new(base)
            .join(format!("app-gnome-{app_id}-{}.scope", std::process::id()));
        if is_v2 && std::fs::create_dir(&scope).is_ok() {
            return Some(scope);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_app_needs_the_users_grant_to_use_an_agent() {
    let Some(scope) = app_scope("org.example.Caller") else {
        eprintln!("skipping: no writable cgroup v2 hierarchy to put a process in an app scope");
        return;
    };
    bounded(async {
        let env = Env::start().await;
        let responder = agentos_tests::Responder::start(
            &env.address,
            &[
                agentos_tests::ConsentReply::Deny,
                agentos_tests::ConsentReply::Allow("always"),
            ],
        )
        .await;
        let run_in_scope = || {
            let script = format!(
                "echo $$ > {}/cgroup.procs && exec {} --address '{}' run tester echo from an app",
                scope.display(),
                agentos_tests::bin("agentctl").display(),
                env.address
            );
            tokio::task::block_in_place(|| env.run(Command::new("sh").arg("-c").arg(script)))
        };
        let denied = run_in_scope();
        assert_eq!(denied.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&denied.stderr).contains("denied"),
            "{}",
            String::from_utf8_lossy(&denied.stderr)
        );
        let prompt = &responder.prompts()[0];
        assert!(
            prompt.title.contains("org.example.Caller")
                && prompt.title.contains("outside any sandbox"),
            "{prompt:?}"
        );
        assert!(prompt.title.contains("tester"), "{prompt:?}");
        let allowed = run_in_scope();
        assert!(
            allowed.status.success(),
            "{}",
            String::from_utf8_lossy(&allowed.stderr)
        );
        assert!(stdout(&allowed).contains("from an app"));
        let grants = env.kernel().await.list_grants().await.unwrap();
        assert!(grants
            .iter()
            .any(|g| g.principal == "host:org.example.Caller"
                && g.capability == "agent.delegate"
                && g.scope == "tester"));
        // The user's own terminal (no app scope) needs no grant.
        let plain = tokio::task::block_in_place(|| {
            env.agentctl(&["run", "tester", "echo", "from the user"])
        });
        assert!(plain.status.success());
        assert_eq!(responder.prompts().len(), 2);
    })
    .await;
    let _ = std::fs::remove_dir(&scope);
}

fn skip_without_bwrap() -> bool {
    let works = agentos_tests::bwrap_works();
    if !works {
        eprintln!(
            "skipping: bwrap cannot create namespaces here, so no Flatpak sandbox can be emulated"
        );
    }
    !works
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flatpak_agent_registers_under_its_own_app_id_only() {
    if skip_without_bwrap() {
        return;
    }
    bounded(async {
        let env = Env::start().await;
        let agent = agentos_tests::bin("agentos-test-agent");
        let _app = env
            .flatpak(
                "org.example.FlatAgent",
                &agent,
                &["--register", "org.example.FlatAgent"],
            )
            .await;
        let k = env.kernel().await;
        env.wait_agent_connected("org.example.FlatAgent").await;
        let t = env
            .run_task("org.example.FlatAgent", "echo from the sandbox")
            .await;
        assert_eq!(
            (t.agent.as_str(), t.result.as_str()),
            ("org.example.FlatAgent", "from the sandbox")
        );
        // Another app cannot take an id that is not its own.
        let imposter = env
            .flatpak("org.example.Imposter", &agent, &["--register", "docs"])
            .await
            .finish()
            .await;
        assert_eq!(imposter.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&imposter.stderr).contains("cannot register as"),
            "{}",
            String::from_utf8_lossy(&imposter.stderr)
        );
        assert!(!k
            .list_agents()
            .await
            .unwrap()
            .iter()
            .any(|a| a.id == "docs" && a.connected));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flatpak_app_needs_the_users_grant_to_use_an_agent() {
    if skip_without_bwrap() {
        return;
    }
    bounded(async {
        let env = Env::start().await;
        let responder = agentos_tests::Responder::start(
            &env.address,
            &[
                agentos_tests::ConsentReply::Deny,
                agentos_tests::ConsentReply::Allow("once"),
            ],
        )
        .await;
        let agentctl = agentos_tests::bin("agentctl");
        let run = || {
            env.flatpak(
                "org.example.Caller",
                &agentctl,
                &["run", "tester", "echo", "from a flatpak"],
            )
        };
        let denied = run().await.finish().await;
        assert_eq!(
            denied.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&denied.stderr)
        );
        let prompts = responder.prompts();
        let Some(prompt) = prompts.first() else {
            panic!(
                "no prompt; agentctl said: {}",
                String::from_utf8_lossy(&denied.stderr)
            );
        };
        assert!(
            prompt
                .title
                .contains("org.example.Caller (a sandboxed app)"),
            "{prompt:?}"
        );
        let allowed = run().await.finish().await;
        assert!(
            allowed.status.success(),
            "{}",
            String::from_utf8_lossy(&allowed.stderr)
        );
        assert!(stdout(&allowed).contains("from a flatpak"));
        // A sandboxed app cannot grant itself anything.
        let grant = env
            .flatpak(
                "org.example.Caller",
                &agentctl,
                &["grant", "org.example.Caller", "agent.delegate", "tester"],
            )
            .await
            .finish()
            .await;
        assert_eq!(grant.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&grant.stderr).contains("only the user"),
            "{}",
            String::from_utf8_lossy(&grant.stderr)
        );
    })
    .await;
}

/// Run `xdotool` on the test's display.
fn xdotool(env: &Env, args: &[&str]) -> String {
    let display = env.display.clone().expect("a display");
    let out = env.run(Command::new("xdotool").args(args).env("DISPLAY", display));
    assert!(
        out.status.success(),
        "xdotool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_panel_the_desktops_own_access_dialog_asks() {
    let missing: Vec<&str> = [
        "/usr/bin/Xvfb",
        "/usr/libexec/xdg-desktop-portal-gtk",
        "/usr/bin/xdotool",
        "/usr/bin/import",
    ]
    .into_iter()
    .filter(|p| !std::path::Path::new(p).exists())
    .collect();
    if !missing.is_empty() {
        eprintln!("skipping: {missing:?} not installed (apt-get install xvfb xdg-desktop-portal-gtk xdotool imagemagick)");
        return;
    }
    bounded(async {
        let mut env = Env::start_with(Services {
            desktop_portal: true,
            ..Services::default()
        })
        .await;
        // Finding, shooting and answering the dialog stays well within the limit for an answer.
        env.stop_kernel("TERM").await;
        env.consent_timeout = 60;
        env.start_kernel().await;
        let docs = std::fs::canonicalize(env.home().join("Documents")).unwrap();
        std::fs::write(docs.join("budget.txt"), "the budget is 42").unwrap();
        let task = env
            .delegate("tester", &format!("read {} budget.txt", docs.display()))
            .await;
        env.wait_state(task, |s| s.as_str() == "auth-required")
            .await;
        // Wait for the dialog's window, let it draw, keep a screenshot as a test artifact.
        let deadline = tokio::time::Instant::now() + agentos_tests::TIMEOUT;
        let window = loop {
            let found = xdotool(&env, &["search", "--onlyvisible", "--name", ""]);
            // The dialog, not the full-screen client leader GTK also maps.
            let dialog = found.lines().find(|w| {
                let geometry = xdotool(&env, &["getwindowgeometry", "--shell", w]);
                geometry.lines().any(|l| {
                    l.strip_prefix("WIDTH=")
                        .is_some_and(|v| v.parse::<u32>().is_ok_and(|v| v < 1280))
                })
            });
            if let Some(w) = dialog {
                break w.to_string();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no dialog window appeared"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        let artifacts =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        let shot = artifacts.join("access-dialog.png");
        let display = env.display.clone().unwrap();
        let took = env.run(
            Command::new("import")
                .args(["-window", "root"])
                .arg(&shot)
                .env("DISPLAY", &display),
        );
        assert!(
            took.status.success() && shot.exists(),
            "no screenshot: {}",
            String::from_utf8_lossy(&took.stderr)
        );
        // Answer with the keyboard: focus the dialog, press Alt+A ("_Allow").
        xdotool(&env, &["windowfocus", "--sync", &window]);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        xdotool(&env, &["key", "alt+a"]);
        eprintln!(
            "WINDOWS: {:?} chosen {window}",
            xdotool(
                &env,
                &[
                    "search",
                    "--onlyvisible",
                    "--class",
                    "xdg-desktop-portal-gtk"
                ]
            )
        );
        eprintln!("FOCUS: {:?}", xdotool(&env, &["getwindowfocus"]));
        let t = env.wait_task(task).await;
        assert_eq!(
            (t.state.as_str(), t.result.as_str()),
            ("completed", "the budget is 42"),
            "{t:?}"
        );
        let log = env.kernel().await.read_audit_log(0, 100).await.unwrap();
        assert!(
            log.iter().any(
                |r| r.capability == "files.read" && r.reason.starts_with("the user allowed it")
            ),
            "{log:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flatpak_agent_gets_granted_files_through_the_documents_portal() {
    if skip_without_bwrap() {
        return;
    }
    let missing: Vec<&str> = [
        "/dev/fuse",
        "/usr/bin/fusermount3",
        "/usr/libexec/xdg-document-portal",
    ]
    .into_iter()
    .filter(|p| !std::path::Path::new(p).exists())
    .collect();
    if !missing.is_empty() {
        eprintln!("skipping: the Documents portal needs {missing:?}");
        return;
    }
    bounded(async {
        let env = Env::start_with(Services {
            document_portal: true,
            ..Services::default()
        })
        .await;
        let docs = std::fs::canonicalize(env.home().join("Documents")).unwrap();
        std::fs::write(docs.join("note.txt"), "shared through the portal").unwrap();
        let agent = agentos_tests::bin("agentos-test-agent");
        let _app = env
            .flatpak(
                "org.example.FlatAgent",
                &agent,
                &["--register", "org.example.FlatAgent"],
            )
            .await;
        let k = env.kernel().await;
        env.wait_agent_connected("org.example.FlatAgent").await;
        k.grant(
            "org.example.FlatAgent",
            "files.read",
            &docs.to_string_lossy(),
            "always",
        )
        .await
        .unwrap();
        let t = env
            .run_task(
                "org.example.FlatAgent",
                &format!("share {} note.txt", docs.display()),
            )
            .await;
        assert_eq!(
            (t.state.as_str(), t.result.as_str()),
            ("completed", "shared through the portal"),
            "{t:?}"
        );
        // Exported to that app alone: the portal lists it for the app, not for another one.
        let listed = |app: &str| {
            stdout(&env.run(Command::new("gdbus").args([
                "call",
                "--session",
                "-d",
                "org.freedesktop.portal.Documents",
                "-o",
                "/org/freedesktop/portal/documents",
                "-m",
                "org.freedesktop.portal.Documents.List",
                app,
            ])))
        };
        // It was the task's to read: once the task ended, the kernel took it back (what the
        // app sees of a share while it runs: contract_bytes_e2e).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while listed("org.example.FlatAgent").contains("note.txt") {
            assert!(
                std::time::Instant::now() < deadline,
                "still shared after its task ended: {}",
                listed("org.example.FlatAgent")
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(!listed("org.example.Other").contains("note.txt"));
        // A kernel-launched (non-Flatpak) agent is told to use OpenFile.
        k.grant("tester", "files.read", &docs.to_string_lossy(), "always")
            .await
            .unwrap();
        let t = env
            .run_task("tester", &format!("share {} note.txt", docs.display()))
            .await;
        assert!(t.message.contains("not a Flatpak app"), "{t:?}");
    })
    .await;
}

//! End-to-end: manifests are trusted as far as their location. A manifest the user can write runs
//! its agent sandboxed whatever it asks; programs are checked before they run; an agent whose
//! program or manifest changed since it was given access has its grants suspended until the user
//! confirms, and the prompt says so.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentos_dbus_interfaces::names;
use agentos_dbus_interfaces::proxies::Agent1Proxy;
use agentos_tests::{bin, bounded, bounded_for, ConsentReply, Env, Responder};

/// bubblewrap needs user namespaces; where it cannot make them, these tests say why and skip.
fn bwrap_works() -> bool {
    let ok = agentos_tests::bwrap_works();
    if !ok {
        eprintln!("skipping: bwrap cannot create namespaces here (`bwrap --ro-bind / / --unshare-all true` failed)");
    }
    ok
}

fn manifest(id: &str, exec: &str, caps: &[&str], sandbox: Option<bool>) -> String {
    let caps: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
    let mut text = format!(
        "id = \"{id}\"\nname = \"Test {id}\"\nexec = \"{exec}\"\ncapabilities = [{}]\n",
        caps.join(", ")
    );
    if let Some(s) = sandbox {
        text.push_str(&format!("sandbox = {s}\n"));
    }
    text
}

/// A folder of manifests the user can write, searched by the kernel but not trusted by it. The
/// test's temp dir belongs to whoever runs the test; a kernel running as root counts root's own
/// folders as the system's, so there the folder is made writable by everyone.
fn user_agents_dir(env: &Env) -> PathBuf {
    let dir = env.root().join("user-agents");
    std::fs::create_dir_all(&dir).unwrap();
    if std::fs::metadata(env.root()).unwrap().uid() == 0 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    dir
}

/// Restart the kernel with `dir` searched too.
async fn restart_with(env: &mut Env, dir: &Path) {
    assert!(env.stop_kernel("TERM").await.success());
    let mut cmd = env.kernel_command();
    cmd.arg("--agents-dir").arg(dir);
    env.start_kernel_with(cmd).await;
}

fn documents(env: &Env) -> String {
    let docs = env.home().join("Documents");
    std::fs::write(docs.join("budget.txt"), "the budget for 2026 is 42\n").unwrap();
    std::fs::canonicalize(docs)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// A copy of the test agent at `path` (plus `extra` bytes at its end: a different program that
/// runs the same), put in place by a rename, as an update does.
fn install_agent(path: &Path, extra: &[u8]) {
    let mut bytes = std::fs::read(bin("agentos-test-agent")).unwrap();
    bytes.extend_from_slice(extra);
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// When the kernel last recorded a fingerprint of `agent`, if it did.
fn fingerprint_time(env: &Env, agent: &str) -> Option<i64> {
    let db = env.data_dir().join("agentos.db");
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.query_row(
                "SELECT recorded_at FROM agent_fingerprints WHERE agent = ?1",
                [agent],
                |r| r.get(0),
            )
        })
        .ok()
}

/// Wait until the kernel recorded a fingerprint of `agent` later than `after` (done off its
/// thread once a grant is given).
async fn wait_fingerprint(env: &Env, agent: &str, after: Option<i64>) {
    let deadline = tokio::time::Instant::now() + agentos_tests::TIMEOUT;
    loop {
        if fingerprint_time(env, agent) > after {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no fingerprint of {agent} was recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The grants the kernel lists for `agent`, as (capability, scope, lifetime).
async fn grants_of(env: &Env, agent: &str) -> Vec<(String, String, String)> {
    let grants = env.kernel().await.list_grants().await.unwrap();
    grants
        .into_iter()
        .filter(|g| g.principal == agent)
        .map(|g| (g.capability, g.scope, g.lifetime))
        .collect()
}

/// The object of agent `id` on the bus.
async fn agent1(env: &Env, id: &str) -> Agent1Proxy<'static> {
    Agent1Proxy::builder(&env.conn)
        .path(names::agent_path(id))
        .unwrap()
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap()
}

/// Wait until the audit log has a record of `agent` with `decision`.
async fn wait_audit(env: &Env, agent: &str, decision: &str) -> String {
    let deadline = tokio::time::Instant::now() + agentos_tests::TIMEOUT;
    loop {
        let log = env.kernel().await.read_audit_log(0, 1000).await.unwrap();
        if let Some(r) = log
            .iter()
            .find(|r| r.principal == agent && r.decision == decision)
        {
            return r.reason.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {decision} record of {agent}: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_the_user_can_write_runs_its_agent_sandboxed_whatever_it_asks() {
    if !bwrap_works() {
        return;
    }
    bounded(async {
        let mut env = Env::start().await;
        let tester = bin("agentos-test-agent");
        let tester = tester.to_string_lossy();
        let dir = user_agents_dir(&env);
        std::fs::write(
            dir.join("loose.toml"),
            manifest("loose", &tester, &[], Some(false)),
        )
        .unwrap();
        // Not saying anything means sandboxed, even where no sandbox could be asked for.
        std::fs::write(
            env.agents_dir().join("plain.toml"),
            manifest("plain", &tester, &[], None),
        )
        .unwrap();
        restart_with(&mut env, &dir).await;

        for agent in ["loose", "plain"] {
            let t = env.run_task(agent, "try-read /etc/passwd").await;
            assert_eq!(t.state, "completed", "{t:?}");
            assert!(t.result.starts_with("refused"), "{agent}: {t:?}");
        }
        // A manifest where the kernel trusts it may still ask for no sandbox.
        let t = env.run_task("tester", "try-read /etc/passwd").await;
        assert!(t.result.starts_with("read "), "{t:?}");
        // The agents' objects say so.
        for (agent, sandboxed) in [("loose", true), ("plain", true), ("tester", false)] {
            assert_eq!(
                agent1(&env, agent).await.sandboxed().await.unwrap(),
                sandboxed,
                "{agent}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_program_fails_the_task_with_a_clear_reason() {
    bounded(async {
        let mut env = Env::start().await;
        let progs = env.root().join("progs");
        std::fs::create_dir_all(&progs).unwrap();
        let plain = progs.join("plain.txt");
        std::fs::write(&plain, "not a program").unwrap();
        let shared = progs.join("shared-agent");
        install_agent(&shared, b"");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o775)).unwrap();
        let cases = [
            (
                "missing",
                "/nonexistent/agent".to_string(),
                "cannot be found",
            ),
            (
                "relative",
                "progs/agent".to_string(),
                "neither an absolute path nor a bare program name",
            ),
            (
                "elsewhere",
                "sh".to_string(),
                "no program named \"sh\" in the kernel's exec dirs",
            ),
            (
                "folder",
                progs.to_string_lossy().into_owned(),
                "is not a regular file",
            ),
            (
                "notexec",
                plain.to_string_lossy().into_owned(),
                "is not executable",
            ),
            (
                "shared",
                shared.to_string_lossy().into_owned(),
                "writable by others than its owner (mode 775)",
            ),
        ];
        for (id, exec, _) in &cases {
            std::fs::write(
                env.agents_dir().join(format!("{id}.toml")),
                manifest(id, exec, &[], Some(false)),
            )
            .unwrap();
        }
        env.restart_kernel().await;
        for (id, _, why) in &cases {
            let t = env.run_task(id, "echo hi").await;
            assert_eq!(t.state, "failed", "{id}: {t:?}");
            assert!(
                t.message.contains(&format!("agent {id} cannot run")) && t.message.contains(why),
                "{id}: {}",
                t.message
            );
        }
        // The same program, writable by its owner alone, runs.
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        env.restart_kernel().await;
        let t = env.run_task("shared", "echo hi").await;
        assert_eq!(t.result, "hi", "{t:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_program_has_its_grants_suspended_until_the_user_confirms() {
    bounded_for(Duration::from_secs(90), async {
        let mut env = Env::start().await;
        let docs = documents(&env);
        let prog = env.root().join("progs/changing");
        std::fs::create_dir_all(prog.parent().unwrap()).unwrap();
        install_agent(&prog, b"");
        std::fs::write(
            env.agents_dir().join("changing.toml"),
            manifest(
                "changing",
                &prog.to_string_lossy(),
                &["files.read", "files.list"],
                Some(false),
            ),
        )
        .unwrap();
        env.restart_kernel().await;
        let responder = Responder::start(&env.address, &[ConsentReply::Deny]).await;
        let k = env.kernel().await;
        k.grant("changing", "files.read", &docs, "always")
            .await
            .unwrap();
        wait_fingerprint(&env, "changing", None).await;
        let read = format!("read {docs} budget.txt");

        // Replaced before its launch: the grant is suspended, not honoured, not listed.
        let first = fingerprint_time(&env, "changing");
        install_agent(&prog, b"an update");
        let t = env.delegate("changing", &read).await;
        let t = env.wait_task(t).await;
        assert_eq!(t.state, "failed", "{t:?}");
        assert!(grants_of(&env, "changing").await.is_empty());
        let reason = wait_audit(&env, "changing", "suspend").await;
        assert!(reason.contains("its program is different"), "{reason}");
        let suspended = env.kernel().await.list_suspended_grants().await.unwrap();
        assert_eq!(
            suspended
                .iter()
                .map(|g| (
                    g.principal.as_str(),
                    g.capability.as_str(),
                    g.scope.as_str()
                ))
                .collect::<Vec<_>>(),
            [("changing", "files.read", docs.as_str())]
        );
        // agentctl shows them, apart from the grants that hold.
        let out = env.agentctl(&["grants"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let (_, below) = text
            .split_once("suspended until you confirm")
            .unwrap_or_else(|| panic!("no suspended grants shown: {text}"));
        assert!(
            below.contains("changing") && below.contains("files.read"),
            "{text}"
        );
        let changing = agent1(&env, "changing").await;
        assert_eq!(
            changing.changed().await.unwrap(),
            "its program is different; 1 grants suspended until you confirm"
        );
        // The prompt said why it asks again.
        let prompts = responder.prompts();
        let prompt = prompts.last().expect("the user was asked");
        assert!(
            prompt.body.starts_with(
                "Test changing changed since you gave it access: its program is different."
            ),
            "{prompt:?}"
        );

        // An allow confirms: the suspended grant is honoured again, and kept after a restart.
        responder.push(ConsentReply::Allow("once"));
        let t = env.run_task("changing", &read).await;
        assert_eq!(t.state, "completed", "{t:?}");
        let reason = wait_audit(&env, "changing", "confirm").await;
        assert!(
            reason.contains("1 suspended grants honoured again"),
            "{reason}"
        );
        assert_eq!(
            grants_of(&env, "changing").await,
            [("files.read".into(), docs.clone(), "always".into())]
        );
        assert_eq!(changing.changed().await.unwrap(), "");
        assert!(env
            .kernel()
            .await
            .list_suspended_grants()
            .await
            .unwrap()
            .is_empty());
        // The new program is what the user confirmed.
        wait_fingerprint(&env, "changing", first).await;
        let asked = responder.prompts().len();
        env.restart_kernel().await;
        let t = env.run_task("changing", &read).await;
        assert_eq!(t.state, "completed", "{t:?}");
        assert_eq!(responder.prompts().len(), asked, "no new question");

        // Replaced once more, then given a grant and launched at once, before that grant's own
        // recording of the program may have landed: the grant was given to the agent as it is
        // now, so nothing is suspended.
        env.restart_kernel().await;
        install_agent(&prog, b"a third version");
        let k = env.kernel().await;
        k.grant("changing", "files.list", &docs, "always")
            .await
            .unwrap();
        let t = env.run_task("changing", &read).await;
        assert_eq!(t.state, "completed", "{t:?}");
        assert!(k.list_suspended_grants().await.unwrap().is_empty());
        assert_eq!(responder.prompts().len(), asked, "no new question");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_manifest_suspends_grants_at_start_and_agentctl_grant_confirms() {
    bounded_for(Duration::from_secs(90), async {
        let mut env = Env::start().await;
        let docs = documents(&env);
        let tester = bin("agentos-test-agent");
        let file = env.agents_dir().join("edited.toml");
        let text = manifest(
            "edited",
            &tester.to_string_lossy(),
            &["files.read", "files.list"],
            Some(false),
        );
        std::fs::write(&file, &text).unwrap();
        env.restart_kernel().await;
        let k = env.kernel().await;
        k.grant("edited", "files.read", &docs, "always")
            .await
            .unwrap();
        wait_fingerprint(&env, "edited", None).await;

        // The same manifest laid out differently is the same manifest.
        std::fs::write(
            &file,
            format!("# reformatted\n{}", text.replace(" = ", "=")),
        )
        .unwrap();
        env.restart_kernel().await;
        assert_eq!(grants_of(&env, "edited").await.len(), 1);

        std::fs::write(&file, format!("{text}description = \"Now does more\"\n")).unwrap();
        env.restart_kernel().await;
        assert!(grants_of(&env, "edited").await.is_empty());
        let reason = wait_audit(&env, "edited", "suspend").await;
        assert!(reason.contains("its manifest is different"), "{reason}");
        // Denied in the prompt: still suspended.
        let responder = Responder::start(&env.address, &[ConsentReply::Deny]).await;
        let t = env
            .run_task("edited", &format!("read {docs} budget.txt"))
            .await;
        assert_eq!(t.state, "failed", "{t:?}");
        assert!(
            responder.prompts()[0].body.starts_with(
                "Test edited changed since you gave it access: its manifest is different."
            ),
            "{:?}",
            responder.prompts()
        );
        assert!(grants_of(&env, "edited").await.is_empty());

        // The user's own tools confirm too.
        let out = env.agentctl(&[
            "grant",
            "edited",
            "files.list",
            &docs,
            "--lifetime",
            "session",
        ]);
        assert!(out.status.success(), "{out:?}");
        wait_audit(&env, "edited", "confirm").await;
        let mut grants = grants_of(&env, "edited").await;
        grants.sort();
        assert_eq!(
            grants,
            [
                ("files.list".into(), docs.clone(), "session".into()),
                ("files.read".into(), docs.clone(), "always".into()),
            ]
        );
    })
    .await;
}

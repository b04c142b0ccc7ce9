//! End-to-end: delegation trees, cancellation, crashes, timeouts, restarts, channels and
//! malformed input, on a private bus (discovery and introspection are in `contract_e2e`).

use std::collections::HashMap;

use agentos_dbus_interfaces::names::{self, KERNEL_PATH};
use agentos_dbus_interfaces::{Bytes, Error};
use agentos_tests::contract::{committed, served};
use agentos_tests::{bounded, bounded_for, Env, TIMEOUT};
use zbus::zvariant::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_kernel_refuses_to_start() {
    bounded(async {
        let env = Env::start().await;
        let out = env.kernel_command().output().unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stderr).contains("already owns org.agentos.Kernel"));
        // The first one keeps serving.
        assert!(env.kernel().await.list_agents().await.is_ok());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegation_tree_with_progress_and_artifacts() {
    bounded(async {
        let env = Env::start().await;
        let k = env.kernel().await;
        k.grant("tester", "agent.delegate", "helper", "always")
            .await
            .unwrap();
        let root = env
            .delegate(
                "tester",
                "delegate helper artifact notes.txt child notes ; echo from the child",
            )
            .await;
        let done = env.wait_task(root).await;
        assert_eq!(done.state, "completed", "{done:?}");
        assert_eq!(done.result, "completed: from the child");
        let tasks = k.list_tasks(10).await.unwrap();
        let child = tasks
            .iter()
            .find(|t| t.parent == root)
            .expect("a child task");
        assert_eq!(child.agent, "helper");
        assert_eq!(child.caller, "tester");
        assert_eq!(child.progress, 1.0);
        let proxy = agentos_dbus_interfaces::proxies::Task1Proxy::builder(&env.conn)
            .path(names::task_path(child.id))
            .unwrap()
            .build()
            .await
            .unwrap();
        let artifacts = proxy.artifacts().await.unwrap();
        assert_eq!(artifacts.len(), 1);
        assert_eq!(artifacts[0].0, "notes.txt");
        let fd = proxy.open_artifact("notes.txt").await.unwrap();
        let text = std::fs::read_to_string(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .unwrap();
        assert_eq!(text, "child notes");
        assert!(matches!(
            proxy.open_artifact("../etc").await,
            Err(Error::InvalidArgument(_))
        ));
        // The child's artifact flowed up to the parent: same content, stored once.
        let parent = agentos_dbus_interfaces::proxies::Task1Proxy::builder(&env.conn)
            .path(names::task_path(root))
            .unwrap()
            .build()
            .await
            .unwrap();
        assert_eq!(parent.artifacts().await.unwrap(), artifacts);
        // agentctl shows the tree: newest root first, each child indented under its parent.
        let alone = env.run_task("tester", "echo alone").await;
        let out = tokio::task::block_in_place(|| env.agentctl(&["tasks"]));
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let rows: Vec<String> = text.lines().skip(1).map(str::to_string).collect();
        let at = |id: u64| {
            rows.iter()
                .position(|l| l.trim_start().starts_with(&format!("{id} ")))
                .unwrap_or_else(|| panic!("task {id} not shown:\n{text}"))
        };
        let (a, r, c) = (at(alone.id), at(root), at(child.id));
        assert_eq!((a + 1, r + 1), (r, c), "order:\n{text}");
        assert!(rows[r].starts_with(&format!("{root} ")), "{text}");
        assert!(rows[c].starts_with(&format!("  {} ", child.id)), "{text}");
        assert!(rows[c].contains("helper"), "{text}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_a_task_cancels_its_subtree() {
    bounded(async {
        let env = Env::start().await;
        let k = env.kernel().await;
        k.grant("tester", "agent.delegate", "helper", "always")
            .await
            .unwrap();
        let root = env.delegate("tester", "delegate helper sleep 60000").await;
        let child = env.wait_child(root).await;
        env.wait_state(child.id, |s| s.as_str() == "working").await;
        k.cancel_task(root).await.unwrap();
        assert_eq!(env.wait_task(root).await.state, "canceled");
        assert_eq!(env.wait_task(child.id).await.state, "canceled");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_task_fails_it_and_its_waiter_is_told() {
    bounded(async {
        let env = Env::start().await;
        env.kernel()
            .await
            .grant("tester", "agent.delegate", "helper", "always")
            .await
            .unwrap();
        let alone = env.delegate("helper", "sleep 100 ; crash").await;
        let t = env.wait_task(alone).await;
        assert_eq!(t.state, "failed");
        assert!(t.message.contains("helper"), "{}", t.message);
        let root = env
            .delegate("tester", "delegate helper sleep 100 ; crash")
            .await;
        let t = env.wait_task(root).await;
        assert_eq!(t.state, "completed");
        assert!(t.result.starts_with("failed: agent helper"), "{}", t.result);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_an_agent_left_behind_loses_its_connection_when_the_agent_exits() {
    bounded(async {
        let env = Env::start().await;
        let marker = env.root().join("closed");
        let goal = format!("leave-behind {} ; crash", marker.display());
        let t = env.wait_task(env.delegate("helper", &goal).await).await;
        assert_eq!(t.state, "failed", "{}", t.message);
        // The process it left holds the connection: the kernel closes its own end, so what was
        // left cannot act as the agent (the marker is made when the connection ends).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !marker.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the kernel kept the departed agent's connection open"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // The agent is launched anew for its next task.
        let t = env.run_task("helper", "echo again").await;
        assert_eq!(
            (t.state.as_str(), t.result.as_str()),
            ("completed", "again")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_time_out() {
    bounded(async {
        let env = Env::start().await;
        let mut options: HashMap<&str, Value<'_>> = HashMap::new();
        options.insert("timeout", Value::from(1u32));
        let path = env
            .kernel()
            .await
            .delegate("tester", "sleep 60000", options)
            .await
            .unwrap();
        let id = names::task_id_from_path(path.as_str()).unwrap();
        let t = env.wait_task(id).await;
        assert_eq!(t.state, "failed");
        assert!(t.message.contains("timed out"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launched_agent_inherits_no_descriptor_but_its_own() {
    bounded(async {
        // A descriptor left open across exec by whoever started the kernel.
        let marker = tempfile::NamedTempFile::new().unwrap();
        let inherited = std::fs::File::open(marker.path()).unwrap();
        rustix::io::fcntl_setfd(&inherited, rustix::io::FdFlags::empty()).unwrap();
        let marker = std::fs::canonicalize(marker.path()).unwrap();
        let marker = marker.to_string_lossy().into_owned();
        let env = Env::start().await;
        let open_in = |pid: u32| -> Vec<String> {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
                .map(|p| p.to_string_lossy().into_owned())
                .collect()
        };
        let kernel = open_in(env.kernel_pid().unwrap());
        assert!(
            kernel.contains(&marker),
            "the kernel did not inherit it: {kernel:?}"
        );
        let t = env.run_task("tester", "fds").await;
        assert_eq!(t.state, "completed", "{}", t.message);
        assert!(!t.result.contains(&marker), "{}", t.result);
        assert!(!t.result.contains("agentos.db"), "{}", t.result);
        drop(inherited);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_records_and_marks_interrupted_tasks() {
    bounded(async {
        let mut env = Env::start().await;
        let k = env.kernel().await;
        k.grant("tester", "files.read", "/tmp", "always")
            .await
            .unwrap();
        let done = env.delegate("tester", "echo finished").await;
        env.wait_task(done).await;
        let running = env.delegate("tester", "sleep 60000").await;
        env.wait_state(running, |s| s.as_str() == "working").await;
        env.stop_kernel("KILL").await;
        env.start_kernel().await;
        let k = env.kernel().await;
        assert_eq!(k.get_task(done).await.unwrap().result, "finished");
        let t = k.get_task(running).await.unwrap();
        assert_eq!(t.state, "failed");
        assert!(t.message.contains("interrupted"), "{}", t.message);
        let grants = k.list_grants().await.unwrap();
        assert!(grants
            .iter()
            .any(|g| g.principal == "tester" && g.scope == "/tmp"));
        let (ok, records, problem) = k.verify_audit_log().await.unwrap();
        assert!(ok, "{problem}");
        assert!(records >= 2);
        // Both delegations were recorded, the last one just before the kill (when it was most
        // likely still in the journal only).
        let log = k.read_audit_log(0, 1000).await.unwrap();
        let delegations = log
            .iter()
            .filter(|r| r.capability == "agent.delegate" && r.scope == "tester")
            .count();
        assert_eq!(delegations, 2, "{log:?}");
        // A clean stop records running tasks as interrupted too.
        let running = env.delegate("tester", "sleep 60000").await;
        env.wait_state(running, |s| s.as_str() == "working").await;
        env.restart_kernel().await;
        let t = env.kernel().await.get_task(running).await.unwrap();
        assert_eq!(t.state, "failed");
        assert!(t.message.contains("interrupted"));
    })
    .await;
}

/// The `Task1` object of task `id`, called as the user's tools.
async fn task_object(env: &Env, id: u64) -> agentos_dbus_interfaces::proxies::Task1Proxy<'static> {
    agentos_dbus_interfaces::proxies::Task1Proxy::builder(&env.conn)
        .path(names::task_path(id))
        .unwrap()
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_from_before_a_restart_keeps_its_object_and_artifacts() {
    bounded(async {
        let mut env = Env::start().await;
        let t = env.run_task("tester", "artifact a hello").await;
        assert_eq!(t.state, "completed", "{}", t.message);
        env.restart_kernel().await;
        // Listed (as the panel and agentctl find tasks), its object is there again: its
        // artifacts are listed and open as before.
        let (page, _) = env.kernel().await.list_task_page(0, 10).await.unwrap();
        assert!(page.iter().any(|p| p.id == t.id), "{page:?}");
        let task = task_object(&env, t.id).await;
        let artifacts = task
            .artifacts()
            .await
            .expect("Task1.Artifacts after a restart");
        assert_eq!(artifacts.len(), 1, "{artifacts:?}");
        let fd = task
            .open_artifact("a")
            .await
            .expect("OpenArtifact after a restart");
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::fs::File::from(std::os::fd::OwnedFd::from(fd)),
            &mut text,
        )
        .unwrap();
        assert_eq!(text, "hello");
        // So is a task asked for by id alone.
        let other = env.run_task("tester", "artifact b bye").await;
        env.restart_kernel().await;
        env.kernel().await.get_task(other.id).await.unwrap();
        let task = task_object(&env, other.id).await;
        assert_eq!(task.artifacts().await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_named_errors_and_the_kernel_keeps_serving() {
    bounded(async {
        let mut env = Env::start().await;
        // Manifests are read at start: a broken one and one with a bad id are skipped, the rest
        // still served.
        std::fs::write(env.agents_dir().join("broken.toml"), "id = [").unwrap();
        let tester = std::fs::read_to_string(env.agents_dir().join("tester.toml")).unwrap();
        let bad = tester.replacen("id = \"tester\"", "id = \"../evil\"", 1);
        assert!(bad.contains("../evil"));
        std::fs::write(env.agents_dir().join("badid.toml"), bad).unwrap();
        env.restart_kernel().await;
        let k = env.kernel().await;
        let ids = env.agent_ids().await;
        assert!(ids.contains(&"tester".to_string()), "{ids:?}");
        assert!(
            !ids.iter().any(|i| i.contains("evil") || i == "broken"),
            "{ids:?}"
        );
        assert!(matches!(
            k.delegate("nobody", "x", HashMap::new()).await,
            Err(Error::UnknownAgent(_))
        ));
        // The kernel refuses an artifact that is not a regular file; the agent's SDK then
        // completes without it, naming it and the kernel's reason.
        let t = env.run_task("tester", "pipe-artifact stream.txt").await;
        assert_eq!(t.state, "completed", "{}", t.message);
        assert!(
            t.result.contains("stream.txt") && t.result.contains("not a regular file"),
            "{}",
            t.result
        );
        let task = agentos_dbus_interfaces::proxies::Task1Proxy::builder(&env.conn)
            .path(names::task_path(t.id))
            .unwrap()
            .build()
            .await
            .unwrap();
        assert!(task.artifacts().await.unwrap().is_empty());
        let huge = "x".repeat(names::MAX_GOAL_LEN + 1);
        assert!(matches!(
            k.delegate("tester", &huge, HashMap::new()).await,
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            k.delegate("tester", "", HashMap::new()).await,
            Err(Error::InvalidArgument(_))
        ));
        let mut bad = HashMap::new();
        bad.insert("timeout", Value::from("soon"));
        assert!(matches!(
            k.delegate("tester", "echo", bad).await,
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            k.grant("tester", "root.all", "/", "always").await,
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            k.grant("tester", "files.read", "relative", "always").await,
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            k.grant("tester", "files.read", "/a/../b", "always").await,
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            k.grant("tester", "files.read", "/tmp", "forever").await,
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            k.get_task(999_999).await,
            Err(Error::UnknownTask(_))
        ));
        assert!(matches!(
            k.list_tasks(0).await,
            Err(Error::InvalidArgument(_))
        ));
        let t = env.delegate("tester", "read /no/such/folder x").await;
        let t = env.wait_task(t).await;
        assert_eq!(t.state, "failed");
        assert!(t.message.contains("cannot be opened"), "{}", t.message);
        assert!(k.list_agents().await.unwrap().len() >= 5);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agentctl_runs_lists_and_verifies_the_log() {
    bounded_for(TIMEOUT * 2, async {
        let env = Env::start().await;
        let out = tokio::task::block_in_place(|| {
            env.agentctl(&["run", "tester", "echo", "hello", "there"])
        });
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("hello there"));
        // `run` follows the task live: the progress the agent reports while working is shown.
        let out = tokio::task::block_in_place(|| env.agentctl(&["run", "tester", "sleep", "300"]));
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shown}");
        assert!(shown.contains("working 50% sleeping"), "{shown}");
        let out = tokio::task::block_in_place(|| env.agentctl(&["agents", "--json"]));
        assert!(String::from_utf8_lossy(&out.stdout).contains("\"tester\""));
        let out = tokio::task::block_in_place(|| env.agentctl(&["run", "nobody", "x"]));
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"));
        let out = tokio::task::block_in_place(|| {
            env.agentctl(&["grant", "tester", "web.fetch", "example.org"])
        });
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = tokio::task::block_in_place(|| env.agentctl(&["grants", "--json"]));
        assert!(String::from_utf8_lossy(&out.stdout).contains("example.org"));
        let out = tokio::task::block_in_place(|| env.agentctl(&["log", "--verify"]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // tasks (as a tree, and as JSON), cancel, revoke, log.
        let root = env
            .kernel()
            .await
            .delegate("tester", "sleep 60000", HashMap::new())
            .await
            .unwrap();
        let root = names::task_id_from_path(root.as_str()).unwrap();
        env.wait_state(root, |s| s.as_str() == "working").await;
        let out = tokio::task::block_in_place(|| env.agentctl(&["tasks"]));
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("sleep 60000")
        );
        let out = tokio::task::block_in_place(|| env.agentctl(&["cancel", &root.to_string()]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(env.wait_task(root).await.state, "canceled");
        // A task that finished otherwise is left as it was, and said to be.
        let done = env.run_task("tester", "echo done").await;
        let out = tokio::task::block_in_place(|| env.agentctl(&["cancel", &done.id.to_string()]));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("had already finished (completed)"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(env.wait_task(done.id).await.state, "completed");
        let out = tokio::task::block_in_place(|| env.agentctl(&["tasks", "--json"]));
        assert!(String::from_utf8_lossy(&out.stdout).contains("\"canceled\""));
        let out = tokio::task::block_in_place(|| env.agentctl(&["revoke", "tester", "web.fetch"]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(env.kernel().await.list_grants().await.unwrap().is_empty());
        let out = tokio::task::block_in_place(|| env.agentctl(&["log", "--json"]));
        assert!(String::from_utf8_lossy(&out.stdout).contains("revoked by the user"));
        let out = tokio::task::block_in_place(|| env.agentctl(&["cancel", "999999"]));
        assert_eq!(out.status.code(), Some(1));
        // Change a record behind the kernel's back: verification must fail.
        let db = rusqlite::Connection::open(env.data_dir().join("agentos.db")).unwrap();
        let triggers: Vec<String> = db
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for t in triggers {
            db.execute(&format!("DROP TRIGGER {t}"), []).unwrap();
        }
        db.execute("UPDATE audit SET decision = 'allow' WHERE seq = 1", [])
            .unwrap();
        db.execute(
            "UPDATE audit SET reason = 'nothing to see' WHERE seq = 1",
            [],
        )
        .unwrap();
        drop(db);
        let out = tokio::task::block_in_place(|| env.agentctl(&["log", "--verify"]));
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("TAMPERED"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_registered_agents_come_back_after_a_kernel_restart() {
    bounded(async {
        struct Idle;
        impl agentos_sdk::Agent for Idle {
            async fn run(&self, t: agentos_sdk::Task) -> Result<agentos_sdk::Outcome, String> {
                Ok(agentos_sdk::Outcome::text(format!("done: {}", t.goal)))
            }
        }
        let mut env = Env::start().await;
        let address = env.address.clone();
        let agent = tokio::spawn(async move {
            agentos_sdk::stay_registered(Idle, "host", Some(&address)).await
        });
        for signal in ["TERM", "KILL"] {
            env.wait_agent_connected("host").await;
            env.stop_kernel(signal).await;
            env.start_kernel().await;
            env.wait_agent_connected("host").await;
            let t = env.run_task("host", "again").await;
            assert_eq!(t.result, "done: again", "after SIG{signal}");
        }
        agent.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_are_found_in_the_xdg_data_dirs() {
    bounded(async {
        let mut env = Env::start().await;
        let tester = std::fs::read_to_string(env.agents_dir().join("tester.toml")).unwrap();
        // The harness points XDG_DATA_HOME at xdg-data and XDG_DATA_DIRS at none.
        for (dir, id) in [("xdg-data", "in-data-home"), ("none", "in-data-dirs")] {
            let agents = env.root().join(dir).join("agentos/agents");
            std::fs::create_dir_all(&agents).unwrap();
            let text = tester.replacen("id = \"tester\"", &format!("id = \"{id}\""), 1);
            assert!(text.contains(id));
            std::fs::write(agents.join(format!("{id}.toml")), text).unwrap();
        }
        env.restart_kernel().await;
        let ids = env.agent_ids().await;
        for id in ["tester", "in-data-home", "in-data-dirs"] {
            assert!(ids.iter().any(|i| i == id), "{id} missing from {ids:?}");
        }
        assert_eq!(
            env.run_task("in-data-dirs", "echo found").await.result,
            "found"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_channel_calls_agents_as_its_opener() {
    bounded(async {
        let env = Env::start().await;
        let (conn, channel) = env.channel().await;
        assert_eq!(
            channel
                .call("tester", "echo", Bytes::new(b"ping"))
                .await
                .unwrap()
                .into_vec(),
            b"ping"
        );
        assert!(matches!(
            channel.call("tester", "nope", Bytes::new(b"")).await,
            Err(Error::NotSupported(_))
        ));
        assert!(matches!(
            channel.call("nobody", "echo", Bytes::new(b"")).await,
            Err(Error::UnknownAgent(_))
        ));
        // An id no agent could have is refused before anything is decided or recorded.
        let long = "a".repeat(100_000);
        assert!(matches!(
            channel.call(&long, "echo", Bytes::new(b"")).await,
            Err(Error::InvalidArgument(_))
        ));
        let log = env.kernel().await.read_audit_log(0, 1000).await.unwrap();
        assert!(log
            .iter()
            .all(|r| r.scope != "nobody" && r.scope.len() < 1000));
        let id = channel
            .delegate("tester", "echo via channel", HashMap::new())
            .await
            .unwrap();
        let t = env.wait_task(id).await;
        assert_eq!(
            (t.caller.as_str(), t.result.as_str()),
            ("host", "via channel")
        );
        // The channel serves exactly the committed interface.
        assert_eq!(
            served(&conn, None, KERNEL_PATH, "org.agentos.Channel1").await,
            committed("org.agentos.Channel1")
        );
        // Anything else gets the standard named errors, and the channel keeps serving.
        let raw = |path: &'static str, iface: &'static str, member: &'static str| {
            let conn = conn.clone();
            async move {
                let reply = conn
                    .call_method(None::<&str>, path, Some(iface), member, &(42u32,))
                    .await;
                match reply {
                    Err(zbus::Error::MethodError(name, _, _)) => name.to_string(),
                    other => panic!("{member} on {path}: {other:?}"),
                }
            }
        };
        for (path, iface, member, error) in [
            (KERNEL_PATH, "org.agentos.Channel1", "Call", "InvalidArgs"),
            (
                KERNEL_PATH,
                "org.agentos.Channel1",
                "Delegate",
                "InvalidArgs",
            ),
            (KERNEL_PATH, "org.agentos.Channel1", "Drop", "UnknownMethod"),
            (
                KERNEL_PATH,
                "org.agentos.Kernel1",
                "ListAgents",
                "UnknownInterface",
            ),
            (
                "/org/agentos/Kernel/agents/tester",
                "org.agentos.Channel1",
                "Call",
                "UnknownObject",
            ),
        ] {
            assert_eq!(
                raw(path, iface, member).await,
                format!("org.freedesktop.DBus.Error.{error}"),
                "{member} on {path}"
            );
        }
        zbus::fdo::PeerProxy::builder(&conn)
            .destination("org.agentos.Peer")
            .unwrap()
            .path(KERNEL_PATH)
            .unwrap()
            .build()
            .await
            .unwrap()
            .ping()
            .await
            .expect("the channel answers Peer.Ping");
        assert_eq!(
            channel
                .call("tester", "echo", Bytes::new(b"still"))
                .await
                .unwrap()
                .into_vec(),
            b"still"
        );
        let log = env.kernel().await.read_audit_log(0, 100).await.unwrap();
        assert!(log
            .iter()
            .any(|r| r.capability == "agent.call" && r.scope == "tester"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_clients_see_progress_signalled_cancel_with_task1_and_call_agents() {
    use agentos_dbus_interfaces::proxies::{Agent1Proxy, Task1Proxy};
    use futures_util::StreamExt;
    bounded(async {
        let env = Env::start().await;
        let conn = zbus::connection::Builder::address(env.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();
        // Delegate through the agent's own object, as any D-Bus client can.
        let tester = Agent1Proxy::builder(&conn)
            .path(names::agent_path("tester"))
            .unwrap()
            .build()
            .await
            .unwrap();
        let path = tester
            .delegate("sleep 60000", HashMap::new())
            .await
            .unwrap();
        let task = Task1Proxy::builder(&conn)
            .path(path)
            .unwrap()
            .build()
            .await
            .unwrap();
        // The agent reports progress 0.5 ("sleeping"); watchers are told by PropertiesChanged.
        let mut progress = task.receive_progress_changed().await;
        while task.progress().await.unwrap() != 0.5 {
            progress.next().await.expect("a progress change");
        }
        assert_eq!(task.message().await.unwrap(), "sleeping");
        assert_eq!(task.state().await.unwrap(), "working");
        assert!(task.updated().await.unwrap() >= task.created().await.unwrap());
        let mut states = task.receive_state_changed().await;
        task.cancel().await.unwrap();
        while task.state().await.unwrap() != "canceled" {
            states.next().await.expect("a state change");
        }
        // A call through the agent's object on the bus.
        let reply = tester.call("echo", Bytes::new(b"hi")).await.unwrap();
        assert_eq!(reply.into_vec(), b"hi");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_history_comes_in_pages_and_clients_say_what_they_watch() {
    bounded(async {
        let env = Env::start().await;
        let k = env.kernel().await;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(env.run_task("tester", &format!("echo {i}")).await.id);
        }
        ids.reverse(); // newest first, as pages come
        let mut seen = Vec::new();
        let mut before = 0;
        loop {
            let (page, next) = k.list_task_page(before, 2).await.unwrap();
            assert!(page.len() <= 2);
            seen.extend(page.iter().map(|t| t.id));
            if next == 0 {
                break;
            }
            before = next;
        }
        assert_eq!(seen, ids);
        // Tasks that arrive meanwhile come before the first page, not inside a later one.
        let (first, next) = k.list_task_page(0, 2).await.unwrap();
        env.run_task("tester", "echo late").await;
        let (second, _) = k.list_task_page(next, 2).await.unwrap();
        assert_eq!(second[0].id, first[1].id - 1);
        assert!(matches!(
            k.list_task_page(0, 0).await,
            Err(Error::InvalidArgument(_))
        ));
        // A client says which task the user watches; an unknown one is refused.
        let running = env.delegate("tester", "sleep 60000").await;
        k.set_focus(running).await.unwrap();
        k.set_focus(0).await.unwrap();
        assert!(matches!(
            k.set_focus(987_654).await,
            Err(Error::UnknownTask(_))
        ));
    })
    .await;
}

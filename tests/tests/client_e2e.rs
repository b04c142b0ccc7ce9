//! End-to-end: `agentos-client` pins the verified kernel and verifies a new owner, `agentctl`
//! finds the bus `./scripts/start` started through its address file, and text from agents is
//! shown neutralised.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentos_client::{Client, ClientError};
use agentos_dbus_interfaces::names::{KERNEL_BUS_NAME, KERNEL_IFACE, KERNEL_PATH};
use agentos_dbus_interfaces::{TaskInfo, TaskState};
use agentos_tests::{bin, bounded, bounded_for, Env, TIMEOUT};
use futures_util::StreamExt;
use zbus::fdo::{DBusProxy, RequestNameFlags, RequestNameReply};
use zbus::names::{BusName, OwnedUniqueName, WellKnownName};

/// A process that queues for the kernel's name and answers `ListTasks` as if it were the kernel.
struct Impostor {
    calls: Arc<AtomicUsize>,
}

#[zbus::interface(name = "org.agentos.Kernel1")]
impl Impostor {
    fn list_tasks(&self, _limit: u32) -> Vec<TaskInfo> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        vec![TaskInfo {
            id: 666,
            parent: 0,
            agent: "impostor".into(),
            caller: "host".into(),
            goal: "steal".into(),
            state: "working".into(),
            progress: 0.0,
            message: String::new(),
            result: String::new(),
            created: 0,
            updated: 0,
        }]
    }
}

async fn name_owner(env: &Env) -> Option<OwnedUniqueName> {
    let dbus = DBusProxy::new(&env.conn).await.expect("dbus proxy");
    let name = BusName::from_static_str(KERNEL_BUS_NAME).expect("name");
    dbus.get_name_owner(name).await.ok()
}

/// Wait until `f` holds, polling.
async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_pins_the_verified_kernel_and_verifies_a_new_owner() {
    bounded_for(TIMEOUT * 2, async {
        let mut env = Env::start().await;
        let kernel_name = name_owner(&env).await.expect("the kernel owns its name");
        let client = Client::at_address(&env.address).await.expect("client");
        assert_eq!(client.owner().await.unwrap(), kernel_name);

        // Task changes come as typed states, from the verified kernel.
        let mut events = client.task_events().await.unwrap();
        let id = env.delegate("tester", "echo typed").await;
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline, events.next())
                .await
                .expect("TaskChanged in time")
                .expect("stream open")
                .expect("a well-formed event");
            if event.id == id && event.state == TaskState::Completed {
                assert_eq!(event.agent, "tester");
                break;
            }
        }

        // A second connection queues for the name while the kernel holds it.
        let calls = Arc::new(AtomicUsize::new(0));
        let impostor = zbus::connection::Builder::address(env.address.as_str())
            .unwrap()
            .serve_at(
                KERNEL_PATH,
                Impostor {
                    calls: Arc::clone(&calls),
                },
            )
            .unwrap()
            .build()
            .await
            .unwrap();
        let impostor_name = impostor.unique_name().unwrap().to_owned();
        let reply = DBusProxy::new(&impostor)
            .await
            .unwrap()
            .request_name(
                WellKnownName::from_static_str(KERNEL_BUS_NAME).unwrap(),
                // Without DoNotQueue: it waits in line for the name.
                RequestNameFlags::AllowReplacement.into(),
            )
            .await
            .unwrap();
        assert_eq!(reply, RequestNameReply::InQueue);
        let pinned = client.kernel().await.unwrap();
        assert!(pinned.list_tasks(10).await.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        // The kernel goes; the impostor gets the name.
        assert!(env.stop_kernel("TERM").await.success());
        until("the impostor owns the name", || async {
            name_owner(&env).await.as_deref() == Some(&impostor_name.as_ref())
        })
        .await;

        // Calls and signals meant for the verified kernel never reach or come from it.
        let e = pinned.list_tasks(10).await.unwrap_err();
        assert!(e.to_string().contains(kernel_name.as_str()), "{e}");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        impostor
            .emit_signal(
                None::<()>,
                KERNEL_PATH,
                KERNEL_IFACE,
                "TaskChanged",
                &(1u64, 0u64, "impostor", "completed", 1.0f64, "forged"),
            )
            .await
            .unwrap();
        let forged = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
        assert!(forged.is_err(), "a signal from the new owner came through");

        // The next use verifies the new owner (same user here, so it is accepted; another
        // user's would be refused) and talks to it by its own unique name.
        until("the client follows the new owner", || async {
            client.owner().await.ok().as_ref() == Some(&impostor_name)
        })
        .await;
        let tasks = client.kernel().await.unwrap().list_tasks(10).await.unwrap();
        assert_eq!(tasks[0].agent, "impostor");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Nobody owns the name: a clear error, then the real kernel again when it is back.
        drop(impostor);
        until("the impostor's name is gone", || async {
            matches!(client.kernel().await, Err(ClientError::KernelGone))
        })
        .await;
        let waiting = {
            let client = client.clone();
            tokio::spawn(async move { client.wait_for_kernel().await })
        };
        env.start_kernel().await;
        let new_kernel = waiting.await.unwrap().expect("the new kernel is verified");
        assert_eq!(Some(&new_kernel), name_owner(&env).await.as_ref());
        assert_ne!(new_kernel, kernel_name);
        assert!(!client
            .kernel()
            .await
            .unwrap()
            .list_tasks(10)
            .await
            .unwrap()
            .iter()
            .any(|t| t.agent == "impostor"));
    })
    .await;
}

/// Write `address` where `./scripts/start` would, under the runtime dir `run`.
fn write_address_file(run: &Path, address: &str) -> std::path::PathBuf {
    let dir = run.join(agentos_client::HEADLESS_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = dir.join(agentos_client::ADDRESS_FILE);
    std::fs::write(&file, format!("{address}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    file
}

/// `agentctl` with no session bus in its environment: no `DBUS_SESSION_BUS_ADDRESS`, no
/// `--address`, and a runtime dir without a `bus` socket.
fn agentctl_without_session_bus(root: &Path, args: &[&str]) -> Output {
    Command::new(bin("agentctl"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root.join("home"))
        .env("XDG_RUNTIME_DIR", root.join("run"))
        .output()
        .expect("agentctl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_owner_is_seen_from_when_it_is_watched_not_when_awaited() {
    bounded_for(TIMEOUT * 2, async {
        let mut env = Env::start().await;
        let client = Client::at_address(&env.address).await.expect("client");
        let first = client.owner().await.unwrap();
        // Watched, then the kernel restarts before the watch is awaited.
        let changed = client.owner_changed();
        env.restart_kernel().await;
        tokio::time::timeout(Duration::from_secs(5), changed)
            .await
            .expect("the change made before the wait is seen");
        let second = client.owner().await.expect("the new kernel is verified");
        assert_ne!(first, second);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agentctl_finds_a_headless_bus_through_the_address_file_it_trusts() {
    bounded(async {
        let env = Env::start().await;
        let root = env.root().to_path_buf();
        assert!(!root.join("run/bus").exists());
        let out = tokio::task::block_in_place(|| agentctl_without_session_bus(&root, &["agents"]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1));
        assert!(err.contains("cannot find the session bus"), "{err}");
        assert!(err.contains("agentos/bus-address does not exist"), "{err}");

        let file = write_address_file(&root.join("run"), &env.address);
        let out = tokio::task::block_in_place(|| agentctl_without_session_bus(&root, &["agents"]));
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(shown.contains("tester"), "{shown}");

        // A file someone else could have written is refused, and says so.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o622)).unwrap();
        let out = tokio::task::block_in_place(|| agentctl_without_session_bus(&root, &["agents"]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            err.contains("refusing the bus address in") && err.contains("writable by others"),
            "{err}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_start_without_a_session_bus_starts_one_that_agentctl_finds() {
    bounded_for(TIMEOUT * 2, async {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for d in ["run", "home", "data", "kernel-data"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::set_permissions(root.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/start");
        let bins = bin("agentosd").parent().unwrap().to_path_buf();
        let mut start = Command::new("bash")
            .arg(&script)
            .arg("--data-dir")
            .arg(root.join("kernel-data"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root.join("home"))
            .env("XDG_RUNTIME_DIR", root.join("run"))
            .env("XDG_DATA_HOME", root.join("data"))
            .env("XDG_DATA_DIRS", root.join("none"))
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("AGENTOS_BIN", &bins)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("scripts/start");
        let file = root.join("run/agentos/bus-address");
        let socket = root.join("run/agentos/bus");

        // agentctl in "another terminal" reaches the kernel once it is up.
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let listed = loop {
            let out =
                tokio::task::block_in_place(|| agentctl_without_session_bus(root, &["agents"]));
            if out.status.success() {
                break String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "agentctl never reached the kernel: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(start.try_wait().unwrap().is_none(), "scripts/start exited");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            listed.contains("docs") && listed.contains("web"),
            "{listed}"
        );
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(file.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let address = std::fs::read_to_string(&file).unwrap();

        // Stopping the script stops the kernel, then the bus, and removes the file.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(start.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = start.try_wait().unwrap() {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "scripts/start did not exit"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut said = String::new();
        std::io::Read::read_to_string(&mut start.stdout.take().unwrap(), &mut said).unwrap();
        assert!(
            said.contains("agentctl in another terminal finds it"),
            "{said}"
        );
        assert_eq!(status.code(), Some(0), "the kernel stops cleanly on TERM");
        assert!(!file.exists() && !socket.exists());
        let gone = zbus::connection::Builder::address(address.trim())
            .unwrap()
            .build()
            .await;
        assert!(gone.is_err(), "the bus is still running");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goals_and_results_with_bidi_and_escape_sequences_are_shown_neutralised() {
    bounded(async {
        let env = Env::start().await;
        let hostile = "echo ok \u{202e}fdp.exe\u{1b}[2J\u{1b}]0;pwned\u{7} \u{2066}x\u{2069}";
        let id = env.delegate("tester", hostile).await;
        let task = env.wait_task(id).await;
        assert_eq!(task.state, "completed", "{}", task.message);
        assert!(
            task.goal.contains('\u{202e}'),
            "the kernel keeps the goal as given"
        );

        let is_hidden = |c: char| c.is_control() && c != '\n' || agentos_client::is_bidi_control(c);
        let out = tokio::task::block_in_place(|| env.agentctl(&["tasks"]));
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(!shown.chars().any(is_hidden), "{shown:?}");
        assert!(shown.contains("echo ok fdp.exe[2J]0;pwned x"), "{shown:?}");

        // JSON keeps the value exact, with the bidi controls (and escapes) as JSON escapes.
        let out = tokio::task::block_in_place(|| env.agentctl(&["tasks", "--json"]));
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(!shown.chars().any(is_hidden), "{shown:?}");
        assert!(shown.contains(r"ok \u202efdp.exe\u001b[2J"), "{shown}");

        // The result (printed as a block) too.
        let out = tokio::task::block_in_place(|| {
            env.agentctl(&["run", "tester", "echo", "a\u{202e}b\u{1b}[1Ac\rd"])
        });
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(!shown.chars().any(is_hidden), "{shown:?}");
        assert!(shown.contains("ab[1Acd"), "{shown:?}");
    })
    .await;
}

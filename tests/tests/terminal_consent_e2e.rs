//! Consent on a terminal, end to end: with no graphical provider, `agentctl run` on a real
//! pseudo-terminal answers the prompts of the task it started (yes allows, anything else denies,
//! nothing typed before the prompt counts); without a terminal it offers nothing and the task is
//! denied as before; an app may not ask to answer its own prompts.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentos_tests::{bounded, env::bin, Env};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};

/// A pseudo-terminal: the controller end, and the path of the terminal end.
fn pty() -> (OwnedFd, std::path::PathBuf) {
    let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
    grantpt(&controller).expect("grantpt");
    unlockpt(&controller).expect("unlockpt");
    let name = ptsname(&controller, Vec::new()).expect("ptsname");
    let path = std::path::PathBuf::from(name.to_string_lossy().into_owned());
    (controller, path)
}

/// `agentctl run agent goal` with stdin, stdout and stderr on a new pseudo-terminal; answers
/// `answer` to the first prompt (after it appeared), returns the exit status and all it printed.
fn run_on_terminal(env: &Env, agent: &str, goal: &str, early: &str, answer: &str) -> (i32, String) {
    let (controller, terminal) = pty();
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&terminal)
            .expect("open the terminal end")
    };
    let mut child = Command::new(bin("agentctl"))
        .arg("--address")
        .arg(&env.address)
        .args(["run", agent, goal])
        .stdin(Stdio::from(open()))
        .stdout(Stdio::from(open()))
        .stderr(Stdio::from(open()))
        .spawn()
        .expect("agentctl");
    let mut io = std::fs::File::from(controller);
    // Typed before any prompt: must not answer it.
    if !early.is_empty() {
        io.write_all(early.as_bytes()).unwrap();
    }
    rustix::fs::fcntl_setfl(io.as_fd(), rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut seen = String::new();
    let mut answered = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let mut buf = [0u8; 4096];
        match io.read(&mut buf) {
            Ok(n) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
        if !answered && seen.contains("Allow?") {
            io.write_all(answer.as_bytes()).unwrap();
            answered = true;
        }
        if let Some(status) = child.try_wait().unwrap() {
            // What is still buffered.
            let mut buf = [0u8; 65536];
            while let Ok(n) = io.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("agentctl did not finish; it printed:\n{seen}");
        }
    };
    (status.code().unwrap_or(-1), seen)
}

fn documents(env: &Env) -> String {
    let docs = env.home().join("Documents");
    std::fs::write(docs.join("budget.txt"), "the budget for 2026 is 42\n").unwrap();
    std::fs::canonicalize(docs)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_answers_the_prompts_of_the_task_it_started() {
    bounded(async {
        let env = Env::start().await;
        let docs = documents(&env);
        let goal = format!("read {docs} budget.txt");

        // Yes (typed after the prompt; the "y" typed before it does not count).
        let (code, out) =
            tokio::task::block_in_place(|| run_on_terminal(&env, "tester", &goal, "y\n", "y\n"));
        assert!(out.contains("permission needed"), "{out}");
        assert!(out.contains("files.read"), "{out}");
        assert!(out.contains("the budget for 2026 is 42"), "{out}");
        assert_eq!(code, 0, "{out}");

        // A grant "once" is not kept: the next run asks again, and "no" denies.
        let (code, out) =
            tokio::task::block_in_place(|| run_on_terminal(&env, "tester", &goal, "", "no\n"));
        assert!(out.contains("permission needed"), "{out}");
        assert!(out.contains("denied"), "{out}");
        assert_ne!(code, 0, "{out}");
        assert!(!out.contains("the budget for 2026 is 42"), "{out}");

        // Anything but an explicit yes denies.
        let (code, out) =
            tokio::task::block_in_place(|| run_on_terminal(&env, "tester", &goal, "", "sure\n"));
        assert_ne!(code, 0, "{out}");

        // Without a terminal nothing is offered: no provider, denied without a prompt (another
        // folder: this one was denied twice and is not asked again).
        let other = env.home().join("Other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("a.txt"), "a").unwrap();
        let other = std::fs::canonicalize(other).unwrap();
        let goal = format!("read {} a.txt", other.display());
        let out = env.agentctl(&["run", "tester", &goal]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(!text.contains("permission needed"), "{text}");
        assert!(text.contains("no consent provider"), "{text}");

        let log = env.kernel().await.read_audit_log(0, 100).await.unwrap();
        let reads: Vec<&str> = log
            .iter()
            .filter(|r| r.principal == "tester" && r.capability == "files.read")
            .map(|r| r.decision.as_str())
            .collect();
        assert!(
            reads.contains(&"allow") && reads.contains(&"deny"),
            "{reads:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_users_own_tools_may_answer_consent() {
    bounded(async {
        let env = Env::start().await;
        // The test process is a host process: the option is taken from it.
        let mut options = std::collections::HashMap::new();
        options.insert("answer-consent", zbus::zvariant::Value::Bool(true));
        let kernel = env.kernel().await;
        assert!(kernel.delegate("tester", "echo hi", options).await.is_ok());
        // A malformed value is refused by name.
        let mut bad = std::collections::HashMap::new();
        bad.insert("answer-consent", zbus::zvariant::Value::U32(1));
        let err = kernel.delegate("tester", "echo hi", bad).await.unwrap_err();
        assert!(
            matches!(err, agentos_dbus_interfaces::Error::InvalidArgument(_)),
            "{err}"
        );
        // An app may not answer for what it asks, and nothing is started for it.
        let (_app, conn) = env.app_connection("org.example.Asker").await;
        let app_kernel = agentos_dbus_interfaces::proxies::Kernel1Proxy::new(&conn)
            .await
            .unwrap();
        let before = kernel.list_tasks(1000).await.unwrap().len();
        let mut options = std::collections::HashMap::new();
        options.insert("answer-consent", zbus::zvariant::Value::Bool(true));
        let err = app_kernel
            .delegate("tester", "echo hi", options)
            .await
            .unwrap_err();
        assert!(
            matches!(err, agentos_dbus_interfaces::Error::AccessDenied(_)),
            "{err}"
        );
        assert_eq!(kernel.list_tasks(1000).await.unwrap().len(), before);
    })
    .await;
}

//! End-to-end: `agentctl ask` against the real kernel on a private bus, asking an agent this test
//! registers (it reports its answer so far as its task's progress message, as the sidekick
//! does): the growing answer is printed once, piece by piece, then the result's rest and the
//! artifacts; a failed task exits 1 with its reason; Ctrl-C, SIGHUP or SIGTERM cancels the task
//! and exits 130.

use std::process::Stdio;
use std::time::Duration;

use agentos_dbus_interfaces::TaskState;
use agentos_sdk::{Agent, Outcome, Task};
use agentos_tests::env::{bin, Env};
use agentos_tests::{bounded_for, TIMEOUT};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Time between two progress messages: long enough for agentctl to see each one.
const STEP: Duration = Duration::from_millis(300);

/// What the registered agent does with each goal.
struct Asked;

impl Agent for Asked {
    async fn run(&self, task: Task) -> Result<Outcome, String> {
        let say = |message: &'static str| {
            let task = task.clone();
            async move {
                task.progress(0.5, message)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::time::sleep(STEP).await;
                Ok::<(), String>(())
            }
        };
        match task.goal.as_str() {
            "what is the budget?" => {
                say("The budget").await?;
                say("The budget is 4 200 €.").await?;
                // Not an extension of what was said: printed whole on a line of its own.
                say("Sources:").await?;
                Outcome::text("Sources: budget.txt\u{1b}[2J")
                    .with_artifact("answer.md", b"The budget is 4 200 \xe2\x82\xac.\n")
                    .map_err(|e| e.to_string())
            }
            "fail" => {
                say("Looking").await?;
                Err("no model could answer: start Ollama or llama-server".into())
            }
            "wait" => {
                say("Thinking").await?;
                tokio::time::sleep(Duration::from_secs(120)).await;
                Ok(Outcome::text("too late"))
            }
            other => Err(format!("unexpected goal {other:?}")),
        }
    }
}

fn ask(env: &Env, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("agentctl"));
    cmd.arg("--address")
        .arg(&env.address)
        .arg("ask")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_streams_the_answer_fails_with_the_reason_and_cancels_on_ctrl_c() {
    bounded_for(TIMEOUT * 3, async {
        let env = Env::start().await;
        // A host process registers as the agent "host".
        let _registration = agentos_sdk::register(Asked, "host", Some(&env.address))
            .await
            .expect("register");

        // The answer grows: each piece once, then the result's rest, made safe, and artifacts.
        let out = ask(&env, &["--agent", "host", "what is the budget?"])
            .output()
            .await
            .unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {stderr}");
        let expected = "The budget is 4 200 €.\nSources: budget.txt[2J\n\nARTIFACT   SIZE\nanswer.md  25 bytes\n";
        assert_eq!(stdout, expected, "stderr: {stderr}");
        let tasks = env.kernel().await.list_tasks(10).await.unwrap();
        let asked = tasks
            .iter()
            .find(|t| t.goal == "what is the budget?")
            .expect("the task");
        assert_eq!(asked.agent, "host");
        assert_eq!(asked.state, "completed");

        // A failed task: exit 1, the reason on stderr, what was said before kept on stdout.
        let out = ask(&env, &["--agent", "host", "fail"])
            .output()
            .await
            .unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "stdout: {stdout}\nstderr: {stderr}");
        assert_eq!(stdout, "Looking\n");
        assert!(
            stderr.contains("failed: no model could answer: start Ollama or llama-server"),
            "{stderr}"
        );

        // An agent that does not exist: the kernel's refusal, exit 1.
        let out = ask(&env, &["--agent", "nobody", "hello"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("nobody"), "{}", text(&out.stderr));

        // Ctrl-C while the agent thinks (once agentctl has shown it): the task is canceled,
        // exit 130. So too when the terminal closes (SIGHUP) or agentctl is killed (SIGTERM).
        for signal in ["-INT", "-HUP", "-TERM"] {
            stopped_while_thinking(&env, signal).await;
        }

        // Output that cannot be written (a terminal gone; here a full disk) cancels the task
        // too, rather than leaving it to run unwatched.
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        // (Spawned: `output` would make its stdout a pipe again.)
        let child = ask(&env, &["--agent", "host", "wait"])
            .stdout(full)
            .spawn()
            .unwrap();
        let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .expect("agentctl ends when it cannot write")
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("cannot write output"), "{stderr}");
        let kernel = env.kernel().await;
        let last = kernel.list_tasks(1).await.unwrap().remove(0);
        assert_eq!(last.goal, "wait");
        let task = env.wait_task(last.id).await;
        assert_eq!(TaskState::parse(&task.state), Some(TaskState::Canceled));
    })
    .await;
}

/// `agentctl ask` sent `signal` while its agent thinks: the task is canceled, exit 130.
async fn stopped_while_thinking(env: &Env, signal: &str) {
    let mut child = ask(env, &["--agent", "host", "wait"]).spawn().unwrap();
    let mut stdout = child.stdout.take().expect("agentctl's output");
    let mut shown = Vec::new();
    while !shown.ends_with(b"Thinking") {
        let mut buf = [0u8; 256];
        let n = stdout.read(&mut buf).await.unwrap();
        assert!(n > 0, "agentctl ended, having shown {:?}", text(&shown));
        shown.extend_from_slice(&buf[..n]);
    }
    let kernel = env.kernel().await;
    let id = loop {
        let tasks = kernel.list_tasks(20).await.unwrap();
        if let Some(t) = tasks.iter().find(|t| {
            t.goal == "wait"
                && t.message == "Thinking"
                && !TaskState::parse(&t.state).is_some_and(|s| s.is_terminal())
        }) {
            break t.id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pid = child.id().expect("agentctl runs").to_string();
    let kill = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    stdout.read_to_end(&mut shown).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{signal}: {stderr}");
    assert!(
        stderr.contains(&format!("canceled task {id}")),
        "{signal}: {stderr}"
    );
    assert_eq!(text(&shown), "Thinking\n");
    let task = env.wait_task(id).await;
    assert_eq!(
        TaskState::parse(&task.state),
        Some(TaskState::Canceled),
        "{signal}"
    );
}

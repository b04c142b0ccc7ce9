//! `agentos-test-agent`: an agent whose goal is a script, for end-to-end tests. Steps are
//! separated by ` ; `; `delegate` takes the rest of the goal as the child's goal.
//!
//! Steps: `echo <text>`, `sleep <ms>`, `crash`, `list <folder>`, `read <folder> <path>`,
//! `fetch <url>`, `artifact <name> <text>`, `delegate <agent> <goal…>` (the child's artifacts
//! are passed up),
//! `read-for <task> <folder> <path>` (tries to act for another task id), `pipe-artifact <name>`
//! (hands over a pipe that never ends as an artifact), `try-read <path>`, `try-write <path>`,
//! `try-connect-unix <path>`, `try-connect-tcp <addr>`, `env` (for sandbox tests), `share <folder>
//! <path>` (through the Documents portal, then read at the returned path), `tools` (one line per
//! tool: name, capability, declared), `tool <name> <json arguments>` (`Host1.CallTool`: the
//! result, then what the first fd holds and the data, if any), `chat <model or -> <question>`
//! (`Host1.Chat`: `<provider>/<model>: <answer>`), `leave-behind <marker>` (starts a process
//! that holds this agent's connection to the kernel and, once this agent has exited, creates
//! `marker` when the kernel closes that connection).

use std::os::fd::AsFd;

use agentos_sdk::{Agent, Outcome, Task};

struct Tester;

async fn step(task: &Task, step: &str, out: &mut Outcome) -> Result<(), String> {
    let (cmd, rest) = step.split_once(' ').unwrap_or((step, ""));
    let err = |e: agentos_sdk::Error| format!("{e}");
    match cmd {
        "echo" => out.result = rest.to_string(),
        "sleep" => {
            let ms: u64 = rest.parse().map_err(|_| "bad sleep")?;
            let _ = task.progress(0.5, "sleeping").await;
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        "crash" => std::process::exit(3),
        "leave-behind" => leave_behind(rest)?,
        "list" => {
            let entries = task.list_files(rest, "").await.map_err(err)?;
            out.result = entries
                .into_iter()
                .map(|e| e.name)
                .collect::<Vec<_>>()
                .join(",");
        }
        "read" => {
            let (folder, path) = rest.split_once(' ').unwrap_or((rest, ""));
            let bytes = task.read_file(folder, path, 1 << 20).await.map_err(err)?;
            out.result = String::from_utf8_lossy(&bytes).into_owned();
        }
        "read-for" => {
            let mut parts = rest.splitn(3, ' ');
            let other: u64 = parts
                .next()
                .unwrap_or("")
                .parse()
                .map_err(|_| "bad task id")?;
            let folder = parts.next().unwrap_or("");
            let path = parts.next().unwrap_or("");
            task.host()
                .open_file(other, folder, path)
                .await
                .map_err(err)?;
            out.result = "read another task's file".into();
        }
        "fetch" => {
            let (status, _, body) = task.fetch(rest).await.map_err(err)?;
            out.result = format!("{status} {}", String::from_utf8_lossy(&body));
        }
        "artifact" => {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let taken = std::mem::take(out);
            *out = taken
                .with_artifact(name, text.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        "pipe-artifact" => {
            let (reader, _writer) = std::io::pipe().map_err(|e| e.to_string())?;
            let taken = std::mem::take(out);
            *out = taken.with_file(
                rest,
                std::fs::File::from(std::os::fd::OwnedFd::from(reader)),
            );
        }
        "share" => {
            let (folder, path) = rest.split_once(' ').unwrap_or((rest, ""));
            let shared = task
                .host()
                .share_file(task.id, folder, path)
                .await
                .map_err(err)?;
            out.result = std::fs::read_to_string(&shared).map_err(|e| format!("{shared}: {e}"))?;
        }
        "try-read" => {
            out.result = match std::fs::read(rest) {
                Ok(b) => format!("read {} bytes", b.len()),
                Err(e) => format!("refused: {e}"),
            };
        }
        "try-write" => {
            out.result = match std::fs::write(rest, "x") {
                Ok(()) => "wrote".into(),
                Err(e) => format!("refused: {e}"),
            };
        }
        "try-connect-unix" => {
            out.result = match std::os::unix::net::UnixStream::connect(rest) {
                Ok(_) => "connected".into(),
                Err(e) => format!("refused: {e}"),
            };
        }
        "try-connect-tcp" => {
            let addr = rest.to_string();
            let attempt = tokio::task::spawn_blocking(move || {
                std::net::TcpStream::connect_timeout(
                    &addr.parse().map_err(|_| "bad address".to_string())?,
                    std::time::Duration::from_secs(2),
                )
                .map_err(|e| e.to_string())
            });
            out.result = match attempt.await.map_err(|e| e.to_string())? {
                Ok(_) => "connected".into(),
                Err(e) => format!("refused: {e}"),
            };
        }
        "fds" => {
            let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            fds.sort();
            out.result = fds.join("\n");
        }
        "env" => {
            let mut keys: Vec<String> = std::env::vars_os()
                .map(|(k, _)| k.to_string_lossy().into_owned())
                .collect();
            keys.sort();
            out.result = keys.join(",");
        }
        "delegate" => {
            let (agent, goal) = rest.split_once(' ').unwrap_or((rest, ""));
            let child = task.delegate(agent, goal).await.map_err(err)?;
            let _ = task
                .progress(0.5, &format!("waiting for task {child}"))
                .await;
            let done = task.await_child(child).await.map_err(err)?;
            *out = task
                .adopt_artifacts(&done, std::mem::take(out))
                .await
                .map_err(err)?;
            out.result = format!("{}: {}", done.state, done.text);
        }
        "tools" => {
            let tools = task.list_tools().await.map_err(err)?;
            out.result = tools
                .iter()
                .map(|t| format!("{} {} {}", t.name, t.capability, t.declared))
                .collect::<Vec<_>>()
                .join("\n");
        }
        "tool" => {
            let (name, args) = rest.split_once(' ').unwrap_or((rest, "{}"));
            let (result, data, fds) = task.call_tool(name, args).await.map_err(err)?;
            out.result = result;
            if let Some(fd) = fds.into_iter().next() {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut text)
                    .map_err(|e| e.to_string())?;
                out.result.push_str(&format!("\nfd: {text}"));
            }
            if !data.is_empty() {
                let data = String::from_utf8_lossy(&data);
                out.result.push_str(&format!("\ndata: {data}"));
            }
        }
        "chat" => {
            // `chat <model or -> <question>`: the answer as `<provider>/<model>: <text>`.
            let (model, question) = rest.split_once(' ').unwrap_or((rest, ""));
            let mut request =
                agentos_sdk::ChatRequest::new(vec![agentos_sdk::ChatMessage::user(question)]);
            request.model = (model != "-").then(|| model.to_string());
            request.max_tokens = Some(64);
            let reply = task
                .chat(&request)
                .await
                .map_err(err)?
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            out.result = format!("{}/{}: {}", reply.provider, reply.model, reply.text);
        }
        "flood" => {
            // `flood <in flight> <max tokens> <seconds>`: keep that many model requests going
            // for that long (a background load); the result counts those done and failed.
            let mut args = rest
                .split_whitespace()
                .map(|a| a.parse::<u64>().unwrap_or(1));
            let (in_flight, tokens, secs) = (
                args.next().unwrap_or(1),
                args.next().unwrap_or(64),
                args.next().unwrap_or(10),
            );
            let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
            let one = || async {
                let (mut done, mut failed, mut first_error) = (0u64, 0u64, String::new());
                while std::time::Instant::now() < end {
                    let mut request =
                        agentos_sdk::ChatRequest::new(vec![agentos_sdk::ChatMessage::user(
                            "summarise the news",
                        )]);
                    request.max_tokens = Some(tokens as u32);
                    let result = match task.chat(&request).await {
                        Ok(stream) => stream.collect().await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match result {
                        Ok(_) => done += 1,
                        Err(e) => {
                            failed += 1;
                            if first_error.is_empty() {
                                first_error = e;
                            }
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
                (done, failed, first_error)
            };
            let all = futures_util::future::join_all((0..in_flight).map(|_| one())).await;
            let done: u64 = all.iter().map(|a| a.0).sum();
            let failed: u64 = all.iter().map(|a| a.1).sum();
            let first = all.iter().map(|a| a.2.as_str()).find(|e| !e.is_empty());
            out.result = format!("done={done} failed={failed} {}", first.unwrap_or(""));
        }
        other => return Err(format!("unknown step {other:?}")),
    }
    Ok(())
}

/// Start a process that holds this agent's connection to the kernel (a copy of its fd), waits
/// for this agent to exit (the end of a pipe only this agent can write), then reads the
/// connection until the kernel closes it and creates `marker`.
fn leave_behind(marker: &str) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let raw: i32 = std::env::var(agentos_dbus_interfaces::names::AGENT_FD_ENV)
        .map_err(|e| e.to_string())?
        .parse()
        .map_err(|_| "bad fd")?;
    #[allow(unsafe_code)]
    // SAFETY: the connection's fd is open for the agent's whole life; borrowed to copy it.
    let conn = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    let copy = rustix::io::dup(conn).map_err(|e| e.to_string())?;
    let (exited, alive) = std::io::pipe().map_err(|e| e.to_string())?;
    for inherited in [copy.as_fd(), exited.as_fd()] {
        rustix::io::fcntl_setfd(inherited, rustix::io::FdFlags::empty())
            .map_err(|e| e.to_string())?;
    }
    let script = format!(
        "cat <&{} >/dev/null; cat <&{} >/dev/null; : > \"$1\"",
        exited.as_raw_fd(),
        copy.as_raw_fd()
    );
    std::process::Command::new("/bin/bash")
        .args(["-c", &script, "leave-behind", marker])
        .env("PATH", "/usr/bin:/bin")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    // Held until this agent exits.
    std::mem::forget(alive);
    Ok(())
}

impl Agent for Tester {
    async fn run(&self, task: Task) -> Result<Outcome, String> {
        let mut out = Outcome::default();
        let goal = task.goal.clone();
        let mut rest = goal.as_str();
        while !rest.is_empty() {
            let (this, next) = if rest.starts_with("delegate ") {
                (rest, "")
            } else {
                rest.split_once(" ; ").unwrap_or((rest, ""))
            };
            step(&task, this.trim(), &mut out).await?;
            rest = next;
        }
        Ok(out)
    }

    async fn call(&self, method: &str, payload: Vec<u8>) -> Result<Vec<u8>, agentos_sdk::Error> {
        match method {
            "echo" => Ok(payload),
            other => Err(agentos_sdk::Error::NotSupported(format!(
                "no method {other}"
            ))),
        }
    }
}

#[tokio::main]
async fn main() {
    // `--register <id>`: start outside the kernel and register over the session bus (as an app
    // in a Flatpak sandbox would); otherwise run as launched by the kernel.
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, id] = args.as_slice() {
        if flag == "--register" {
            if let Err(e) = agentos_sdk::stay_registered(Tester, id, None).await {
                eprintln!("agentos-test-agent: {e}");
                std::process::exit(1);
            }
            return;
        }
    }
    agentos_sdk::run_or_exit(Tester).await
}

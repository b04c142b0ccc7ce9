//! End-to-end: a bus caller's identity survives pid reuse. A process opens a connection to the
//! private bus, hands it to a child and exits; a host process is made to take its pid; the child's
//! calls are refused, while the user's own calls go through.
//!
//! The attacker's two processes are this test binary run again in a role (see [`role`]): the
//! opener connects with zbus and passes the socket to the holder as its stdin, the holder speaks
//! on that socket (already authenticated, already said `Hello`) when the test tells it to.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agentos_dbus_interfaces::names::{KERNEL_BUS_NAME, KERNEL_IFACE, KERNEL_PATH};
use agentos_dbus_interfaces::proxies::Kernel1Proxy;
use agentos_tests::{bounded, Env, TIMEOUT};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Which role this binary plays when a test runs it again.
const ROLE: &str = "AGENTOS_IDENTITY_E2E_ROLE";
/// What a role reports to the test follows this on a line.
const SAY: &str = "ROLE ";

/// Not a test of its own: the attacker's processes. Without [`ROLE`] set it does nothing.
#[test]
fn role() {
    match std::env::var(ROLE).as_deref() {
        Ok("opener") => opener(),
        Ok("holder") => holder(),
        _ => {}
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{SAY}{line}");
    let _ = out.flush();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Connect, optionally call once (the kernel then knows this connection's identity), start the
/// holder with the connection's socket, say who is who, and exit without closing the socket.
fn opener() {
    runtime().block_on(async {
        let path = std::env::var("BUS_PATH").expect("BUS_PATH");
        let sock = std::os::unix::net::UnixStream::connect(path).expect("connect to the bus");
        let keep = OwnedFd::from(sock.try_clone().expect("dup the socket"));
        sock.set_nonblocking(true).expect("nonblocking");
        let sock = tokio::net::UnixStream::from_std(sock).expect("tokio socket");
        let conn = zbus::connection::Builder::unix_stream(sock)
            .build()
            .await
            .expect("Hello");
        if std::env::var_os("CALL_FIRST").is_some() {
            let k = Kernel1Proxy::new(&conn).await.expect("proxy");
            match k.list_grants().await {
                Ok(_) => say("first ok"),
                Err(e) => say(&format!("first refused {e}")),
            }
        }
        let holder = Command::new(std::env::current_exe().expect("exe"))
            .args(["--exact", "role", "--nocapture", "--test-threads=1"])
            .env(ROLE, "holder")
            .env("GUID", conn.server_guid().to_string())
            .stdin(Stdio::from(keep))
            .spawn()
            .expect("start the holder");
        let name = conn.unique_name().expect("a unique name").to_string();
        say(&format!(
            "opened {name} {} {}",
            std::process::id(),
            holder.id()
        ));
        // No destructor runs: the socket is closed here only, and stays open in the holder.
        std::process::exit(0);
    })
}

/// Wait for the test's word, then ask the kernel for a grant on the inherited connection.
fn holder() {
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .expect("the inherited connection");
    let go = PathBuf::from(std::env::var("GO").expect("GO"));
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !go.exists() {
        assert!(std::time::Instant::now() < deadline, "never told to call");
        std::thread::sleep(Duration::from_millis(10));
    }
    runtime().block_on(async {
        let sock = std::os::unix::net::UnixStream::from(fd);
        sock.set_nonblocking(true).expect("nonblocking");
        let sock = tokio::net::UnixStream::from_std(sock).expect("tokio socket");
        let guid = std::env::var("GUID").expect("GUID");
        // Authenticated and named already: no second handshake, no second Hello.
        let conn = zbus::connection::Builder::authenticated_socket(sock, guid.as_str())
            .expect("guid")
            .p2p()
            .build()
            .await
            .expect("the inherited connection");
        let reply = conn
            .call_method(
                Some(KERNEL_BUS_NAME),
                KERNEL_PATH,
                Some(KERNEL_IFACE),
                "Grant",
                &("org.example.Evil", "files.read", "/", "always"),
            )
            .await;
        match reply {
            Ok(_) => say("granted"),
            Err(zbus::Error::MethodError(name, msg, _)) => {
                say(&format!("refused {name} {}", msg.unwrap_or_default()))
            }
            Err(e) => say(&format!("failed {e}")),
        }
    })
}

/// The attacker's processes, as the test sees them.
struct Attacker {
    opener: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    go: PathBuf,
}

impl Attacker {
    /// Start the opener; returns once it has exited (and its pid is free) with the holder running.
    async fn start(env: &Env, call_first: bool) -> (Attacker, u32, Option<String>) {
        let go = env.root().join(format!("go-{call_first}"));
        let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "role", "--nocapture", "--test-threads=1"])
            .env(ROLE, "opener")
            .env("BUS_PATH", env.root().join("bus"))
            .env("GO", &go)
            .stdout(Stdio::piped());
        if call_first {
            cmd.env("CALL_FIRST", "1");
        }
        let mut opener = cmd.spawn().expect("start the opener");
        let mut lines = BufReader::new(opener.stdout.take().unwrap()).lines();
        let mut first = None;
        let opened = loop {
            let line = next_said(&mut lines).await;
            match line.strip_prefix("first ") {
                Some(f) => first = Some(f.to_string()),
                None => break line,
            }
        };
        let mut words = opened.split(' ').skip(1);
        let _name = words.next().expect("name");
        let opener_pid: u32 = words.next().unwrap().parse().unwrap();
        assert!(words.next().is_some(), "the holder's pid");
        assert!(opener.wait().await.unwrap().success());
        let attacker = Attacker { opener, lines, go };
        (attacker, opener_pid, first)
    }

    /// Let the holder make its call; what the kernel answered.
    async fn call(&mut self) -> String {
        std::fs::write(&self.go, "").unwrap();
        next_said(&mut self.lines).await
    }
}

impl Drop for Attacker {
    /// The holder exits after its call: let it make it, if the test did not.
    fn drop(&mut self) {
        let _ = self.opener.start_kill();
        let _ = std::fs::write(&self.go, "");
    }
}

async fn next_said(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    loop {
        let line = lines
            .next_line()
            .await
            .expect("read the attacker's output")
            .expect("the attacker stopped talking");
        // libtest's own output may precede it on the line.
        if let Some(at) = line.find(SAY) {
            return line[at + SAY.len()..].to_string();
        }
    }
}

/// Whether this test may choose the next pid (`ns_last_pid` needs CAP_SYS_ADMIN over the pid
/// namespace); the bus reports pids of its own namespace, so that is where the pid must be
/// reused.
fn can_choose_pids() -> bool {
    let path = "/proc/sys/kernel/ns_last_pid";
    std::fs::read_to_string(path)
        .ok()
        .is_some_and(|last| std::fs::write(path, last.trim()).is_ok())
}

/// Start a host process (`sleep`) under `pid`, now free; other processes may be forking too, so
/// try a few times.
fn take_pid(pid: u32) -> Child {
    for _ in 0..200 {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "another process took pid {pid} first"
        );
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).unwrap();
        let mut host = Command::new("sleep").arg("60").spawn().unwrap();
        if host.id() == pid {
            return host;
        }
        let _ = host.kill();
        let _ = host.wait();
    }
    panic!("could not start a process under pid {pid}");
}

/// Return once the kernel has recorded every connection that appeared before now: a call from a
/// new connection waits until the kernel has seen that connection appear, and the bus announces
/// connections in the order they came.
async fn appearances_seen(env: &Env) {
    let fresh = agentos_client::Client::at_address(&env.address)
        .await
        .expect("a new connection");
    fresh
        .kernel()
        .await
        .expect("the kernel")
        .list_grants()
        .await
        .expect("ListGrants from a new connection");
}

async fn evil_granted(env: &Env) -> bool {
    env.kernel()
        .await
        .list_grants()
        .await
        .unwrap()
        .iter()
        .any(|g| g.principal == "org.example.Evil")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_left_holding_a_connection_is_not_the_process_that_took_its_openers_pid() {
    if !can_choose_pids() {
        eprintln!("skipped: cannot write /proc/sys/kernel/ns_last_pid (needs root in the bus's pid namespace) to force a pid to be reused");
        return;
    }
    bounded(async {
        let env = Env::start().await;
        let (mut attacker, opener_pid, _) = Attacker::start(&env, false).await;
        // The kernel has seen the connection appear; the host process starts after that, later
        // by more than the 10 ms ticks process start times are counted in.
        appearances_seen(&env).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut host = take_pid(opener_pid);
        let answer = attacker.call().await;
        let _ = host.kill();
        let _ = host.wait();
        assert!(
            answer.starts_with("refused org.agentos.Error.AccessDenied")
                && answer.contains(&format!(
                    "process {opener_pid} started after the caller's connection appeared"
                )),
            "{answer}"
        );
        assert!(!evil_granted(&env).await);
        // The user's own calls (a connection that was there before the kernel) go through.
        let k = env.kernel().await;
        k.grant("org.example.Honest", "files.read", "/", "session")
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_identity_is_not_served_once_its_process_is_replaced() {
    if !can_choose_pids() {
        eprintln!("skipped: cannot write /proc/sys/kernel/ns_last_pid (needs root in the bus's pid namespace) to force a pid to be reused");
        return;
    }
    bounded(async {
        let env = Env::start().await;
        // The opener calls first, as the host process it is: that call goes through.
        let (mut attacker, opener_pid, first) = Attacker::start(&env, true).await;
        assert_eq!(first.as_deref(), Some("ok"));
        appearances_seen(&env).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut host = take_pid(opener_pid);
        let answer = attacker.call().await;
        let _ = host.kill();
        let _ = host.wait();
        assert!(
            answer.starts_with("refused org.agentos.Error.AccessDenied")
                && answer.contains(&format!("process {opener_pid} started after")),
            "{answer}"
        );
        assert!(!evil_granted(&env).await);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_opener_exited_is_refused() {
    bounded(async {
        let env = Env::start().await;
        let (mut attacker, opener_pid, first) = Attacker::start(&env, true).await;
        assert_eq!(first.as_deref(), Some("ok"));
        // Nobody has the pid (or someone else does): either way the holder is not the opener.
        let answer = attacker.call().await;
        assert!(
            answer.starts_with("refused org.agentos.Error.AccessDenied")
                && answer.contains(&opener_pid.to_string()),
            "{answer}"
        );
        assert!(!evil_granted(&env).await);
    })
    .await;
}

//! End-to-end: the live D-Bus contract against the committed XML. Discovery; every interface as
//! served (on the bus, on an agent's private connection to the kernel, and by an SDK agent);
//! `busctl --user introspect` as a user would run it; the named errors on the bus.

use std::os::fd::{AsFd, OwnedFd};
use std::process::Command;

use agentos_dbus_interfaces::names::{self, AGENT_FD_ENV, AGENT_SERVICE_PATH, KERNEL_PATH};
use agentos_dbus_interfaces::Error;
use agentos_tests::contract::{committed, committed_node, interface, served};
use agentos_tests::{bin, bounded, Env};
use zbus::zvariant::Fd;

const KERNEL: Option<&str> = Some(names::KERNEL_BUS_NAME);

struct Idle;
impl agentos_sdk::Agent for Idle {
    async fn run(&self, _t: agentos_sdk::Task) -> Result<agentos_sdk::Outcome, String> {
        Ok(agentos_sdk::Outcome::text("idle"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_introspection_match_the_contract() {
    bounded(async {
        let env = Env::start().await;
        let ids = env.agent_ids().await;
        for id in ["docs", "web", "tester", "helper", "narrow"] {
            assert!(ids.iter().any(|i| i == id), "{id} not discovered: {ids:?}");
        }
        let kernel1 = served(&env.conn, KERNEL, KERNEL_PATH, "org.agentos.Kernel1").await;
        assert_eq!(kernel1, committed("org.agentos.Kernel1"));
        let docs = names::agent_path("docs");
        let agent1 = served(&env.conn, KERNEL, &docs, "org.agentos.Agent1").await;
        assert_eq!(agent1, committed("org.agentos.Agent1"));
        let id = env.delegate("tester", "echo hi").await;
        env.wait_task(id).await;
        let task = names::task_path(id);
        let task1 = served(&env.conn, KERNEL, &task, "org.agentos.Task1").await;
        assert_eq!(task1, committed("org.agentos.Task1"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_private_connections_serve_host1_and_agentservice1_as_committed() {
    bounded(async {
        let env = Env::start().await;
        // The kernel's side of an agent's private connection: Host1.
        let reg = agentos_sdk::register(Idle, "host", Some(&env.address))
            .await
            .unwrap();
        let host1 = served(&reg.kernel, None, KERNEL_PATH, "org.agentos.Host1").await;
        assert_eq!(host1, committed("org.agentos.Host1"));

        // An SDK agent's side, as the kernel sees it: launch the test agent as the kernel does,
        // with our socket's other end as its inherited fd, and speak as the server.
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let theirs = OwnedFd::from(theirs);
        // Inheritable until the agent has started: a process another test starts meanwhile may
        // inherit it too, which holds only the agent's end open (ours stays close-on-exec).
        rustix::io::fcntl_setfd(theirs.as_fd(), rustix::io::FdFlags::empty()).unwrap();
        let raw = std::os::fd::AsRawFd::as_raw_fd(&theirs);
        let mut agent =
            env.service(Command::new(bin("agentos-test-agent")).env(AGENT_FD_ENV, raw.to_string()));
        drop(theirs);
        ours.set_nonblocking(true).unwrap();
        let conn =
            zbus::connection::Builder::unix_stream(tokio::net::UnixStream::from_std(ours).unwrap())
                .server(zbus::Guid::generate())
                .unwrap()
                .p2p()
                .build()
                .await
                .unwrap();
        let service = served(&conn, None, AGENT_SERVICE_PATH, "org.agentos.AgentService1").await;
        assert_eq!(service, committed("org.agentos.AgentService1"));
        // The agent ends when its kernel goes away.
        drop(conn);
        let status = tokio::task::spawn_blocking(move || agent.wait())
            .await
            .unwrap();
        assert!(status.unwrap().success());
    })
    .await;
}

/// `busctl` rows of one interface: (member, kind, signature, result) for every `.Member` line.
fn busctl_rows(out: &str, iface: &str) -> Vec<(String, String, String, String)> {
    let mut rows = Vec::new();
    let mut current = String::new();
    for line in out.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        match cols.as_slice() {
            [name, "interface", ..] => current = name.to_string(),
            [name, kind, sig, result, ..] if current == iface && name.starts_with('.') => rows
                .push((
                    name[1..].to_string(),
                    kind.to_string(),
                    sig.to_string(),
                    result.to_string(),
                )),
            _ => {}
        }
    }
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busctl_introspect_shows_the_documented_interfaces() {
    bounded(async {
        let env = Env::start().await;
        // Exactly what the README tells a user to run; --user finds our bus through
        // DBUS_SESSION_BUS_ADDRESS, as on a desktop.
        let out = env.run(Command::new("busctl").args([
            "--user",
            "--no-pager",
            "introspect",
            names::KERNEL_BUS_NAME,
            KERNEL_PATH,
        ]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "busctl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let node = committed_node("org.agentos.Kernel1");
        let kernel1 = interface(&node, "org.agentos.Kernel1");
        let sig = |args: &[zbus_xml::Arg], dir: zbus_xml::ArgDirection| -> String {
            let s: String = args
                .iter()
                .filter(|a| a.direction().unwrap_or(zbus_xml::ArgDirection::In) == dir)
                .map(|a| a.ty().to_string())
                .collect();
            if s.is_empty() {
                "-".into()
            } else {
                s
            }
        };
        let mut expected: Vec<(String, String, String, String)> = kernel1
            .methods()
            .iter()
            .map(|m| {
                let (i, o) = (
                    sig(m.args(), zbus_xml::ArgDirection::In),
                    sig(m.args(), zbus_xml::ArgDirection::Out),
                );
                (m.name().to_string(), "method".into(), i, o)
            })
            .collect();
        expected.extend(kernel1.signals().iter().map(|s| {
            let args: String = s.args().iter().map(|a| a.ty().to_string()).collect();
            let args = if args.is_empty() { "-".into() } else { args };
            (s.name().to_string(), "signal".into(), args, "-".into())
        }));
        let mut shown = busctl_rows(&text, "org.agentos.Kernel1");
        // Property values are live; compare their names and types only.
        let props: Vec<(String, String)> = shown
            .iter()
            .filter(|r| r.1 == "property")
            .map(|r| (r.0.clone(), r.2.clone()))
            .collect();
        let mut committed_props: Vec<(String, String)> = kernel1
            .properties()
            .iter()
            .map(|p| (p.name().to_string(), p.ty().to_string()))
            .collect();
        committed_props.sort();
        assert_eq!(props, committed_props, "busctl said:\n{text}");
        shown.retain(|r| r.1 != "property");
        expected.sort();
        assert_eq!(shown, expected, "busctl said:\n{text}");
        // The standard interfaces are there too.
        for std in [
            "org.freedesktop.DBus.Introspectable",
            "org.freedesktop.DBus.Properties",
            "org.freedesktop.DBus.Peer",
        ] {
            assert!(text.contains(std), "{std} missing from:\n{text}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_errors_reach_bus_clients() {
    bounded(async {
        let env = Env::start().await;
        let k = env.kernel().await;
        // Busy: a second agent with the same identity while the first is connected.
        let _first = agentos_sdk::register(Idle, "host", Some(&env.address))
            .await
            .unwrap();
        let (_ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let theirs = OwnedFd::from(theirs);
        match k.register_agent(Fd::from(&theirs), "host").await {
            Err(Error::Busy(m)) => assert!(m.contains("already connected"), "{m}"),
            other => panic!("expected org.agentos.Error.Busy, got {other:?}"),
        }
        // The raw error name is what any D-Bus client sees.
        let reply = env
            .conn
            .call_method(
                KERNEL,
                KERNEL_PATH,
                Some("org.agentos.Kernel1"),
                "RegisterAgent",
                &(Fd::from(&theirs), "host"),
            )
            .await;
        match reply {
            Err(zbus::Error::MethodError(name, Some(text), _)) => {
                assert_eq!(name.as_str(), "org.agentos.Error.Busy");
                assert!(text.contains("host"), "{text}");
            }
            other => panic!("expected a method error, got {other:?}"),
        }
        match k.delegate("nobody", "x", Default::default()).await {
            Err(Error::UnknownAgent(_)) => {}
            other => panic!("expected org.agentos.Error.UnknownAgent, got {other:?}"),
        }
        match k
            .grant("docs", "files.read", "relative/path", "always")
            .await
        {
            Err(Error::InvalidArgument(_)) => {}
            other => panic!("expected org.agentos.Error.InvalidArgument, got {other:?}"),
        }
        // The kernel keeps serving.
        assert!(k.list_agents().await.is_ok());
    })
    .await;
}

//! End-to-end limits: a peer that pipelines calls and never reads is slowed, then cut off, with
//! the kernel's memory bounded; quotas refuse floods at once with a named error, while other
//! clients keep being served.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use agentos_dbus_interfaces::names::KERNEL_PATH;
use agentos_dbus_interfaces::Error;
use agentos_tests::{bounded_for, Env};

/// The kernel's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The SASL EXTERNAL handshake of a peer-to-peer D-Bus connection, by hand, on a blocking
/// socket: after it, the socket carries raw messages and nothing reads unless we do.
fn handshake(s: &mut UnixStream) {
    let uid = rustix::process::getuid().as_raw();
    let hex: String = uid
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    s.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
        .unwrap();
    let mut line = String::new();
    BufReader::new(&mut *s).read_line(&mut line).unwrap();
    assert!(line.starts_with("OK "), "{line}");
    s.write_all(b"BEGIN\r\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_peer_that_does_not_read_is_slowed_then_cut_off_with_memory_bounded() {
    bounded_for(Duration::from_secs(90), async {
        let env = Env::start().await;
        let pid = env.kernel_pid().unwrap();
        let fd = env.kernel().await.open_channel().await.unwrap();
        let mut sock = UnixStream::from(std::os::fd::OwnedFd::from(fd));
        handshake(&mut sock);
        let before = rss_kib(pid);
        // Pipeline pings (answered by the kernel itself) and never read a reply.
        let ping = zbus::message::Message::method_call(KERNEL_PATH, "Ping")
            .unwrap()
            .interface("org.freedesktop.DBus.Peer")
            .unwrap()
            .build(&())
            .unwrap();
        let bytes = ping.data().to_vec();
        sock.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let writer = std::thread::spawn(move || {
            let started = Instant::now();
            let mut sent = 0u64;
            let mut stalled_at = None;
            let end = loop {
                match sock.write_all(&bytes) {
                    Ok(()) => sent += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // The kernel stopped reading: we are slowed.
                        stalled_at.get_or_insert(started.elapsed());
                    }
                    Err(e) => break e,
                }
                if started.elapsed() > Duration::from_secs(60) {
                    panic!("the kernel never cut the connection");
                }
            };
            (sent, stalled_at, started.elapsed(), end, sock)
        });
        // While the peer floods, the kernel serves others, and its memory stays bounded.
        let k = env.kernel().await;
        let mut peak = before;
        while !writer.is_finished() {
            let t = Instant::now();
            k.list_agents().await.unwrap();
            assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
            peak = peak.max(rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (sent, stalled_at, elapsed, end, mut sock) = writer.join().unwrap();
        let stalled_at = stalled_at.expect("the kernel never stopped reading");
        assert!(stalled_at < Duration::from_secs(5), "{stalled_at:?}");
        // Cut off about 10 s after it stopped reading the replies.
        assert!(elapsed < Duration::from_secs(40), "{elapsed:?}");
        assert!(
            matches!(
                end.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "{end}"
        );
        let mut rest = Vec::new();
        let _ = sock.read_to_end(&mut rest);
        println!(
            "sent {sent} pings; stalled after {stalled_at:?}, cut off after {elapsed:?}; \
             kernel RSS {before} KiB before, {peak} KiB at most"
        );
        assert!(peak < before + 64 * 1024, "{before} KiB -> {peak} KiB");
        // The kernel goes on, and takes new channels.
        let (_conn, channel) = env.channel().await;
        let echoed = channel
            .call(
                "tester",
                "echo",
                agentos_dbus_interfaces::Bytes::new(b"still here"),
            )
            .await
            .unwrap();
        assert_eq!(echoed.as_slice(), b"still here");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_get_quota_errors_at_once_and_others_are_still_served() {
    bounded_for(Duration::from_secs(60), async {
        let env = Env::start().await;
        let k = env.kernel().await;
        // Delegations: a burst, then the rate; the refusal is immediate and says when to retry.
        let started = Instant::now();
        let mut admitted = 0u32;
        let refused = loop {
            match k.delegate("tester", "echo x", Default::default()).await {
                Ok(_) => admitted += 1,
                Err(e) => break e,
            }
            // The burst, plus what the rate gave back meanwhile.
            let allowed = 40.0 + 20.0 * started.elapsed().as_secs_f64() + 1.0;
            assert!(
                f64::from(admitted) <= allowed,
                "no quota after {admitted} delegations"
            );
        };
        assert!(admitted >= 40, "refused after {admitted}: {refused:?}");
        match refused {
            Error::QuotaExceeded(m) => assert!(m.contains("a second"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            refused_name(&env).await,
            "org.agentos.Error.QuotaExceeded",
            "the error's wire name"
        );
        // Another client is served meanwhile.
        let other = zbus::connection::Builder::address(env.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();
        let other = agentos_dbus_interfaces::proxies::Kernel1Proxy::new(&other)
            .await
            .unwrap();
        assert!(!other.list_agents().await.unwrap().is_empty());
        // Channels: at most 8 open per caller.
        let mut channels = Vec::new();
        for _ in 0..8 {
            channels.push(k.open_channel().await.unwrap());
        }
        assert!(matches!(
            k.open_channel().await,
            Err(Error::QuotaExceeded(_))
        ));
        // Closing one frees its slot.
        drop(channels.pop());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match k.open_channel().await {
                Ok(fd) => break channels.push(fd),
                Err(Error::QuotaExceeded(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    })
    .await;
}

/// The wire name of the error a flooded delegation gets (raw, so no proxy maps it).
async fn refused_name(env: &Env) -> String {
    let conn = zbus::connection::Builder::address(env.address.as_str())
        .unwrap()
        .build()
        .await
        .unwrap();
    loop {
        let reply = conn
            .call_method(
                Some("org.agentos.Kernel"),
                KERNEL_PATH,
                Some("org.agentos.Kernel1"),
                "Delegate",
                &(
                    "tester",
                    "echo y",
                    std::collections::HashMap::<&str, zbus::zvariant::Value<'_>>::new(),
                ),
            )
            .await;
        match reply {
            Ok(_) => continue,
            Err(zbus::Error::MethodError(name, _, _)) => return name.to_string(),
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_tasks_are_bounded_per_caller() {
    bounded_for(Duration::from_secs(60), async {
        let env = Env::start().await;
        let k = env.kernel().await;
        let mut n = 0;
        let refused = loop {
            match k
                .delegate("tester", "sleep 60000", Default::default())
                .await
            {
                Ok(_) => n += 1,
                // Paced to stay under the delegation rate.
                Err(Error::QuotaExceeded(m)) if m.contains("a second") => {
                    tokio::time::sleep(Duration::from_millis(60)).await
                }
                Err(e) => break e,
            }
            assert!(n <= 64, "more than 64 unfinished tasks admitted");
        };
        assert_eq!(n, 64);
        match refused {
            Error::QuotaExceeded(m) => assert!(m.contains("64 unfinished tasks"), "{m}"),
            other => panic!("{other:?}"),
        }
    })
    .await;
}

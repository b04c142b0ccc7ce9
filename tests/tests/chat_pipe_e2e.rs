//! End-to-end: the chat pipe (`Channel1.OpenChatPipe`) on the real kernel, spoken with raw
//! records as any client would: a request taken (its id, then its answer on the socket sent with
//! it, counted as the opener's use); refusals named on that socket (JSON that is not a request,
//! text that is not UTF-8, a record over the limit, no model); a record without its socket, or
//! with an fd that is not a Unix stream socket, ends the pipe; pipes count among the opener's
//! channels and give their slot back when closed; a request that waits for a slot hears at once
//! that it was taken, and `Cancel` with that id ends it.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use agentos_client::ChatEvent;
use agentos_client::{ChatMessage, ChatRequest, ChatStream, Client};
use agentos_dbus_interfaces::chat_pipe::{Taken, MAX_PIPE_REQUEST};
use agentos_dbus_interfaces::proxies::Channel1Proxy;
use agentos_dbus_interfaces::Error;
use agentos_p2p::records::Records;
use agentos_tests::model_fixture::{ModelServer, Props};
use agentos_tests::model_server::{ModelServer as PacedServer, ServerConfig};
use agentos_tests::{bounded, channel_on, Env};
use tokio::io::Interest;

async fn env_with_model(server: &ModelServer) -> Env {
    env_with_server(&server.url()).await
}

async fn env_with_server(url: &str) -> Env {
    let mut env = Env::start().await;
    let dir = env.root().join("config/agentos");
    std::fs::create_dir_all(&dir).expect("config dir");
    let settings = format!("[local]\nollama = \"off\"\nllama-server = \"{url}\"\n");
    std::fs::write(dir.join("models.toml"), settings).expect("models.toml");
    env.restart_kernel().await;
    env
}

fn request() -> String {
    let mut r = ChatRequest::new(vec![ChatMessage::user("hi")]);
    r.max_tokens = Some(32);
    r.to_json()
}

/// Send `record` with a fresh socket beside it; returns the end the answer is read from.
async fn ask(pipe: &Records, record: &[u8]) -> UnixStream {
    let (ours, theirs) = UnixStream::pair().unwrap();
    pipe.send(record, Some(theirs.as_fd())).await.unwrap();
    ours
}

/// The first line on an answer socket, read a byte at a time (nothing after it is taken).
fn first_line(socket: &mut UnixStream) -> Option<Taken> {
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match socket.read(&mut byte).unwrap() {
            0 if line.is_empty() => return None,
            1 if byte[0] != b'\n' => line.push(byte[0]),
            _ => break,
        }
    }
    Some(serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
}

/// Send `record` and read the refusal that must come back on its socket, and nothing after.
async fn refused(pipe: &Records, record: &[u8]) -> Error {
    let mut answer = ask(pipe, record).await;
    match first_line(&mut answer).map(Taken::into_result) {
        Some(Err(e)) => {
            let mut rest = Vec::new();
            answer.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty(), "nothing follows a refusal: {rest:?}");
            e
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A new chat pipe of the channel, ready to send on.
async fn open_pipe(proxy: &Channel1Proxy<'static>) -> Result<Records, Error> {
    let fd = OwnedFd::from(proxy.open_chat_pipe().await?);
    Ok(Records::new(fd, Interest::WRITABLE).unwrap())
}

#[tokio::test]
async fn the_pipe_takes_requests_as_records_and_names_what_it_refuses() {
    bounded(async {
        let server = ModelServer::start(Props::default());
        let env = env_with_model(&server).await;
        let (_channel, proxy) = channel_on(&env.conn).await;
        let pipe = open_pipe(&proxy).await.unwrap();

        // Taken: its id first, then the answer, counted as the opener's (the user's tools).
        let mut answer = ask(&pipe, request().as_bytes()).await;
        let Some(Taken::Accepted { id }) = first_line(&mut answer) else {
            panic!("the request was not taken")
        };
        assert!(id > 0);
        let reply = ChatStream::from_fd(OwnedFd::from(answer)).collect().await;
        assert_eq!(reply.unwrap().text, "Hello from the fixture.");
        let c = Client::with_connection(env.conn.clone()).await.unwrap();
        let usage = c.list_usage().await.unwrap();
        assert!(
            usage.iter().any(|u| u.kind == "host" && u.requests >= 1),
            "{usage:?}"
        );

        // Refused on the request's own socket, named, and the pipe goes on.
        let e = refused(&pipe, b"{\"messages\": 7}").await;
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        let e = refused(&pipe, b"\xff\xfe not text").await;
        assert!(
            matches!(e, Error::InvalidArgument(ref m) if m.contains("UTF-8")),
            "{e:?}"
        );
        let e = refused(&pipe, &vec![b' '; MAX_PIPE_REQUEST + 1]).await;
        assert!(
            matches!(e, Error::InvalidArgument(ref m) if m.contains("with Chat")),
            "{e:?}"
        );
        let mut answer = ask(&pipe, request().as_bytes()).await;
        assert!(matches!(
            first_line(&mut answer),
            Some(Taken::Accepted { .. })
        ));
    })
    .await;
}

#[tokio::test]
async fn a_broken_record_ends_the_pipe_and_pipes_count_among_channels() {
    bounded(async {
        let server = ModelServer::start(Props::default());
        let env = env_with_model(&server).await;
        let (_channel, proxy) = channel_on(&env.conn).await;

        // A record without its socket, or with an fd that is not a Unix stream socket: the
        // pipe ends, and what was sent after it is dropped (its socket closes unanswered).
        let file = tempfile::tempfile().unwrap();
        for fd in [None, Some(file.as_fd())] {
            let pipe = open_pipe(&proxy).await.unwrap();
            pipe.send(request().as_bytes(), fd).await.unwrap();
            let (mut ours, theirs) = UnixStream::pair().unwrap();
            let sent = pipe.send(request().as_bytes(), Some(theirs.as_fd())).await;
            if sent.is_ok() {
                drop(theirs);
                assert_eq!(first_line(&mut ours), None, "answered after {fd:?}");
            }
        }

        // Pipes count among the caller's 8 channels (one is the channel itself) ...
        let mut pipes = Vec::new();
        let over = loop {
            match open_pipe(&proxy).await {
                Ok(pipe) => pipes.push(pipe),
                Err(e) => break e,
            }
            assert!(pipes.len() <= 8, "more pipes than the quota of channels");
        };
        assert!(matches!(over, Error::QuotaExceeded(_)), "{over:?}");
        assert_eq!(pipes.len(), 7);
        // ... and give their slot back when closed.
        pipes.pop();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while open_pipe(&proxy).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the slot was not given back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

// (The paced server runs on the test's runtime, and this test reads its sockets blocking.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_request_hears_at_once_it_was_taken_and_can_be_canceled() {
    bounded(async {
        let server = PacedServer::start(ServerConfig {
            slots: 1,
            first_token: Duration::from_millis(2000),
            token_gap: Duration::from_millis(100),
            tokens: 5,
            ..ServerConfig::default()
        })
        .await;
        let env = env_with_server(&server.url).await;
        let (_channel, proxy) = channel_on(&env.conn).await;
        let pipe = open_pipe(&proxy).await.unwrap();
        // The first holds the server's one slot for about 2.4 s.
        let mut first = ask(&pipe, request().as_bytes()).await;
        let taken = first_line(&mut first);
        assert!(matches!(taken, Some(Taken::Accepted { .. })), "{taken:?}");
        // The second waits for it, and is told at once that it was taken.
        let asked = std::time::Instant::now();
        let mut second = ask(&pipe, request().as_bytes()).await;
        let Some(Taken::Accepted { id }) = first_line(&mut second) else {
            panic!("the waiting request was not taken")
        };
        assert!(
            asked.elapsed() < Duration::from_millis(1000),
            "taken only after {:?}",
            asked.elapsed()
        );
        proxy
            .cancel(id)
            .await
            .expect("Cancel names the pipe's request");
        let mut events = ChatStream::from_fd(OwnedFd::from(second));
        match events.next().await {
            Some(Ok(ChatEvent::Error { kind, .. })) => assert_eq!(kind, "canceled"),
            other => panic!("expected the cancel, got {other:?}"),
        }
        let done = ChatStream::from_fd(OwnedFd::from(first)).collect().await;
        assert!(done.is_ok(), "{done:?}");
    })
    .await;
}

/// The kernel's open fds.
fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[tokio::test]
async fn a_caller_that_never_reads_cannot_make_the_kernel_hold_its_sockets() {
    bounded(async {
        let server = ModelServer::start(Props::default());
        let env = env_with_model(&server).await;
        let pid = env.kernel_pid().expect("the kernel's pid");
        let (_channel, proxy) = channel_on(&env.conn).await;
        let pipe = open_pipe(&proxy).await.unwrap();
        // One socket for every request, kept full and never read: each answer would wait on it.
        let (shared, _never_read) = UnixStream::pair().unwrap();
        shared.set_nonblocking(true).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        while std::io::Write::write(&mut &shared, &chunk).is_ok_and(|n| n > 0) {}
        let before = fds_of(pid);
        let held = request_held();
        for _ in 0..300 {
            pipe.send(held.as_bytes(), Some(shared.as_fd()))
                .await
                .unwrap();
        }
        // Each request was taken as one whose caller left: none is kept waiting on the socket.
        let settled = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if fds_of(pid) <= before + 8 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            settled.is_ok(),
            "the kernel holds {} fds, {before} before",
            fds_of(pid)
        );
        // And the pipe still takes a request from a caller that reads.
        let mut answer = ask(&pipe, request().as_bytes()).await;
        assert!(matches!(
            first_line(&mut answer),
            Some(Taken::Accepted { .. })
        ));
    })
    .await;
}

/// A request the fixture holds for 10 s before it answers.
fn request_held() -> String {
    let mut r = ChatRequest::new(vec![ChatMessage::user("[hold] wait")]);
    r.max_tokens = Some(32);
    r.to_json()
}

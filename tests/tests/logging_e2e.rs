//! End-to-end: where agentosd logs. Under systemd (its stderr is the stream `JOURNAL_STREAM`
//! names) it speaks the journal's native protocol to `/run/systemd/journal/socket`; otherwise, and
//! when it merely inherited the variable, it writes to stderr.
//!
//! The kernel runs under bubblewrap with a private `/run`, where the test binds its own datagram
//! socket at the journal's path and reads what arrives there.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use agentos_dbus_interfaces::names;
use agentos_tests::{bounded_for, Env};

/// The kernel's command run under bwrap, with `dir` as `/run/systemd/journal`, `stderr` as its
/// stderr, and `JOURNAL_STREAM` set to `journal_stream`.
fn kernel_in_namespace(env: &Env, dir: &Path, stderr: &Path, journal_stream: &str) -> Command {
    let kernel = env.kernel_command();
    let mut cmd = Command::new("bwrap");
    cmd.args(["--dev-bind", "/", "/", "--tmpfs", "/run", "--bind"])
        .arg(dir)
        .args(["/run/systemd/journal", "--die-with-parent", "--"])
        .arg(kernel.get_program())
        .args(kernel.get_args())
        .env_clear()
        .envs(kernel.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("JOURNAL_STREAM", journal_stream)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).expect("stderr file"));
    cmd
}

/// `dev:ino` of a file, as systemd writes `JOURNAL_STREAM`.
fn stream_id(path: &Path) -> String {
    let m = std::fs::metadata(path).expect("stat");
    format!("{}:{}", m.dev(), m.ino())
}

/// Journal entries received so far (datagrams; the empty probe the kernel sends first is
/// skipped).
fn drain(socket: &UnixDatagram) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = socket.recv(&mut buf) {
        if n > 0 {
            out.push(parse_entry(&buf[..n]));
        }
    }
    out
}

/// The journal's native protocol: `NAME=value\n`, or for values that may hold a newline,
/// `NAME\n`, the value's length as 64-bit little endian, the value and `\n`.
fn parse_entry(mut data: &[u8]) -> Vec<(String, String)> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut fields = Vec::new();
    while !data.is_empty() {
        let end = data
            .iter()
            .position(|&b| b == b'\n')
            .expect("a field ends with a newline");
        let line = &data[..end];
        data = &data[end + 1..];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            fields.push((text(&line[..eq]), text(&line[eq + 1..])));
        } else {
            let (len, rest) = data.split_at(8);
            let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
            fields.push((text(line), text(&rest[..len])));
            assert_eq!(rest[len], b'\n', "a binary field ends with a newline");
            data = &rest[len + 1..];
        }
    }
    fields
}

async fn wait_name_gone(env: &Env) {
    let dbus = zbus::fdo::DBusProxy::new(&env.conn).await.expect("dbus");
    let name = zbus::names::BusName::try_from(names::KERNEL_BUS_NAME).expect("name");
    while dbus.name_has_owner(name.clone()).await.unwrap_or(true) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const WARNING: &str = "skipping agent manifest";

#[tokio::test]
async fn the_kernel_logs_to_the_journal_under_systemd_and_to_stderr_otherwise() {
    if !agentos_tests::bwrap_works() {
        eprintln!("skipping: bwrap cannot create namespaces here, so no private /run can be made");
        return;
    }
    bounded_for(Duration::from_secs(60), async {
        let mut env = Env::start().await;
        // Something the kernel warns about at every start.
        std::fs::write(env.agents_dir().join("broken.toml"), "id = [").unwrap();
        let dir = env.root().join("journal");
        std::fs::create_dir(&dir).unwrap();
        let journal = UnixDatagram::bind(dir.join("socket")).unwrap();
        journal.set_nonblocking(true).unwrap();
        assert!(env.stop_kernel("TERM").await.success());

        // JOURNAL_STREAM inherited from elsewhere: stderr is not the journal, so stderr it is.
        let stderr = env.root().join("stderr-1.log");
        std::fs::write(&stderr, "").unwrap();
        let other = format!("{}:1", stream_id(&stderr).split(':').next().unwrap());
        env.start_kernel_with(kernel_in_namespace(&env, &dir, &stderr, &other))
            .await;
        let text = std::fs::read_to_string(&stderr).unwrap();
        assert!(text.contains(WARNING), "stderr: {text:?}");
        assert!(text.contains("broken.toml"), "stderr: {text:?}");
        assert_eq!(drain(&journal), Vec::<Vec<(String, String)>>::new());
        // bwrap passes no signal on: it ends, and --die-with-parent kills the kernel with it.
        env.stop_kernel("TERM").await;
        wait_name_gone(&env).await;

        // Started by systemd: stderr is the stream JOURNAL_STREAM names.
        let stderr = env.root().join("stderr-2.log");
        std::fs::write(&stderr, "").unwrap();
        let ours = stream_id(&stderr);
        env.start_kernel_with(kernel_in_namespace(&env, &dir, &stderr, &ours))
            .await;
        let entries = drain(&journal);
        let field = |entry: &[(String, String)], name: &str| {
            entry
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let entry = entries
            .iter()
            .find(|e| field(e, "MESSAGE").contains(WARNING))
            .unwrap_or_else(|| panic!("no journal entry with the warning in {entries:?}"));
        assert!(field(entry, "MESSAGE").contains("broken.toml"), "{entry:?}");
        // Priority 4 is "warning".
        assert_eq!(field(entry, "PRIORITY"), "4", "{entry:?}");
        assert_eq!(field(entry, "SYSLOG_IDENTIFIER"), "agentosd", "{entry:?}");
        let text = std::fs::read_to_string(&stderr).unwrap();
        assert!(
            !text.contains(WARNING),
            "logged to stderr as well: {text:?}"
        );
        // The kernel still serves.
        let agents = env.kernel().await.list_agents().await.unwrap();
        assert!(agents.iter().any(|a| a.id == "tester"), "{agents:?}");
    })
    .await;
}

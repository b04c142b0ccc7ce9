//! End-to-end: `agentctl models` keeps providers' API keys in a real gnome-keyring-daemon on the
//! test's bus: a key read from stdin is found there by `secret-tool`, listed without the key,
//! removed; a locked keyring and a bus without a Secret Service give plain errors; and the key
//! appears in no output of agentctl and in no file of the test.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};

use agentos_tests::keyring::{Keyring, NAME as SECRETS};
use agentos_tests::{bin, bounded, Env};
use tokio::io::AsyncWriteExt;
use zbus::zvariant::ObjectPath;

/// A key nobody else would write anywhere.
fn test_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("sk-agentos-e2e-{}-{nanos}", std::process::id())
}

/// Run `program args` on the bus at `address` in the test's own dirs, `input` on its stdin.
async fn run(root: &Path, address: &str, program: &Path, args: &[&str], input: &str) -> Output {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root.join("home"))
        .env("XDG_RUNTIME_DIR", root.join("run"))
        .env("XDG_DATA_HOME", root.join("xdg-data"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("DBUS_SESSION_BUS_ADDRESS", address)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start a command");
    let mut stdin = child.stdin.take().expect("stdin");
    // A command that refuses before it reads (or never reads) closes its end: not an error.
    match stdin.write_all(input.as_bytes()).await {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write stdin: {e}"),
        _ => {}
    }
    drop(stdin);
    child.wait_with_output().await.expect("wait for a command")
}

/// `agentctl --address <address> args`, with `input` on stdin.
async fn agentctl(root: &Path, address: &str, args: &[&str], input: &str) -> Output {
    let mut all = vec!["--address", address];
    all.extend_from_slice(args);
    run(root, address, &bin("agentctl"), &all, input).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Assert the key is in neither stream of `out`, and return its stdout.
fn without_key(out: &Output, key: &str) -> String {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !stdout.contains(key) && !stderr.contains(key),
        "agentctl printed the key"
    );
    stdout
}

/// Every regular file under `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if kind.is_file() {
            if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_live_in_the_keyring_and_nowhere_else() {
    bounded(async {
        let env = Env::start().await;
        let keyring = Keyring::start(&env).await;
        assert!(keyring.pid() > 0);
        let (root, address) = (env.root(), env.address.as_str());
        let key = test_key();
        let mut outputs = Vec::new();

        let out = agentctl(
            root,
            address,
            &["models", "add", "openai"],
            &format!("{key}\n"),
        )
        .await;
        assert!(out.status.success(), "add: {}", text(&out.stderr));
        let said = without_key(&out, &key);
        assert!(
            said.contains("openai") && said.contains("default"),
            "{said}"
        );
        outputs.push(out);

        // Found from outside, under AgentOS's schema, by libsecret's own tool.
        let lookup = [
            "lookup",
            "xdg:schema",
            "org.agentos.ModelKey",
            "provider",
            "openai",
            "account",
            "default",
        ];
        let secret_tool = Path::new("secret-tool");
        let found = run(root, address, secret_tool, &lookup, "").await;
        assert!(found.status.success(), "{}", text(&found.stderr));
        assert_eq!(text(&found.stdout).trim_end(), key);

        let other = format!("{key}-local");
        let out = agentctl(
            root,
            address,
            &[
                "models",
                "add",
                "openai-compatible",
                "--account",
                "work",
                "--base-url",
                "http://127.0.0.1:8080/v1",
            ],
            &other,
        )
        .await;
        assert!(out.status.success(), "add: {}", text(&out.stderr));
        outputs.push(out);

        let out = agentctl(root, address, &["models"], "").await;
        assert!(out.status.success(), "list: {}", text(&out.stderr));
        let list = without_key(&out, &key);
        assert!(list.contains("openai") && list.contains("AgentOS: openai API key (default)"));
        assert!(list.contains("work") && list.contains("http://127.0.0.1:8080/v1"));
        assert!(
            list.contains("broker"),
            "says where reachability comes from: {list}"
        );
        outputs.push(out);
        let out = agentctl(root, address, &["models", "--json"], "").await;
        let json = without_key(&out, &key);
        assert_eq!(json.matches("\"account\":").count(), 2, "{json}");
        assert!(json.contains("\"provider\": \"openai\""), "{json}");
        assert!(
            json.contains("\"base_url\": \"http://127.0.0.1:8080/v1\""),
            "{json}"
        );
        outputs.push(out);

        // Replaced, not added twice.
        let out = agentctl(root, address, &["models", "add", "openai"], &key).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        outputs.push(out);
        let out = agentctl(root, address, &["models", "--json"], "").await;
        let json = without_key(&out, &key);
        assert_eq!(json.matches("\"account\":").count(), 2, "{json}");
        outputs.push(out);

        let out = agentctl(root, address, &["models", "remove", "openai"], "").await;
        assert!(out.status.success(), "remove: {}", text(&out.stderr));
        outputs.push(out);
        let gone = run(root, address, secret_tool, &lookup, "").await;
        assert!(text(&gone.stdout).is_empty(), "the key is still stored");
        let out = agentctl(root, address, &["models", "remove", "openai"], "").await;
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("no openai key"),
            "{}",
            text(&out.stderr)
        );
        outputs.push(out);

        // Refusals, before anything is stored: an empty key, a provider we do not know.
        let out = agentctl(root, address, &["models", "add", "gemini"], "\n").await;
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("the key is empty"));
        let out = agentctl(root, address, &["models", "add", "openai-compatible"], &key).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("needs a base URL"));
        outputs.push(out);
        let out = agentctl(root, address, &["models", "add", "mistery"], &key).await;
        assert!(text(&out.stderr).contains("unknown provider"));
        outputs.push(out);

        for out in &outputs {
            without_key(out, &key);
        }
        // Not in the kernel's database, audit log, journal, config: in no file but the
        // keyring's own (which is encrypted).
        assert_eq!(files_holding(root, key.as_bytes()), Vec::<String>::new());
        assert_eq!(files_holding(root, other.as_bytes()), Vec::<String>::new());
        drop(keyring);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_keyring_is_named_and_not_opened() {
    bounded(async {
        let mut env = Env::start().await;
        // No local model either: asking finds none.
        env.restart_with_model_settings("[local]\nollama = \"off\"\nllama-server = \"off\"\n")
            .await;
        let _keyring = Keyring::start(&env).await;
        let (root, address) = (env.root(), env.address.as_str());
        let login = ObjectPath::try_from("/org/freedesktop/secrets/collection/login").unwrap();
        env.conn
            .call_method(
                Some(SECRETS),
                "/org/freedesktop/secrets",
                Some("org.freedesktop.Secret.Service"),
                "Lock",
                &(vec![login],),
            )
            .await
            .expect("lock the login keyring");
        let key = test_key();
        // No terminal: agentctl does not ask the keyring to prompt, it says what to do.
        let out = agentctl(root, address, &["models", "add", "anthropic"], &key).await;
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("keyring \"Login\" is locked") && stderr.contains("unlock it"),
            "{stderr}"
        );
        without_key(&out, &key);
        // Listing says the keyring is locked, not that no keys are stored.
        let out = agentctl(root, address, &["models"], "").await;
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("keys: cannot list the stored keys: the keyring \"Login\" is locked"),
            "{stdout}"
        );
        // Asking with no model says so too, beside how to add one.
        let client = agentos_client::Client::with_connection(env.conn.clone())
            .await
            .unwrap();
        let request =
            agentos_client::ChatRequest::new(vec![agentos_client::ChatMessage::user("hi")]);
        match client.chat(&request).await {
            Err(agentos_client::ChatError::Refused(agentos_dbus_interfaces::Error::NoModel(m))) => {
                assert!(
                    m.contains("agentctl models add")
                        && m.contains("could not be read")
                        && m.contains("keyring \"Login\" is locked"),
                    "{m}"
                )
            }
            Err(e) => panic!("expected NoModel, got {e:?}"),
            Ok(_) => panic!("expected NoModel, got an answer"),
        }
        // So does asking for a remote provider's model by its name.
        let mut named = request.clone();
        named.model = Some("anthropic/claude-3-5-haiku-latest".into());
        match client.chat(&named).await {
            Err(agentos_client::ChatError::Refused(agentos_dbus_interfaces::Error::NoModel(m))) => {
                assert!(
                    m.contains("no model provider \"anthropic\"")
                        && m.contains("keyring \"Login\" is locked"),
                    "{m}"
                )
            }
            Err(e) => panic!("expected NoModel, got {e:?}"),
            Ok(_) => panic!("expected NoModel, got an answer"),
        }
    })
    .await;
}

/// A bus with nothing to activate (the test harness's session bus can start the system's
/// gnome-keyring on demand), killed when dropped.
struct BareBus {
    daemon: Child,
    address: String,
}

impl BareBus {
    fn start(dir: &Path) -> BareBus {
        let config = dir.join("bare-bus.conf");
        std::fs::write(
            &config,
            format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
                 <busconfig><type>session</type><listen>unix:path={}</listen>\
                 <auth>EXTERNAL</auth><policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/>\
                 <allow own=\"*\"/></policy></busconfig>\n",
                dir.join("bare-bus").display()
            ),
        )
        .expect("bus config");
        let mut daemon = std::process::Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        let mut line = String::new();
        BufReader::new(daemon.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("bus address");
        BareBus {
            daemon,
            address: line.trim().to_string(),
        }
    }
}

impl Drop for BareBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_service_is_said_plainly() {
    bounded(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bus = BareBus::start(tmp.path());
        let key = test_key();
        for args in [&["models"][..], &["models", "add", "openai"]] {
            let out = agentctl(tmp.path(), &bus.address, args, &key).await;
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            assert!(
                text(&out.stderr)
                    .contains("no Secret Service is running: start gnome-keyring or KWallet"),
                "{}",
                text(&out.stderr)
            );
            without_key(&out, &key);
        }
    })
    .await;
}

//! The real small model for end-to-end tests: llama.cpp's `llama-server` serving
//! Qwen2.5-Coder-0.5B-Instruct, set up by `scripts/local-llm` (or `../shared/local-llm/setup.sh`,
//! same layout) under `$AGENTOS_LOCAL_LLM_DIR`, else `${XDG_CACHE_HOME:-~/.cache}/agentos-local-llm`.
//!
//! A test asks [`or_skip`]: with the model set up it gets a [`LocalLlm`] and starts a server with
//! [`LocalLlm::start`] on a free port of its own (killed when the [`LocalServer`] drops, and by the
//! kernel when the test's thread ends, so it never outlives the test). Without the model the test
//! prints why and passes as skipped, unless `AGENTOS_REQUIRE_LOCAL_LLM=1` (as in CI): then it fails.
//!
//! `models/tests/real_model.rs` compiles this file too (by `#[path]`), so it uses std and tokio only.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where the model is set up (`DEST` of `scripts/local-llm`).
pub const DIR_VAR: &str = "AGENTOS_LOCAL_LLM_DIR";
/// Set to 1 (as CI does) and a missing model fails the tests that need it instead of skipping them.
pub const REQUIRE_VAR: &str = "AGENTOS_REQUIRE_LOCAL_LLM";
/// The model file under `DEST/models`.
pub const MODEL_FILE: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
/// The name the server gives the model (`-a`); ask for it in chat requests.
pub const MODEL_ALIAS: &str = "qwen2.5-coder-0.5b";
/// The chat template that turns the model's fenced JSON into OpenAI `tool_calls`.
pub const TEMPLATE_FILE: &str = "qwen25-fenced.jinja";
/// The port the kernel looks for a `llama-server` on (see [`LocalLlm::start_autodetected`]).
pub const AUTODETECT_PORT: u16 = 8080;
/// Loading the model takes ~3 s here; this leaves room for a loaded machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The model is smaller than this only when a download was cut short.
const MODEL_MIN_BYTES: u64 = 400_000_000;

/// A set-up model: the server binary, the model and the chat template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLlm {
    pub server: PathBuf,
    pub model: PathBuf,
    pub template: PathBuf,
}

/// What [`find`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Ready(LocalLlm),
    /// Not set up, and why, in words a developer can act on.
    Skip(String),
}

/// The model where `scripts/local-llm` puts it, or why not.
pub fn find() -> Found {
    find_in(
        std::env::var_os(DIR_VAR),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
        &repo_template(),
    )
}

/// Whether `AGENTOS_REQUIRE_LOCAL_LLM` asks for the model (set, and neither empty nor "0").
pub fn required() -> bool {
    is_required(std::env::var(REQUIRE_VAR).ok().as_deref())
}

/// The model, or `None` after printing why the test skips. Panics with that reason instead when
/// [`required`]: in CI a missing model is a failure, not a silent skip.
pub fn or_skip() -> Option<LocalLlm> {
    match find() {
        Found::Ready(llm) => Some(llm),
        Found::Skip(reason) if required() => {
            panic!("{REQUIRE_VAR} is set but the real model is not available: {reason}")
        }
        Found::Skip(reason) => {
            eprintln!("skipped: {reason}");
            None
        }
    }
}

/// `scripts/local-llm`'s default `DEST`.
pub fn default_dir(xdg_cache: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let cache = match xdg_cache.filter(|c| !c.is_empty()) {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".cache"),
    };
    Some(cache.join("agentos-local-llm"))
}

fn is_required(value: Option<&str>) -> bool {
    value.is_some_and(|v| !v.trim().is_empty() && v.trim() != "0")
}

/// The template in this checkout (`scripts/`; both crates using this file sit one level down).
fn repo_template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(TEMPLATE_FILE)
}

fn find_in(
    dir: Option<OsString>,
    xdg_cache: Option<OsString>,
    home: Option<OsString>,
    repo_template: &Path,
) -> Found {
    let setup = "run scripts/local-llm to set it up (builds llama-server once, about 15 minutes)";
    let dir = match dir.filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => match default_dir(xdg_cache, home) {
            Some(d) => d,
            None => {
                return Found::Skip(format!(
                    "no real model: neither {DIR_VAR} nor HOME is set; {setup}"
                ))
            }
        },
    };
    let server = dir.join("bin/llama-server");
    let model = dir.join("models").join(MODEL_FILE);
    if !is_executable(&server) {
        return Found::Skip(format!(
            "no real model: {} is missing; {setup}",
            server.display()
        ));
    }
    let size = std::fs::metadata(&model).map(|m| m.len()).unwrap_or(0);
    if size < MODEL_MIN_BYTES {
        return Found::Skip(format!(
            "no real model: {} is missing or incomplete; {setup}",
            model.display()
        ));
    }
    // The checkout's template first (it is what the tests were written against), else DEST's copy.
    let template = [
        repo_template.to_path_buf(),
        dir.join("templates").join(TEMPLATE_FILE),
    ]
    .into_iter()
    .find(|t| t.is_file());
    let Some(template) = template else {
        return Found::Skip(format!(
            "no real model: the chat template {TEMPLATE_FILE} is neither at {} nor in {}; {setup}",
            repo_template.display(),
            dir.join("templates").display()
        ));
    };
    Found::Ready(LocalLlm {
        server,
        model,
        template,
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// How to start a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Requests served at once (`-np`); the context is shared among them.
    pub slots: u32,
    /// Tokens of context in all (`-c`).
    pub context: u32,
    /// CPU threads (`-t`).
    pub threads: u32,
    /// How long to wait for `/health`.
    pub start_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            slots: 1,
            context: 4096,
            threads: 2,
            start_timeout: START_TIMEOUT,
        }
    }
}

/// A running `llama-server`, killed when dropped.
#[derive(Debug)]
pub struct LocalServer {
    child: Child,
    port: u16,
    log: PathBuf,
    /// Held while the server is on [`AUTODETECT_PORT`] (see [`LocalLlm::start_autodetected`]).
    _autodetect: Option<File>,
}

impl LocalServer {
    /// `http://127.0.0.1:PORT` (the OpenAI API is under `/v1`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// A kernel's `models.toml` (in `$XDG_CONFIG_HOME/agentos/`) that finds this server and no
    /// Ollama: the kernel's own discovery (`/props`, slots, context) on the test's private port,
    /// so tests running at the same time never find each other's servers or a developer's.
    pub fn models_toml(&self) -> String {
        format!(
            "[local]\nollama = \"off\"\nllama-server = \"{}\"\n",
            self.url()
        )
    }
    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl LocalLlm {
    /// A server on a free port of its own (never one the kernel autodetects), healthy.
    pub async fn start(&self, options: &Options) -> Result<LocalServer, String> {
        // A free port can be taken between asking and binding: try a few.
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port().map_err(|e| format!("no free port: {e}"))?;
            match self.start_on(port, options).await {
                Ok(server) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// A server on `port`, healthy, or why not (with the end of its log).
    pub async fn start_on(&self, port: u16, options: &Options) -> Result<LocalServer, String> {
        let log = std::env::temp_dir().join(format!(
            "agentos-llama-server-{}-{port}.log",
            std::process::id()
        ));
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.server);
        // The kernel kills it when the thread that started it (the test's) ends, even if the
        // test process is killed before the drop runs.
        if Path::new("/usr/bin/setpriv").is_file() {
            cmd = Command::new("/usr/bin/setpriv");
            cmd.args(["--pdeathsig", "KILL", "--"]).arg(&self.server);
        }
        cmd.arg("-m")
            .arg(&self.model)
            .arg("--chat-template-file")
            .arg(&self.template)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-c", &options.context.to_string()])
            .args(["-np", &options.slots.to_string()])
            .args(["-t", &options.threads.to_string()])
            .args(["-a", MODEL_ALIAS, "--no-webui"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .map_err(|e| format!("{}: {e}", self.server.display()))?;
        let mut server = LocalServer {
            child,
            port,
            log,
            _autodetect: None,
        };
        wait_healthy(&mut server, options.start_timeout).await?;
        Ok(server)
    }

    /// A server on 127.0.0.1:8080, where the kernel finds a user's `llama-server`: for the tests
    /// of autodetection only. One at a time on this machine (a lock file, held until the server
    /// drops, serializes them across threads and test binaries); a port already taken by
    /// someone else is an error, not a silent wrong server.
    pub async fn start_autodetected(&self, options: &Options) -> Result<LocalServer, String> {
        let lock = autodetect_lock(options.start_timeout).await?;
        if std::net::TcpListener::bind(("127.0.0.1", AUTODETECT_PORT)).is_err() {
            return Err(format!(
                "127.0.0.1:{AUTODETECT_PORT} is already in use by another program"
            ));
        }
        let mut server = self.start_on(AUTODETECT_PORT, options).await?;
        server._autodetect = Some(lock);
        Ok(server)
    }
}

/// The options of [`LocalLlm::shared`]: 4 slots of 4096 tokens each.
pub fn shared_options() -> Options {
    Options {
        slots: 4,
        context: 4 * 4096,
        ..Options::default()
    }
}

impl LocalLlm {
    /// The URL of one server for this whole test process ([`shared_options`]), started by the
    /// first call; later calls get the same URL (or the same error). Cheaper than a server per
    /// test (~620 MB and a few seconds each) when several tests only need *a* model. It runs until
    /// the process exits: started from a thread that lives as long as the process, it is killed
    /// by the kernel then. A test that counts slots or stops the server starts its own.
    pub async fn shared(&self) -> Result<String, String> {
        static SHARED: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
        let llm = self.clone();
        tokio::task::spawn_blocking(move || {
            SHARED
                .get_or_init(|| start_for_the_process(llm, shared_options()))
                .clone()
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

fn start_for_the_process(llm: LocalLlm, options: Options) -> Result<String, String> {
    if !Path::new("/usr/bin/setpriv").is_file() {
        return Err(
            "/usr/bin/setpriv (util-linux) is missing: a shared server would outlive \
            the tests"
                .into(),
        );
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("local-llm-shared".into())
        .spawn(move || {
            let started = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(llm.start(&options)));
            match started {
                Ok(server) => {
                    // Its log goes when it does (no drop will remove it).
                    let _ = std::fs::remove_file(&server.log);
                    let _ = tx.send(Ok(server.url()));
                    // Never dropped: this thread ends with the process, and the server with it.
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })
        .map_err(|e| e.to_string())?;
    rx.recv().map_err(|e| e.to_string())?
}

/// The machine-wide lock of [`AUTODETECT_PORT`], waited for asynchronously.
async fn autodetect_lock(timeout: Duration) -> Result<File, String> {
    let path = std::env::temp_dir().join(format!("agentos-llama-server-{AUTODETECT_PORT}.lock"));
    lock_file(&path, timeout).await
}

/// An exclusive lock of `path` (held until the file is closed), or an error after `timeout`.
async fn lock_file(path: &Path, timeout: Duration) -> Result<File, String> {
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let deadline = Instant::now() + timeout;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "{} is still held by another test after {} ms",
                    path.display(),
                    timeout.as_millis()
                ))
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
}

/// A port nobody listens on now (from the ephemeral range, so never 8080 or 11434).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

async fn wait_healthy(server: &mut LocalServer, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok((200, _)) = http_get(server.port, "/health").await {
            return Ok(());
        }
        let failure = match server.child.try_wait() {
            Ok(Some(status)) => Some(format!("llama-server exited ({status})")),
            Err(e) => Some(format!("llama-server: {e}")),
            Ok(None) if Instant::now() >= deadline => Some(format!(
                "llama-server was not healthy within {} s",
                timeout.as_secs()
            )),
            Ok(None) => None,
        };
        if let Some(failure) = failure {
            return Err(format!(
                "{failure} on port {}; the end of its log:\n{}",
                server.port,
                tail(&server.log(), 20)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET path` on 127.0.0.1:port: the status and the body (HTTP/1.1, connection closed after).
pub async fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let request = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut response = Vec::new();
        s.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 5 s"))??;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let status = response
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the temp dir (std only: this file is also built where there is
    /// no tempfile crate).
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "agentos-local-llm-test-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::fs::create_dir_all(d.join("models")).unwrap();
        std::fs::create_dir_all(d.join("templates")).unwrap();
        d
    }

    fn script(path: &Path, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A model file of the full size without writing 400 MB (sparse).
    fn fake_model(dir: &Path) {
        File::create(dir.join("models").join(MODEL_FILE))
            .unwrap()
            .set_len(MODEL_MIN_BYTES)
            .unwrap();
    }

    fn ready(dir: &Path) -> LocalLlm {
        match find_in(Some(dir.into()), None, None, &dir.join("none")) {
            Found::Ready(llm) => llm,
            Found::Skip(reason) => panic!("{reason}"),
        }
    }

    #[test]
    fn the_default_dir_is_the_setup_scripts() {
        assert_eq!(
            default_dir(None, Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.cache/agentos-local-llm"))
        );
        assert_eq!(
            default_dir(Some("/c".into()), Some("/home/u".into())),
            Some(PathBuf::from("/c/agentos-local-llm"))
        );
        assert_eq!(
            default_dir(Some("".into()), Some("/h".into())),
            Some(PathBuf::from("/h/.cache/agentos-local-llm"))
        );
        assert_eq!(default_dir(None, None), None);
    }

    #[test]
    fn required_means_set_and_not_zero() {
        assert!(!is_required(None));
        assert!(!is_required(Some("")));
        assert!(!is_required(Some("0")));
        assert!(is_required(Some("1")));
        assert!(is_required(Some("yes")));
    }

    #[test]
    fn each_missing_piece_is_named_with_how_to_set_it_up() {
        let d = scratch("missing");
        let skip = |found| match found {
            Found::Skip(reason) => reason,
            Found::Ready(llm) => panic!("found {llm:?}"),
        };
        let reason = skip(find_in(Some(d.clone().into()), None, None, &d.join("none")));
        assert!(reason.contains("bin/llama-server is missing"), "{reason}");
        assert!(reason.contains("scripts/local-llm"), "{reason}");

        script(&d.join("bin/llama-server"), "exit 0");
        let reason = skip(find_in(Some(d.clone().into()), None, None, &d.join("none")));
        assert!(reason.contains(MODEL_FILE), "{reason}");

        // A download cut short is not a model.
        File::create(d.join("models").join(MODEL_FILE))
            .unwrap()
            .set_len(1000)
            .unwrap();
        let reason = skip(find_in(Some(d.clone().into()), None, None, &d.join("none")));
        assert!(reason.contains("incomplete"), "{reason}");

        fake_model(&d);
        let reason = skip(find_in(Some(d.clone().into()), None, None, &d.join("none")));
        assert!(reason.contains(TEMPLATE_FILE), "{reason}");

        std::fs::write(d.join("templates").join(TEMPLATE_FILE), "t").unwrap();
        let llm = ready(&d);
        assert_eq!(llm.template, d.join("templates").join(TEMPLATE_FILE));
        assert_eq!(llm.model, d.join("models").join(MODEL_FILE));

        // The checkout's template wins over the cache's copy.
        let repo = d.join("repo.jinja");
        std::fs::write(&repo, "t").unwrap();
        match find_in(Some(d.clone().into()), None, None, &repo) {
            Found::Ready(llm) => assert_eq!(llm.template, repo),
            Found::Skip(reason) => panic!("{reason}"),
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn without_a_dir_the_default_cache_is_searched() {
        let home = scratch("home");
        let reason = match find_in(None, None, Some(home.clone().into()), &home.join("none")) {
            Found::Skip(reason) => reason,
            Found::Ready(llm) => panic!("found {llm:?}"),
        };
        assert!(
            reason.contains(&format!(
                "{}/.cache/agentos-local-llm/bin/llama-server",
                home.display()
            )),
            "{reason}"
        );
        let _ = std::fs::remove_dir_all(&home);
    }

    #[test]
    fn the_checkout_has_the_template() {
        assert!(repo_template().is_file(), "{}", repo_template().display());
    }

    #[tokio::test]
    async fn a_server_that_exits_is_reported_with_its_log() {
        let d = scratch("exits");
        script(
            &d.join("bin/llama-server"),
            "echo \"started with $*\"; echo 'error: no model' >&2; exit 3",
        );
        fake_model(&d);
        std::fs::write(d.join("templates").join(TEMPLATE_FILE), "t").unwrap();
        let err = ready(&d).start(&Options::default()).await.unwrap_err();
        assert!(err.contains("exited"), "{err}");
        assert!(err.contains("error: no model"), "{err}");
        // It was told the model, the template, a private port and the alias.
        assert!(err.contains("--chat-template-file"), "{err}");
        assert!(err.contains(&format!("-a {MODEL_ALIAS}")), "{err}");
        assert!(err.contains("--host 127.0.0.1 --port "), "{err}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn a_server_never_healthy_times_out_and_is_killed() {
        let d = scratch("hangs");
        let pidfile = d.join("pid");
        script(
            &d.join("bin/llama-server"),
            &format!("echo $$ > {}; exec sleep 600", pidfile.display()),
        );
        fake_model(&d);
        std::fs::write(d.join("templates").join(TEMPLATE_FILE), "t").unwrap();
        let options = Options {
            start_timeout: Duration::from_millis(500),
            ..Options::default()
        };
        let err = ready(&d)
            .start_on(free_port().unwrap(), &options)
            .await
            .unwrap_err();
        assert!(err.contains("not healthy within"), "{err}");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let proc = PathBuf::from(format!("/proc/{}", pid.trim()));
        // Gone, or at most a zombie being reaped.
        let alive = std::fs::read_to_string(proc.join("stat")).is_ok_and(|s| !s.contains(") Z "));
        assert!(!alive, "the server {} outlived its handle", pid.trim());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn health_is_read_over_plain_http() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for status in ["503 Service Unavailable", "200 OK"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await.unwrap();
                let body = r#"{"status":"ok"}"#;
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        assert_eq!(http_get(port, "/health").await.unwrap().0, 503);
        let (status, body) = http_get(port, "/health").await.unwrap();
        assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    }

    #[test]
    fn the_kernels_settings_point_at_the_server_alone() {
        let server = LocalServer {
            child: Command::new("true").spawn().unwrap(),
            port: 41234,
            log: std::env::temp_dir().join("agentos-local-llm-test-none.log"),
            _autodetect: None,
        };
        assert_eq!(
            server.models_toml(),
            "[local]\nollama = \"off\"\nllama-server = \"http://127.0.0.1:41234\"\n"
        );
    }

    /// With the real model (CI has it): one server for the process, with its 4 slots.
    #[tokio::test]
    async fn the_shared_server_is_one_per_process() {
        // This file is also compiled into other crates' tests: start the model here only.
        if env!("CARGO_PKG_NAME") != "agentos-tests" {
            return;
        }
        let Some(llm) = or_skip() else {
            return;
        };
        let (a, b) = tokio::join!(llm.shared(), llm.shared());
        let url = a.unwrap();
        assert_eq!(Ok(&url), b.as_ref());
        assert_eq!(llm.shared().await.as_ref(), Ok(&url));
        let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
        assert!(port != AUTODETECT_PORT);
        let (status, props) = http_get(port, "/props").await.unwrap();
        assert_eq!(status, 200, "{props}");
        assert!(props.contains("\"total_slots\":4"), "{props}");
    }

    #[tokio::test]
    async fn the_autodetected_port_is_taken_by_one_test_at_a_time() {
        let d = scratch("lock");
        let path = d.join("port.lock");
        let held = lock_file(&path, Duration::from_secs(1)).await.unwrap();
        let err = lock_file(&path, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(err.contains("port.lock is still held"), "{err}");
        let waiter = tokio::spawn({
            let path = path.clone();
            async move { lock_file(&path, Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(held);
        assert!(waiter.await.unwrap().is_ok());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn free_ports_are_never_the_autodetected_ones() {
        for _ in 0..20 {
            let p = free_port().unwrap();
            assert!(p != AUTODETECT_PORT && p != 11434);
        }
    }
}

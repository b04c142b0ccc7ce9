//! A test environment: temp dirs, a private bus, the kernel, agent manifests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agentos_dbus_interfaces::proxies::Kernel1Proxy;
use agentos_dbus_interfaces::{names, TaskInfo, TaskState};

use crate::TIMEOUT;

/// A binary of this workspace, next to the test executable's `deps/` folder.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// A private channel (`Kernel1.OpenChannel`) opened by whoever `conn` is (the user's tools, an
/// emulated app), on a connection of its own.
pub async fn channel_on(
    conn: &zbus::Connection,
) -> (
    zbus::Connection,
    agentos_dbus_interfaces::proxies::Channel1Proxy<'static>,
) {
    let fd = Kernel1Proxy::new(conn)
        .await
        .expect("kernel proxy")
        .open_channel()
        .await
        .expect("open a channel");
    let stream = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(fd));
    stream.set_nonblocking(true).expect("nonblocking");
    let stream = tokio::net::UnixStream::from_std(stream).expect("tokio stream");
    let channel = zbus::connection::Builder::unix_stream(stream)
        .p2p()
        .build()
        .await
        .expect("channel connection");
    let proxy = agentos_dbus_interfaces::proxies::Channel1Proxy::builder(&channel)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .expect("channel proxy");
    (channel, proxy)
}

/// A private bus and a kernel on it.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub address: String,
    dbus: Child,
    kernel: Option<Child>,
    /// Desktop services started for the test (stopped on drop).
    services: Vec<Child>,
    /// The X display of the test's desktop, when it has one.
    pub display: Option<String>,
    /// Seconds the kernel gives the user to answer (applies from the next kernel start).
    pub consent_timeout: u32,
    pub conn: zbus::Connection,
}

/// Which real desktop services a test needs besides the bus.
#[derive(Debug, Default, Clone, Copy)]
pub struct Services {
    /// `/usr/libexec/xdg-permission-store`, started before the kernel.
    pub permission_store: bool,
    /// An X display (Xvfb) with `xdg-desktop-portal-gtk` on it, and a kernel that believes it
    /// runs on GNOME (so it finds that backend for its Access dialogs).
    pub desktop_portal: bool,
    /// `/usr/libexec/xdg-document-portal` (needs /dev/fuse), mounted at `$XDG_RUNTIME_DIR/doc`.
    pub document_portal: bool,
}

impl Env {
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }
    /// The running kernel's process id.
    pub fn kernel_pid(&self) -> Option<u32> {
        self.kernel.as_ref().map(Child::id)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }
    pub fn agents_dir(&self) -> PathBuf {
        self.root().join("agents")
    }
    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    /// A bus, manifests for the built-in agents and two test agents, and a running kernel.
    pub async fn start() -> Env {
        Env::start_with(Services::default()).await
    }

    /// Like [`start`](Env::start), with real desktop services on the bus too.
    pub async fn start_with(services: Services) -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        for d in [
            "run",
            "home/Documents",
            "agents",
            "data",
            "config",
            "xdg-data",
        ] {
            std::fs::create_dir_all(tmp.path().join(d)).expect("mkdir");
        }
        // No model server is looked for on the usual ports (a developer's own Ollama or
        // llama-server, or another test's, must not answer this test's kernel): a test that
        // wants a model writes its own models.toml (`local_llm::LocalServer::models_toml`, or
        // one naming a fixture) and restarts the kernel.
        std::fs::create_dir_all(tmp.path().join("config/agentos")).expect("mkdir");
        std::fs::write(
            tmp.path().join("config/agentos/models.toml"),
            "[local]\nollama = \"off\"\nllama-server = \"off\"\n",
        )
        .expect("models.toml");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            tmp.path().join("run"),
            std::fs::Permissions::from_mode(0o700),
        )
        .expect("chmod");
        let mut dbus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!(
                "--address=unix:path={}",
                tmp.path().join("bus").display()
            ))
            // The bus's own environment points at the test's dirs, so a service it activates
            // never touches the developer's files (and finds no service files to activate).
            .env_clear()
            .envs(isolated_env(tmp.path()))
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon (apt-get install dbus)");
        let mut line = String::new();
        BufReader::new(dbus.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("bus address");
        let address = line.trim().to_string();
        let conn = zbus::connection::Builder::address(address.as_str())
            .expect("address")
            .build()
            .await
            .expect("connect to the private bus");
        let mut env = Env {
            tmp,
            address,
            dbus,
            kernel: None,
            services: Vec::new(),
            display: None,
            consent_timeout: 10,
            conn,
        };
        let tester = bin("agentos-test-agent");
        env.write_manifest(
            "tester",
            &tester,
            &["files.read", "files.list", "web.fetch", "agent.delegate"],
        );
        env.write_manifest(
            "helper",
            &tester,
            &["files.read", "files.list", "web.fetch", "agent.delegate"],
        );
        env.write_manifest("narrow", &tester, &[]);
        env.write_manifest_with(
            "caged",
            &tester,
            &["files.read", "files.list", "web.fetch"],
            true,
        );
        // The built-in agents run sandboxed, as they are shipped, wherever bubblewrap works.
        let sandbox = crate::bwrap_works();
        let docs = format!(
            "id = \"docs\"\nname = \"Documents\"\ndescription = \"Finds documents\"\nexec = \"agentos-agent-docs\"\ncapabilities = [\"files.list\", \"files.read\"]\nsandbox = {sandbox}\n"
        );
        std::fs::write(env.agents_dir().join("docs.toml"), docs).expect("manifest");
        let web = format!("id = \"web\"\nname = \"Web\"\nexec = \"agentos-agent-web\"\ncapabilities = [\"web.fetch\"]\nsandbox = {sandbox}\n");
        std::fs::write(env.agents_dir().join("web.toml"), web).expect("manifest");
        if services.permission_store {
            let store =
                env.service(Command::new("/usr/libexec/xdg-permission-store").arg("--replace"));
            env.services.push(store);
            env.wait_for_name("org.freedesktop.impl.portal.PermissionStore")
                .await;
        }
        if services.document_portal {
            let portal = env.service(&mut Command::new("/usr/libexec/xdg-document-portal"));
            env.services.push(portal);
            env.wait_for_name("org.freedesktop.portal.Documents").await;
        }
        if services.desktop_portal {
            env.start_desktop().await;
        }
        env.start_kernel().await;
        env
    }

    /// Xvfb on a free display, then the GTK portal backend on it and on the test's bus.
    async fn start_desktop(&mut self) {
        let n = crate::display::free_display().expect("a free X display number");
        let display = format!(":{n}");
        let xvfb = self.service(Command::new("Xvfb").args([
            display.as_str(),
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ]));
        self.services.push(xvfb);
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
            assert!(std::time::Instant::now() < deadline, "Xvfb did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let portal = self.service(
            Command::new("/usr/libexec/xdg-desktop-portal-gtk")
                .env("DISPLAY", &display)
                .env("GDK_BACKEND", "x11")
                .env("GSK_RENDERER", "cairo")
                // GSettings schemas and icons live in the system's data dirs; no a11y bus here.
                .env("XDG_DATA_DIRS", "/usr/share")
                .env("NO_AT_BRIDGE", "1"),
        );
        self.services.push(portal);
        self.display = Some(display);
        self.wait_for_name("org.freedesktop.impl.portal.desktop.gtk")
            .await;
    }

    /// A command run in the test's isolated environment on its bus.
    pub fn service(&self, cmd: &mut Command) -> Child {
        isolate(self, cmd).spawn().expect("start a desktop service")
    }

    /// Run a command to completion in the test's isolated environment on its bus (variables set
    /// on `cmd` are kept).
    pub fn run(&self, cmd: &mut Command) -> std::process::Output {
        isolate(self, cmd).output().expect("run a command")
    }

    /// Store `key` for a model provider of `kind` at `base` (under `account`, or the default
    /// one) in the test's keyring, as a user would: `agentctl models add`, the key on its stdin.
    pub fn add_model_key(&self, kind: &str, account: Option<&str>, base: &str, key: &str) {
        let out = self.run(
            Command::new("sh")
                .arg("-c")
                .arg(r#"printf %s "$KEY" | "$AGENTCTL" --address "$ADDRESS" models add "$KIND" --account "$ACCOUNT" --base-url "$BASE""#)
                .env("KEY", key)
                .env("AGENTCTL", bin("agentctl"))
                .env("ADDRESS", &self.address)
                .env("KIND", kind)
                .env("ACCOUNT", account.unwrap_or("default"))
                .env("BASE", base),
        );
        assert!(
            out.status.success(),
            "models add {kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Wait until `name` has an owner on the bus.
    pub async fn wait_for_name(&self, name: &str) {
        let dbus = zbus::fdo::DBusProxy::new(&self.conn)
            .await
            .expect("dbus proxy");
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let bus_name = zbus::names::BusName::try_from(name).expect("name");
            if dbus.name_has_owner(bus_name).await.unwrap_or(false) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} did not appear in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn write_manifest(&self, id: &str, exec: &Path, caps: &[&str]) {
        self.write_manifest_with(id, exec, caps, false);
    }

    /// A manifest that may ask for the kernel to run the agent under bubblewrap.
    pub fn write_manifest_with(&self, id: &str, exec: &Path, caps: &[&str], sandbox: bool) {
        let caps: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
        let text = format!(
            "id = \"{id}\"\nname = \"Test {id}\"\ndescription = \"A scripted test agent\"\nexec = \"{}\"\ncapabilities = [{}]\nsandbox = {sandbox}\n",
            exec.display(),
            caps.join(", ")
        );
        std::fs::write(self.agents_dir().join(format!("{id}.toml")), text).expect("manifest");
    }

    /// The command that starts a kernel on this bus.
    pub fn kernel_command(&self) -> Command {
        let mut cmd = Command::new(bin("agentosd"));
        cmd.arg("--address")
            .arg(&self.address)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--agents-dir")
            .arg(self.agents_dir())
            // The test agents' manifests ask to run unsandboxed from a folder the test user
            // owns: trusted for the tests alone (the kernel's option for tests and development).
            .arg("--trust-agents-dir")
            .arg(self.agents_dir())
            .arg("--consent-timeout")
            .arg(self.consent_timeout.to_string())
            .env_clear()
            .envs(isolated_env(self.root()))
            .env("RUST_LOG", "warn");
        if self.display.is_some() {
            // The desktop's portal files, as a GNOME session has them.
            cmd.env("XDG_CURRENT_DESKTOP", "GNOME")
                .env("XDG_DATA_DIRS", "/usr/share");
        }
        cmd
    }

    /// Start the kernel and wait until it owns its name.
    pub async fn start_kernel(&mut self) {
        self.start_kernel_with(self.kernel_command()).await;
    }

    /// Start the kernel with `cmd` (built from [`kernel_command`](Env::kernel_command), perhaps
    /// wrapped) and wait until it owns its name.
    pub async fn start_kernel_with(&mut self, mut cmd: Command) {
        let dbus = zbus::fdo::DBusProxy::new(&self.conn)
            .await
            .expect("dbus proxy");
        let name = || zbus::names::BusName::try_from(names::KERNEL_BUS_NAME).expect("name");
        // A kernel just stopped may own the name a moment longer (the bus has not yet seen it
        // go): the new one is a different owner.
        let before = dbus.get_name_owner(name()).await.ok();
        let child = cmd.spawn().expect("agentosd");
        self.kernel = Some(child);
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if let Ok(owner) = dbus.get_name_owner(name()).await {
                if Some(&owner) != before.as_ref() {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.kernel.as_mut().map(|k| k.try_wait()) {
                panic!("agentosd exited ({status}) before it took its name");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "agentosd did not take its name in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Write the kernel's model settings (`models.toml`) and restart it to read them.
    pub async fn restart_with_model_settings(&mut self, settings: &str) {
        let dir = self.root().join("config/agentos");
        std::fs::create_dir_all(&dir).expect("config dir");
        std::fs::write(dir.join("models.toml"), settings).expect("models.toml");
        self.restart_kernel().await;
    }

    /// Stop the kernel cleanly (SIGTERM, which must succeed) and start it again.
    pub async fn restart_kernel(&mut self) {
        assert!(self.stop_kernel("TERM").await.success());
        self.start_kernel().await;
    }

    /// The ids of the agents the kernel lists.
    pub async fn agent_ids(&self) -> Vec<String> {
        let agents = self.kernel().await.list_agents().await.expect("ListAgents");
        agents.into_iter().map(|a| a.id).collect()
    }

    /// Send a signal to the kernel and wait for it to exit; returns its exit status.
    pub async fn stop_kernel(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self.kernel.take().expect("a running kernel");
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "agentosd did not exit"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn kernel(&self) -> Kernel1Proxy<'static> {
        Kernel1Proxy::new(&self.conn).await.expect("kernel proxy")
    }

    /// Delegate as the user and return the task id.
    pub async fn delegate(&self, agent: &str, goal: &str) -> u64 {
        let path = self
            .kernel()
            .await
            .delegate(agent, goal, Default::default())
            .await
            .expect("delegate");
        names::task_id_from_path(path.as_str()).expect("task path")
    }

    /// Delegate as the user and wait until the task has finished.
    pub async fn run_task(&self, agent: &str, goal: &str) -> TaskInfo {
        self.wait_task(self.delegate(agent, goal).await).await
    }

    /// Wait until an agent is connected to the kernel.
    pub async fn wait_agent_connected(&self, id: &str) {
        let k = self.kernel().await;
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while !k
            .list_agents()
            .await
            .is_ok_and(|a| a.iter().any(|a| a.id == id && a.connected))
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "agent {id} did not connect in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A private channel to the kernel (`Kernel1.OpenChannel`), on a connection of its own.
    pub async fn channel(
        &self,
    ) -> (
        zbus::Connection,
        agentos_dbus_interfaces::proxies::Channel1Proxy<'static>,
    ) {
        channel_on(&self.conn).await
    }

    /// Wait until a task has finished.
    pub async fn wait_task(&self, id: u64) -> TaskInfo {
        self.wait_state(id, |s| s.is_terminal()).await
    }

    /// Wait until a task's state satisfies `f`.
    pub async fn wait_state(&self, id: u64, f: impl Fn(TaskState) -> bool) -> TaskInfo {
        let k = self.kernel().await;
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if let Ok(t) = k.get_task(id).await {
                if TaskState::parse(&t.state).is_some_and(&f) {
                    return t;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "task {id} did not reach the state in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait for some task with this parent to appear.
    pub async fn wait_child(&self, parent: u64) -> TaskInfo {
        let k = self.kernel().await;
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let tasks = k.list_tasks(100).await.expect("list");
            if let Some(t) = tasks.into_iter().find(|t| t.parent == parent) {
                return t;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no child of {parent} appeared"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Run `agentctl` against this bus.
    pub fn agentctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin("agentctl"))
            .arg("--address")
            .arg(&self.address)
            .args(args)
            .output()
            .expect("agentctl")
    }
}

/// Give `cmd` the test's isolated environment and bus, keeping variables set on it.
fn isolate<'c>(env: &Env, cmd: &'c mut Command) -> &'c mut Command {
    let extra: Vec<(std::ffi::OsString, std::ffi::OsString)> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_os_string(), v?.to_os_string())))
        .collect();
    cmd.env_clear()
        .envs(isolated_env(env.root()))
        .env("DBUS_SESSION_BUS_ADDRESS", &env.address)
        .envs(extra)
}

/// The environment of every process a test starts: its own home, data, config and runtime dirs.
fn isolated_env(root: &Path) -> Vec<(&'static str, std::ffi::OsString)> {
    vec![
        ("PATH", std::env::var_os("PATH").unwrap_or_default()),
        ("HOME", root.join("home").into()),
        ("XDG_DATA_HOME", root.join("xdg-data").into()),
        ("XDG_DATA_DIRS", root.join("none").into()),
        ("XDG_CONFIG_HOME", root.join("config").into()),
        ("XDG_RUNTIME_DIR", root.join("run").into()),
    ]
}

/// Stop a service: SIGTERM first, so that it cleans up after itself (Xvfb removes its lock file
/// and socket), then SIGKILL if it is still there after a second.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Env {
    fn drop(&mut self) {
        // Unmount the Documents portal's FUSE file system before its temp dir goes.
        let doc = self.root().join("run/doc");
        if doc.exists() {
            let _ = Command::new("fusermount3").arg("-u").arg(&doc).status();
        }
        for mut s in self.services.drain(..) {
            stop(&mut s);
        }
        if let Some(mut k) = self.kernel.take() {
            let _ = k.kill();
            let _ = k.wait();
        }
        let _ = self.dbus.kill();
        let _ = self.dbus.wait();
    }
}

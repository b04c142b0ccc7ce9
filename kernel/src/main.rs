//! `agentosd`: the AgentOS kernel daemon.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentos_kernel::bus::{self, StartError};
use agentos_kernel::clock::SystemClock;
use agentos_kernel::{Config, Kernel};
use agentos_portal::xdg::BaseDirs;
use anyhow::Context;
use clap::Parser;

/// The kernel relays every call and allocates for each message: mimalloc's thread-local free
/// lists cost less per allocation than glibc's arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The AgentOS kernel: owns org.agentos.Kernel on the session bus.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// D-Bus address to use instead of the session bus.
    #[arg(long)]
    address: Option<String>,
    /// Where the database and artifacts are kept (default: $XDG_DATA_HOME/agentos).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// An extra directory of agent manifests, searched first (repeatable).
    #[arg(long = "agents-dir")]
    agents_dirs: Vec<PathBuf>,
    /// A directory where manifests' bare `exec` names are found (repeatable; default: next to agentosd).
    #[arg(long = "exec-dir")]
    exec_dirs: Vec<PathBuf>,
    /// A directory whose manifests may ask to run their agent unsandboxed although the user can
    /// write it (repeatable). For tests and development only: anything able to write there
    /// could run a program unsandboxed.
    #[arg(long = "trust-agents-dir")]
    trusted_agent_dirs: Vec<PathBuf>,
    /// Seconds the user has to answer a consent prompt.
    #[arg(long, default_value_t = 120)]
    consent_timeout: u64,
    /// Default time limit of a task, in seconds.
    #[arg(long, default_value_t = 600)]
    task_timeout: u64,
}

fn main() -> anyhow::Result<()> {
    // One thread decides and routes. Blocking work (zbus's connect, file tools) borrows the
    // blocking pool, whose threads stay parked rather than wake to exit after 10 s idle: an idle
    // kernel has no timer at all.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_keep_alive(Duration::MAX)
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    agentos_kernel::logging::init();
    let xdg_dirs = BaseDirs::from_process_env();
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => xdg_dirs
            .data_home()
            .context("neither XDG_DATA_HOME nor HOME is an absolute path")?
            .join("agentos"),
    };
    let mut exec_dirs = args.exec_dirs;
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
    {
        exec_dirs.push(dir);
    }
    let config = Config {
        agent_dirs: agentos_kernel::discovery::agent_dirs(&args.agents_dirs, &xdg_dirs),
        exec_dirs,
        trusted_agent_dirs: args.trusted_agent_dirs,
        consent_timeout: Duration::from_secs(args.consent_timeout),
        task_timeout: Duration::from_secs(args.task_timeout),
        documents_dir: xdg_dirs.documents_dir(),
        desktop_access: agentos_kernel::desktop_portal::find_access_backend(),
        data_dir: data_dir.clone(),
    };
    let store = agentos_data::Store::open(&data_dir)
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let kernel = Kernel::new(config, Arc::new(SystemClock), store, bus::host_server())?;
    // Grants given record what their agent is; a grant to a changed agent confirms the change.
    kernel.follow_agent_changes();
    // SIGTERM is handled from before the name is taken: a stop right after the start (a
    // service manager's, a test's) still shuts down cleanly.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let conn = match bus::serve(&kernel, args.address.as_deref()).await {
        Ok(c) => c,
        Err(StartError::NameTaken) => {
            eprintln!("agentosd: another agentosd already owns org.agentos.Kernel on this bus; not starting a second one");
            std::process::exit(3);
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(agents = kernel.agent_count(), data = %data_dir.display(), "agentosd ready");
    agentos_kernel::permission_store::start(&kernel);
    // Tasks time out as their deadlines pass; with none pending, nothing wakes the kernel.
    let deadlines = tokio::spawn(Kernel::watch_deadlines(kernel.downgrade()));
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
    }
    deadlines.abort();
    let _ = conn
        .release_name(agentos_dbus_interfaces::names::KERNEL_BUS_NAME)
        .await;
    kernel.shut_down("interrupted: the kernel was stopped");
    Ok(())
}

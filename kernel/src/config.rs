//! Settings of a kernel instance, and the time limits it applies, each named once.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of a kernel instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the database and artifacts live.
    pub data_dir: PathBuf,
    /// Manifest directories, in order of precedence.
    pub agent_dirs: Vec<PathBuf>,
    /// Where bare `exec` names of manifests are looked up.
    pub exec_dirs: Vec<PathBuf>,
    /// Manifest directories whose manifests may ask to run unsandboxed although the user can
    /// write them (`--trust-agents-dir`: for tests and development only).
    pub trusted_agent_dirs: Vec<PathBuf>,
    /// How long the user has to answer a consent prompt.
    pub consent_timeout: Duration,
    /// Default time limit of a task.
    pub task_timeout: Duration,
    /// The user's documents folder, passed to agents as context.
    pub documents_dir: Option<PathBuf>,
    /// The desktop's portal backend for the Access dialog, used when the panel is not running.
    pub desktop_access: Option<String>,
}

/// How long a launched agent has to complete the D-Bus handshake on its socket.
pub const AGENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an agent has to accept a task handed to it (`AgentService1.Start`).
pub const AGENT_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an agent has to answer a direct call (`Agent1.Call`, `Channel1.Call`).
pub const AGENT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the kernel waits for an agent to acknowledge a cancellation (best effort).
pub const AGENT_CANCEL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client's private channel has to complete its handshake.
pub const CHANNEL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the reply to a model request that starts at once may wait for the provider's
/// request to leave (on a kept connection, well under a millisecond; a new connection to a
/// remote provider is not waited for).
pub const SENT_WAIT: Duration = Duration::from_millis(5);
/// The longest time limit a delegation may ask for, in seconds.
pub const MAX_TASK_TIMEOUT_S: u32 = 86_400;
/// How long task changes wait before they are written to the store together.
pub const TASK_WRITE_TURN: Duration = Duration::from_millis(200);
/// How long after start the kernel hands its code pages back to the page cache (`trim.rs`):
/// start-up's code (migrations, manifests, the audit check) is not needed again.
pub const TRIM_AFTER_START: Duration = Duration::from_secs(3);
/// How long after its last task or model request ended the kernel hands its code pages back.
/// What work mapped is what the next request runs, and mapping it back costs that request about
/// 80 minor faults, 1–4 ms on a two-core VM (B2's request after a rest, `B2_REST_SECS=601`):
/// so only a kernel left alone for ten minutes gives it up, and a user's questions minutes
/// apart, or an agent's, find it mapped.
pub const TRIM_AFTER_WORK: Duration = Duration::from_secs(600);

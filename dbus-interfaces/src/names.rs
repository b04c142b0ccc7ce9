//! Bus names, interface names, object paths and limits that every party agrees on.

/// The well-known name the kernel owns on the session bus.
pub const KERNEL_BUS_NAME: &str = "org.agentos.Kernel";
/// The kernel's root object.
pub const KERNEL_PATH: &str = "/org/agentos/Kernel";
/// Parent of the per-agent objects.
pub const AGENTS_PATH: &str = "/org/agentos/Kernel/agents";
/// Parent of the per-task objects.
pub const TASKS_PATH: &str = "/org/agentos/Kernel/tasks";
/// Where an agent serves `org.agentos.AgentService1` on its private connection.
pub const AGENT_SERVICE_PATH: &str = "/org/agentos/Agent";

pub const KERNEL_IFACE: &str = "org.agentos.Kernel1";
pub const AGENT_IFACE: &str = "org.agentos.Agent1";
pub const TASK_IFACE: &str = "org.agentos.Task1";
pub const HOST_IFACE: &str = "org.agentos.Host1";
pub const AGENT_SERVICE_IFACE: &str = "org.agentos.AgentService1";
pub const CHANNEL_IFACE: &str = "org.agentos.Channel1";
/// The one scope of `model.use` ("ask questions of the AI models served by AgentOS").
pub const MODEL_USE_SCOPE: &str = "AgentOS";
/// Model inference for bus callers, served at [`KERNEL_PATH`].
pub const MODELS_IFACE: &str = "org.agentos.Models1";

/// The name a consent provider (the panel, or a test responder) owns. It serves
/// `org.freedesktop.impl.portal.Access` at [`CONSENT_PATH`].
pub const CONSENT_BUS_NAME: &str = "org.agentos.Consent";
/// Object path of the Access implementation, as for portal backends.
pub const CONSENT_PATH: &str = "/org/freedesktop/portal/desktop";
/// The Access interface of the portal backends.
pub const ACCESS_IFACE: &str = "org.freedesktop.impl.portal.Access";

/// Environment variable naming the inherited fd of a kernel-launched agent's private socket.
pub const AGENT_FD_ENV: &str = "AGENTOS_KERNEL_FD";
/// Environment variable carrying a launched agent's id (informational; identity is the socket).
pub const AGENT_ID_ENV: &str = "AGENTOS_AGENT_ID";

/// Longest goal text accepted.
pub const MAX_GOAL_LEN: usize = 64 * 1024;
/// Longest result text accepted.
pub const MAX_RESULT_LEN: usize = 1024 * 1024;
/// Longest short string (ids, capability names, scopes, messages) accepted.
pub const MAX_NAME_LEN: usize = 4096;
/// Largest payload of `Agent1.Call`.
pub const MAX_CALL_PAYLOAD: usize = 1024 * 1024;

/// The object path of an agent, with the id escaped to path characters.
pub fn agent_path(id: &str) -> String {
    format!("{AGENTS_PATH}/{}", escape_path_element(id))
}

/// The object path of a task.
pub fn task_path(id: u64) -> String {
    format!("{TASKS_PATH}/{id}")
}

/// The task id in a task object path, if it is one.
pub fn task_id_from_path(path: &str) -> Option<u64> {
    path.strip_prefix(TASKS_PATH)?
        .strip_prefix('/')?
        .parse()
        .ok()
}

/// Escape an arbitrary string into one object path element: `[A-Za-z0-9]` stay, every other byte
/// becomes `_XX` (lowercase hex), as systemd does. The empty string becomes `_`.
pub fn escape_path_element(s: &str) -> String {
    if s.is_empty() {
        return "_".into();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// Is `id` a valid agent id: 1..=255 bytes of `[A-Za-z0-9._-]`, starting with a letter or digit.
pub fn is_valid_agent_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// Is `p` a valid principal for grants: an agent or Flatpak app id, or `host:<app id>` for a
/// host app.
pub fn is_valid_principal(p: &str) -> bool {
    is_valid_agent_id(p.strip_prefix("host:").unwrap_or(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_escape_and_round_trip() {
        assert_eq!(
            agent_path("org.example.Docs"),
            "/org/agentos/Kernel/agents/org_2eexample_2eDocs"
        );
        assert_eq!(escape_path_element(""), "_");
        assert_eq!(task_id_from_path(&task_path(42)), Some(42));
        assert_eq!(task_id_from_path("/org/agentos/Kernel/tasks/x"), None);
        assert!(zbus::zvariant::ObjectPath::try_from(agent_path("a/../b é")).is_ok());
    }

    #[test]
    fn agent_ids() {
        assert!(is_valid_agent_id("docs"));
        assert!(is_valid_agent_id("org.example.Agent"));
        assert!(!is_valid_agent_id(""));
        assert!(!is_valid_agent_id("-x"));
        assert!(!is_valid_agent_id("a/b"));
        assert!(!is_valid_agent_id(&"a".repeat(256)));
        assert!(is_valid_principal("host:org.gnome.Maps"));
        assert!(!is_valid_principal("host:"));
        assert!(!is_valid_principal("host:../x"));
    }
}

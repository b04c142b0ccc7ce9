//! Who asks the kernel to do something, as established from the connection a call came on.

use crate::authorize::Subject;

/// Who asks the kernel to do something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The user's own host processes (agentctl, the panel).
    Host,
    /// A host process in a desktop app's systemd unit, by principal (`host:<app id>`).
    HostApp(String),
    /// A sandboxed app, by app id.
    App(String),
    /// An agent, acting for one of its tasks.
    Agent { id: String, task: u64 },
}

impl Caller {
    /// How a prompt names an app caller.
    pub fn display_name(&self) -> String {
        match self {
            Caller::Host => "you".into(),
            Caller::HostApp(p) => format!(
                "{} (an app outside any sandbox)",
                p.trim_start_matches("host:")
            ),
            Caller::App(id) => format!("{id} (a sandboxed app)"),
            Caller::Agent { id, .. } => id.clone(),
        }
    }

    /// The subject of a check for an app caller (no task, no manifest ceiling).
    pub fn app_subject(&self, purpose: String) -> Subject {
        Subject {
            chain: vec![self.principal().to_string()],
            declared: true,
            delegators_declare: false,
            task: None,
            purpose,
            display_name: self.display_name(),
            arguments: None,
            why: None,
        }
    }

    pub fn principal(&self) -> &str {
        match self {
            Caller::Host => "host",
            Caller::HostApp(principal) => principal,
            Caller::App(id) => id,
            Caller::Agent { id, .. } => id,
        }
    }

    /// The user's own tools: host processes, in a desktop app's unit or not.
    pub fn is_users_tool(&self) -> bool {
        matches!(self, Caller::Host | Caller::HostApp(_))
    }
}

//! Value types that cross the bus, with their D-Bus signatures.

use serde::{Deserialize, Serialize};
use zbus::zvariant::{OwnedObjectPath, Type};

/// A task's place in the A2A task lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    Submitted,
    Working,
    InputRequired,
    AuthRequired,
    Completed,
    Failed,
    Canceled,
    Rejected,
}

impl TaskState {
    pub const ALL: [TaskState; 8] = [
        TaskState::Submitted,
        TaskState::Working,
        TaskState::InputRequired,
        TaskState::AuthRequired,
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Canceled,
        TaskState::Rejected,
    ];

    /// The wire name (A2A spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Submitted => "submitted",
            TaskState::Working => "working",
            TaskState::InputRequired => "input-required",
            TaskState::AuthRequired => "auth-required",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Canceled => "canceled",
            TaskState::Rejected => "rejected",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A finished task never changes state again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Canceled | TaskState::Rejected
        )
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a grant lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifetime {
    /// For one call only.
    Once,
    /// Until the user logs out (the kernel's session ends).
    Session,
    /// Until revoked; stored.
    Always,
}

impl Lifetime {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifetime::Once => "once",
            Lifetime::Session => "session",
            Lifetime::Always => "always",
        }
    }

    pub fn parse(s: &str) -> Option<Lifetime> {
        match s {
            "once" => Some(Lifetime::Once),
            "session" => Some(Lifetime::Session),
            "always" => Some(Lifetime::Always),
            _ => None,
        }
    }
}

/// An entry of `Kernel1.ListAgents`: `(sssoasasb)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct AgentInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    pub path: OwnedObjectPath,
    pub capabilities: Vec<String>,
    pub handles: Vec<String>,
    pub connected: bool,
}

/// A task as `Kernel1.ListTasks` reports it: `(ttssssdsstt)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct TaskInfo {
    pub id: u64,
    /// 0 for a top-level task.
    pub parent: u64,
    pub agent: String,
    pub caller: String,
    pub goal: String,
    /// A [`TaskState`] wire name.
    pub state: String,
    pub progress: f64,
    pub message: String,
    pub result: String,
    /// Milliseconds since the Unix epoch.
    pub created: u64,
    pub updated: u64,
}

/// A live grant: `(sssst)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct GrantInfo {
    pub principal: String,
    pub capability: String,
    pub scope: String,
    /// A [`Lifetime`] wire name.
    pub lifetime: String,
    pub granted_at: u64,
}

/// An audit record: `(ttssssss)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct AuditRecord {
    pub seq: u64,
    pub time: u64,
    pub principal: String,
    pub capability: String,
    pub scope: String,
    pub decision: String,
    pub reason: String,
    pub hash: String,
}

/// What an audit record says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditDecision {
    /// A call or delegation went ahead.
    Allow,
    /// A call or delegation was refused.
    Deny,
    /// The user gave a grant.
    Grant,
    /// A grant was taken away (by the user, or from the desktop's permission store).
    Revoke,
    /// Records that could not be verified were kept aside at start.
    Damaged,
    /// A grant was suspended: its agent's manifest or program changed since it was given (kept,
    /// not honoured, until the user confirms the change).
    Suspend,
    /// The user confirmed an agent's change (by giving it a grant): its suspended grants are
    /// honoured again.
    Confirm,
}

impl AuditDecision {
    pub const ALL: [AuditDecision; 7] = [
        AuditDecision::Allow,
        AuditDecision::Deny,
        AuditDecision::Grant,
        AuditDecision::Revoke,
        AuditDecision::Damaged,
        AuditDecision::Suspend,
        AuditDecision::Confirm,
    ];

    /// The wire name, as `AuditRecord::decision` carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditDecision::Allow => "allow",
            AuditDecision::Deny => "deny",
            AuditDecision::Grant => "grant",
            AuditDecision::Revoke => "revoke",
            AuditDecision::Damaged => "damaged",
            AuditDecision::Suspend => "suspend",
            AuditDecision::Confirm => "confirm",
        }
    }

    pub fn parse(s: &str) -> Option<AuditDecision> {
        AuditDecision::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// A consent request waiting for the user's answer: `(tssstssst)`: id, principal (who asks),
/// capability, scope, task (0 for none), title, subtitle, body (as the dialog shows them), since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ConsentRequestInfo {
    pub id: u64,
    pub principal: String,
    pub capability: String,
    pub scope: String,
    pub task: u64,
    pub title: String,
    pub subtitle: String,
    pub body: String,
    /// Milliseconds since the Unix epoch.
    pub since: u64,
}

/// An artifact of a task: `(sst)`: name, SHA-256 hex, size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ArtifactInfo {
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

/// A tool as `Host1.ListTools` describes it: `(ssssb)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ToolInfo {
    pub name: String,
    /// The capability a call needs.
    pub capability: String,
    pub description: String,
    /// The JSON Schema of its arguments, as text.
    pub parameters: String,
    /// Whether the asking agent's manifest declares the capability.
    pub declared: bool,
}

/// A directory entry from `Host1.ListFiles`: `(sbt)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct FileEntry {
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::Type;

    #[test]
    fn signatures_match_the_xml() {
        assert_eq!(AgentInfo::SIGNATURE.to_string(), "(sssoasasb)");
        assert_eq!(TaskInfo::SIGNATURE.to_string(), "(ttssssdsstt)");
        assert_eq!(GrantInfo::SIGNATURE.to_string(), "(sssst)");
        assert_eq!(AuditRecord::SIGNATURE.to_string(), "(ttssssss)");
        assert_eq!(ArtifactInfo::SIGNATURE.to_string(), "(sst)");
        assert_eq!(FileEntry::SIGNATURE.to_string(), "(sbt)");
        assert_eq!(ToolInfo::SIGNATURE.to_string(), "(ssssb)");
        assert_eq!(ConsentRequestInfo::SIGNATURE.to_string(), "(tssstssst)");
    }

    #[test]
    fn states_round_trip() {
        for st in TaskState::ALL {
            assert_eq!(TaskState::parse(st.as_str()), Some(st));
        }
        assert_eq!(TaskState::parse("done"), None);
        assert!(TaskState::Canceled.is_terminal());
        assert!(!TaskState::AuthRequired.is_terminal());
        for d in AuditDecision::ALL {
            assert_eq!(AuditDecision::parse(d.as_str()), Some(d));
        }
    }
}

/// A model the broker can serve, as `Models1.ListModels` and `Host1.ListModels` describe it:
/// `(ssbbuu)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ModelInfo {
    /// The provider's name (`ollama`, `llama-server`, `openai`, `anthropic`, `gemini`, or a
    /// stored provider's account).
    pub provider: String,
    /// The model's name at that provider.
    pub model: String,
    /// Served on this machine (the data stays here).
    pub local: bool,
    /// The provider answered when last asked.
    pub reachable: bool,
    /// The context window in tokens, 0 when unknown.
    pub context: u32,
    /// Requests the broker runs on this provider at once.
    pub slots: u32,
}

/// Model use of one principal or task, as `Models1.ListUsage` gives it: `(sstttttt)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct UsageInfo {
    /// `agent`, `app` (a Flatpak or host app), `host` (the user's own tools) or `task`.
    pub kind: String,
    /// The agent id, the app's principal, `host`, or the task id in decimal.
    pub who: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Time the requests held a provider's slot, in milliseconds.
    pub millis: u64,
    /// Estimated cost in millionths of a US dollar (0 for local models).
    pub cost_micros: u64,
    /// Requests to a remote model with no known price: their cost is not in `cost_micros`.
    pub unpriced_requests: u64,
}

//! Delegation: a goal handed to an agent by the user, an app or another agent, checked
//! (`agent.delegate` on the target) and audited before the task exists.

use std::sync::Arc;
use std::time::Duration;

use agentos_dbus_interfaces::{names, AuditDecision, Error};

use super::capability;
use crate::audit_entry::AuditEntry;
use crate::caller::Caller;
use crate::config::MAX_TASK_TIMEOUT_S;
use crate::kernel::{check_text, Kernel};

/// What a delegation says of its task.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TaskOptions {
    /// Its time limit in seconds (the kernel's default if none).
    pub timeout: Option<u32>,
    /// The model its tree's requests ask when they name none (a client's delegation only).
    pub model: Option<String>,
}

impl Kernel {
    /// Delegate a goal to an agent.
    pub async fn delegate(
        self: &Arc<Self>,
        caller: Caller,
        agent: &str,
        goal: &str,
        options: TaskOptions,
    ) -> Result<u64, Error> {
        let timeout_s = options.timeout;
        check_text("goal", goal, names::MAX_GOAL_LEN, false)?;
        check_text("agent id", agent, names::MAX_NAME_LEN, false)?;
        if let Some(t) = timeout_s {
            if !(1..=MAX_TASK_TIMEOUT_S).contains(&t) {
                return Err(Error::InvalidArgument(format!(
                    "timeout must be between 1 and {MAX_TASK_TIMEOUT_S} seconds"
                )));
            }
        }
        if !self.agents.contains(agent) {
            return Err(Error::UnknownAgent(format!(
                "no agent named {agent:?} is installed"
            )));
        }
        // Quotas first: a flood is refused at once, before any work or record.
        let (caller_tasks, agent_tasks) = self.tasks.unfinished_counts(caller.principal(), agent);
        let now = self.now();
        self.quotas()
            .admit_delegation(caller.principal(), agent, caller_tasks, agent_tasks, now)
            .map_err(Error::QuotaExceeded)?;
        let cap = capability("agent.delegate")?;
        match &caller {
            Caller::Host => self.audit(AuditEntry {
                principal: "host",
                capability: cap.name,
                scope: agent,
                decision: AuditDecision::Allow,
                reason: "the user delegated it",
            })?,
            Caller::App(_) | Caller::HostApp(_) => {
                self.authorize(&caller.app_subject(goal.to_string()), cap, agent)
                    .await?;
            }
            Caller::Agent { id, task } => {
                let subject = self.agent_subject(id, *task, cap)?;
                self.authorize(&subject, cap, agent).await?;
            }
        }
        // The model last: only a caller that may delegate learns what the broker serves.
        let model = match options.model {
            Some(model) => Some(self.task_model(&caller, &model).await?),
            None => None,
        };
        self.create_task(
            &caller,
            agent,
            goal,
            timeout_s.map(|s| Duration::from_secs(s.into())),
            model,
        )
    }
}

//! The permission path of every tool call and delegation: policy decision, consent when the
//! policy says ask (`ask`), and an audit record for each outcome.

pub mod ask;
pub mod desk;

use std::sync::Arc;

use agentos_dbus_interfaces::{AuditDecision, Capability, Error};

use crate::audit_entry::AuditEntry;
use crate::kernel::Kernel;
use crate::policy::{Decision, Request};

/// On whose behalf a check is made.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The acting principal, then its delegators, nearest first.
    pub chain: Vec<String>,
    /// Whether the acting principal's manifest declares the capability.
    pub declared: bool,
    /// Whether every agent above it declares the capability too (so the user may be asked to
    /// let the whole chain have it).
    pub delegators_declare: bool,
    /// The task the call is made for, if any (it shows "auth-required" while the user is asked).
    pub task: Option<u64>,
    /// What to show as the reason for the request (the task's goal).
    pub purpose: String,
    /// The acting principal's display name.
    pub display_name: String,
    /// The exact call that asks (a tool's name and its arguments as JSON), shown in the prompt.
    pub arguments: Option<String>,
    /// Why the kernel asks now, in its own words (a remote model: what made it remote), shown
    /// in the prompt after the task.
    pub why: Option<String>,
}

impl Subject {
    /// The acting principal.
    pub fn principal(&self) -> &str {
        self.chain.first().map(String::as_str).unwrap_or_default()
    }

    /// The policy's question: may this subject use `capability` on `scope`.
    pub fn request<'a>(&'a self, capability: &'static Capability, scope: &'a str) -> Request<'a> {
        Request {
            chain: &self.chain,
            capability,
            scope,
            declared: self.declared,
            delegators_declare: self.delegators_declare,
        }
    }
}

impl Kernel {
    /// The subject for an agent acting on one of its tasks; refuses tasks that are not its own
    /// running tasks (an agent naming another agent's task gets nothing).
    pub(crate) fn agent_subject(
        &self,
        agent: &str,
        task: u64,
        capability: &Capability,
    ) -> Result<Subject, Error> {
        let acting = self.tasks.acting(agent, task)?;
        let (declared, display_name) = self.agents.declares(agent, capability)?;
        let delegators_declare = acting.chain.iter().skip(1).all(|above| {
            self.agents
                .declares(above, capability)
                .is_ok_and(|(declares, _)| declares)
        });
        Ok(Subject {
            chain: acting.chain,
            declared,
            delegators_declare,
            task: Some(task),
            purpose: acting.goal,
            display_name,
            arguments: None,
            why: None,
        })
    }

    /// Check `capability` on `scope` (already normalized) for `subject`; asks the user when the
    /// policy says so. Every outcome is audited.
    pub(crate) async fn authorize(
        self: &Arc<Self>,
        subject: &Subject,
        capability: &'static Capability,
        scope: &str,
    ) -> Result<(), Error> {
        let request = subject.request(capability, scope);
        let outcome = match self.rights.decide(request) {
            Decision::Allow { lifetime } => Ok(format!("{} grant", lifetime.as_str())),
            Decision::Deny { reason } => Err(reason),
            Decision::Ask => self.ask_user(subject, request).await?,
        };
        let entry = |decision, reason| AuditEntry {
            principal: subject.principal(),
            capability: capability.name,
            scope,
            decision,
            reason,
        };
        match outcome {
            Ok(reason) => self.audit(entry(AuditDecision::Allow, &reason)),
            Err(reason) => {
                self.audit(entry(AuditDecision::Deny, &reason))?;
                Err(Error::AccessDenied(reason))
            }
        }
    }
}

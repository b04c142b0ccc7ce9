//! The permission path of every tool call and delegation: policy decision, consent when the
//! policy says ask, and an audit record for each outcome.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use agentos_dbus_interfaces::{Capability, Error, Lifetime, TaskState};

use crate::consent::{self, display_safe, Answer, Prompt};
use crate::kernel::Kernel;
use crate::policy::{Decision, Request};

/// On whose behalf a check is made.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The acting principal, then its delegators, nearest first.
    pub chain: Vec<String>,
    /// Whether the acting principal's manifest declares the capability.
    pub declared: bool,
    /// The task the call is made for, if any (it shows "auth-required" while the user is asked).
    pub task: Option<u64>,
    /// What to show as the reason for the request (the task's goal).
    pub purpose: String,
    /// The acting principal's display name.
    pub display_name: String,
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
        let inner = self.inner();
        let t = inner
            .tasks
            .get(task)
            .filter(|t| t.agent == agent && !t.state.is_terminal())
            .ok_or_else(|| {
                Error::AccessDenied(format!(
                    "task {task} is not a running task of agent {agent}"
                ))
            })?;
        let slot = inner
            .agents
            .get(agent)
            .ok_or_else(|| Error::UnknownAgent(agent.to_string()))?;
        Ok(Subject {
            chain: t.chain(),
            declared: slot.declares(capability),
            task: Some(task),
            purpose: t.goal.clone(),
            display_name: slot.manifest.name.clone(),
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
        let request = Request {
            chain: &subject.chain,
            capability,
            scope,
            declared: subject.declared,
        };
        let decision = self.inner().policy.decide(request);
        let outcome = match decision {
            Decision::Allow { lifetime } => Ok(format!("{} grant", lifetime.as_str())),
            Decision::Deny { reason } => Err(reason),
            Decision::Ask => self.ask_user(subject, request).await?,
        };
        let principal = subject
            .chain
            .first()
            .map(String::as_str)
            .unwrap_or_default();
        match outcome {
            Ok(reason) => self.audit(principal, capability.name, scope, "allow", &reason),
            Err(reason) => {
                self.audit(principal, capability.name, scope, "deny", &reason)?;
                Err(Error::AccessDenied(reason))
            }
        }
    }

    /// Ask the user about `request`, and record the answer as a grant. Returns the reason to
    /// audit: `Ok` when the call may go ahead, `Err` when it is denied.
    async fn ask_user(
        self: &Arc<Self>,
        subject: &Subject,
        request: Request<'_>,
    ) -> Result<Result<String, String>, Error> {
        let principal = subject.chain.first().cloned().unwrap_or_default();
        let key = (
            principal.clone(),
            request.capability.name.to_string(),
            request.scope.to_string(),
        );
        // One prompt at a time per agent: the others wait their turn...
        let turn = self
            .inner()
            .prompt_turns
            .entry(principal.clone())
            .or_default()
            .clone();
        let _turn = turn.lock().await;
        // ...and the user may have answered the same question meanwhile.
        if self.inner().denials.get(&key).copied().unwrap_or(0) >= MAX_DENIALS {
            return Ok(Err(format!(
                "the user denied this twice; it is not asked again until reset (agentctl revoke {principal} {} {})",
                request.capability.name, request.scope
            )));
        }
        let decision = self.inner().policy.decide(request);
        match decision {
            Decision::Allow { lifetime } => return Ok(Ok(format!("{} grant", lifetime.as_str()))),
            Decision::Deny { reason } => return Ok(Err(reason)),
            Decision::Ask => {}
        }
        if let Some(task) = subject.task {
            let _ = self
                .transition(
                    task,
                    TaskState::AuthRequired,
                    Some("waiting for your permission"),
                )
                .await;
        }
        let answer = self.ask_provider(subject, request).await;
        if let Some(task) = subject.task {
            let _ = self.transition(task, TaskState::Working, Some("")).await;
        }
        let lifetime = match answer {
            Answer::Allow(lifetime) => lifetime,
            Answer::Denied => {
                *self.inner().denials.entry(key).or_default() += 1;
                return Ok(Err("the user denied it".into()));
            }
            Answer::Unanswered(reason) => return Ok(Err(reason)),
        };
        self.inner().denials.remove(&key);
        // Decide again with the new grant: that spends a "once" grant and re-checks the
        // delegators, whose rights may have changed while the user was asked.
        let (grant, decision) = {
            let mut inner = self.inner();
            let grant = inner.policy.record_consent(request, lifetime, self.now());
            if let Some(g) = grant.as_ref().filter(|g| g.lifetime == Lifetime::Always) {
                self.store()
                    .insert_grant(&g.info())
                    .map_err(crate::kernel::store_err)?;
            }
            (grant, inner.policy.decide(request))
        };
        if let Some(g) = grant {
            self.mirror_add(&g).await;
        }
        Ok(match decision {
            Decision::Allow { .. } => Ok(format!("the user allowed it ({})", lifetime.as_str())),
            Decision::Deny { reason } => Err(reason),
            Decision::Ask => Err("the grant was revoked while the user was asked".into()),
        })
    }
}

impl Kernel {
    /// Put the question to the panel, else the desktop's Access dialog; the dialog is closed if
    /// the asking agent goes away first.
    async fn ask_provider(&self, subject: &Subject, request: Request<'_>) -> Answer {
        let Some(conn) = self.bus.get() else {
            return Answer::Unanswered("the kernel is not on a bus to ask the user".into());
        };
        let Some(provider) =
            consent::choose_provider(conn, self.config.desktop_access.as_deref()).await
        else {
            return Answer::Unanswered("no consent provider is running to ask the user".into());
        };
        let n = self.consent_seq.fetch_add(1, Ordering::SeqCst);
        let handle = format!("/org/freedesktop/portal/desktop/request/agentos/r{n}");
        let prompt = prompt(subject, request.capability, request.scope);
        let agent_conn = subject.task.and_then(|_| {
            let inner = self.inner();
            let acting = subject.chain.first()?;
            inner
                .agents
                .get(acting)?
                .instance
                .as_ref()
                .map(|i| i.conn.clone())
        });
        let gone = async move {
            match agent_conn {
                Some(c) => agentos_p2p::until_closed(&c).await,
                None => std::future::pending().await,
            }
        };
        consent::ask(
            conn,
            &provider,
            &handle,
            &prompt,
            self.config.consent_timeout,
            gone,
        )
        .await
    }
}

/// How often the user may deny the same request before it is denied without asking.
const MAX_DENIALS: u32 = 2;

/// The text of a consent prompt; every string from an agent is made safe to show.
fn prompt(subject: &Subject, capability: &Capability, scope: &str) -> Prompt {
    let name = display_safe(&subject.display_name, 64);
    let mut body = format!("For the task: {}", display_safe(&subject.purpose, 200));
    if let Some((_, above)) = subject.chain.split_first().filter(|(_, a)| !a.is_empty()) {
        let above: Vec<String> = above.iter().map(|p| display_safe(p, 64)).collect();
        body.push_str(&format!("\nDelegated by: {}", above.join(" ← ")));
    }
    Prompt {
        title: format!(
            "Allow “{name}” to {} {}?",
            capability.description,
            display_safe(scope, 120)
        ),
        subtitle: format!(
            "{} ({})",
            capability.name,
            display_safe(subject.chain.first().map(String::as_str).unwrap_or(""), 64)
        ),
        body,
    }
}

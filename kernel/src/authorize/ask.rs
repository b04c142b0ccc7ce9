//! Asking the user: one prompt at a time per principal, a request denied twice is not asked
//! again, the task shows "auth-required" meanwhile, and the answer becomes a grant.

use std::sync::Arc;

use agentos_dbus_interfaces::text::display_safe;
use agentos_dbus_interfaces::{Capability, ConsentRequestInfo, Error, Lifetime, TaskState};

use super::Subject;
use crate::consent::{self, Answer, Prompt};
use crate::events::Event;
use crate::kernel::{store_err, Kernel};
use crate::policy::{Decision, Request};

impl Kernel {
    /// Ask the user about `request`, and record the answer as a grant. Returns the reason to
    /// audit: `Ok` when the call may go ahead, `Err` when it is denied.
    pub(super) async fn ask_user(
        self: &Arc<Self>,
        subject: &Subject,
        request: Request<'_>,
    ) -> Result<Result<String, String>, Error> {
        let principal = subject.principal();
        // One prompt at a time per agent: the others wait their turn...
        let turn = self.consent.turn(principal);
        let _turn = turn.lock().await;
        // ...and the user may have answered the same question meanwhile.
        if self.rights.stops_asking(request) {
            return Ok(Err(format!(
                "the user denied this twice; it is not asked again until reset (agentctl revoke {principal} {} {})",
                request.capability.name, request.scope
            )));
        }
        match self.rights.decide(request) {
            Decision::Allow { lifetime } => return Ok(Ok(format!("{} grant", lifetime.as_str()))),
            Decision::Deny { reason } => return Ok(Err(reason)),
            Decision::Ask => {}
        }
        if let Some(task) = subject.task {
            let _ = self.transition(
                task,
                TaskState::AuthRequired,
                Some("waiting for your permission"),
            );
        }
        let answer = self.ask_provider(subject, request).await;
        if let Some(task) = subject.task {
            let _ = self.transition(task, TaskState::Working, Some(""));
        }
        let lifetime = match answer {
            Answer::Allow(lifetime) => lifetime,
            Answer::Denied => {
                self.rights.note_denial(request);
                return Ok(Err("the user denied it".into()));
            }
            Answer::Unanswered(reason) => return Ok(Err(reason)),
        };
        // Decide again with the new grant: that spends a "once" grant and re-checks the
        // delegators, whose rights may have changed while the user was asked.
        let (grant, decision) = self.rights.record_consent(request, lifetime, self.now());
        if let Some(g) = &grant {
            if g.lifetime == Lifetime::Always {
                self.store().insert_grant(&g.info()).map_err(store_err)?;
            }
            self.events.publish(Event::GrantAdded(g.info()));
            self.mirror_add(g).await;
        }
        Ok(match decision {
            Decision::Allow { .. } => Ok(format!("the user allowed it ({})", lifetime.as_str())),
            Decision::Deny { reason } => Err(reason),
            Decision::Ask => Err("the grant was revoked while the user was asked".into()),
        })
    }

    /// Put the question to the panel, else the desktop's Access dialog; the dialog is closed if
    /// the asking agent goes away first. While it is open, the request is listed as pending.
    async fn ask_provider(&self, subject: &Subject, request: Request<'_>) -> Answer {
        let Some(conn) = self.bus() else {
            return Answer::Unanswered("the kernel is not on a bus to ask the user".into());
        };
        let Some(provider) =
            consent::choose_provider(conn, self.config.desktop_access.as_deref()).await
        else {
            return Answer::Unanswered("no consent provider is running to ask the user".into());
        };
        let prompt = prompt(subject, request.capability, request.scope);
        let (pending, count) = self.consent.open(ConsentRequestInfo {
            id: 0,
            principal: subject.principal().to_string(),
            capability: request.capability.name.to_string(),
            scope: request.scope.to_string(),
            task: subject.task.unwrap_or(0),
            title: prompt.title.clone(),
            subtitle: prompt.subtitle.clone(),
            body: prompt.body.clone(),
            since: self.now(),
        });
        let id = pending.id;
        self.events.publish(Event::ConsentPending {
            request: pending,
            pending: count,
        });
        let _settle = Settle { kernel: self, id };
        let handle = format!("/org/freedesktop/portal/desktop/request/agentos/r{id}");
        let agent_conn = subject.task.and_then(|_| {
            self.agents
                .instance(subject.principal())
                .ok()
                .flatten()
                .map(|i| i.conn)
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

/// Takes a request off the pending list however the asking ends (answered, timed out, dropped).
struct Settle<'a> {
    kernel: &'a Kernel,
    id: u64,
}

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        let pending = self.kernel.consent.settle(self.id);
        self.kernel.events.publish(Event::ConsentSettled {
            id: self.id,
            pending,
        });
    }
}

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
            display_safe(subject.principal(), 64)
        ),
        body,
    }
}

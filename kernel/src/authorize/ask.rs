//! Asking the user. One dialog at a time per principal. The first request asks at once; the
//! requests of the same task for the same capability that arrive while a dialog is open wait, and
//! the next dialog names them all together ("example.org and 3 other hosts"): its one answer
//! applies to every scope it named. A request denied twice (a dialog closed or left to time out
//! counts as a denial) is not asked again; a budget bounds the dialogs per agent and per task
//! (`policy::prompt_budget`); a task the user said to ask nothing more for is denied without
//! asking, with the tasks below it. The task shows "auth-required" while the user is asked, and
//! the answer becomes a grant.
//!
//! Apps in the chain: an app allowed to use an agent (`agent.delegate`, `agent.call`) has that
//! agent use its own rights in the app's tasks. So the prompt that asks for it lists, in plain
//! words, the agent's lasting rights (session and always) at that moment, and says that rights
//! given to the agent later reach the app's tasks too; and each prompt asked for a task an app
//! started names that app.

use std::sync::Arc;

use agentos_dbus_interfaces::names::CONSENT_BUS_NAME;
use agentos_dbus_interfaces::text::display_safe;
use agentos_dbus_interfaces::{
    AuditDecision, Capability, ConsentRequestInfo, Error, Lifetime, ScopeKind, TaskState,
};

use super::desk::Outcome;
use super::Subject;
use crate::audit_entry::AuditEntry;
use crate::consent::{self, Answer, Prompt, Reply};
use crate::events::Event;
use crate::kernel::{store_err, Kernel};
use crate::policy::{Decision, Request};

/// Most scopes a coalesced prompt's body lists one by one (the title counts them all).
const LISTED_SCOPES: usize = 10;

/// How a request's wait for its turn ended.
enum Waited<G> {
    /// A dialog that named it ended (or dropped it unanswered).
    Named(Result<Outcome, tokio::sync::oneshot::error::RecvError>),
    /// It has the turn.
    Turn(G),
}

/// What became of one dialog, for every scope it named.
enum Verdict {
    /// No dialog was opened: the reason it was refused.
    Refused(String),
    /// The dialog's answer, and the delegators its prompt named as lacking the right (the
    /// answer is theirs too).
    Answered(Answer, Vec<String>),
}

impl Kernel {
    /// Ask the user about `request`, and record the answer as a grant. Returns the reason to
    /// audit: `Ok` when the call may go ahead, `Err` when it is denied.
    pub(super) async fn ask_user(
        self: &Arc<Self>,
        subject: &Subject,
        request: Request<'_>,
    ) -> Result<Outcome, Error> {
        if let Some(reason) = self.refuse_to_ask(subject, request) {
            return Ok(Err(reason));
        }
        let principal = subject.principal();
        let turn = self.consent.turn(principal);
        loop {
            let (ticket, mut named) = self.consent.wait(
                principal,
                request.capability.name,
                subject.task,
                request.scope,
            );
            // The answer of a dialog that names this request counts first: it is sent before
            // that dialog's turn ends.
            let waited = tokio::select! {
                biased;
                outcome = &mut named => Waited::Named(outcome),
                guard = turn.lock() => Waited::Turn(guard),
            };
            match waited {
                Waited::Named(Ok(outcome)) => return Ok(outcome),
                // The request that named it went away before its dialog ended: wait again.
                Waited::Named(Err(_)) => continue,
                Waited::Turn(_turn) => {
                    if let Ok(outcome) = named.try_recv() {
                        return Ok(outcome);
                    }
                    return self.lead(subject, request, ticket.id).await;
                }
            }
        }
    }

    /// Reasons to deny without waiting for a turn: the task was silenced, the request was
    /// denied twice, or the prompt budget is spent.
    fn refuse_to_ask(&self, subject: &Subject, request: Request<'_>) -> Option<String> {
        if let Some(reason) = self.silenced_reason(subject) {
            return Some(reason);
        }
        if self.rights.stops_asking(request) {
            return Some(denied_twice(subject.principal(), request));
        }
        let now = self.now();
        self.rights
            .prompt_fits(subject.principal(), subject.task, now)
            .err()
            .map(|e| e.reason(now, request.capability.name, request.scope))
    }

    /// Why the subject's task is not asked about any more, if the user said so for it or for a
    /// task above it.
    /// `task` and the tasks above it, nearest first, up to the top-level task (bounded, should
    /// the tree ever be malformed).
    fn line_of(&self, task: u64) -> Vec<u64> {
        let mut line = vec![task];
        let mut id = task;
        while let Some(parent) = self.tasks.get(id).map(|t| t.parent).filter(|p| *p != 0) {
            if line.len() > 1024 || line.contains(&parent) {
                break;
            }
            line.push(parent);
            id = parent;
        }
        line
    }

    fn silenced_reason(&self, subject: &Subject) -> Option<String> {
        let task = subject.task?;
        let silenced = self.consent.silenced(&self.line_of(task))?;
        Some(if silenced == task {
            format!("denied without asking: the user said to ask nothing more for task {task}")
        } else {
            format!(
                "denied without asking: the user said to ask nothing more for task {silenced}, \
                 which this task {task} works for"
            )
        })
    }

    /// With the turn: gather the requests of this task and capability that wait, ask once for
    /// those no grant or denial settles, and give each its outcome. Returns this request's.
    async fn lead(
        self: &Arc<Self>,
        subject: &Subject,
        request: Request<'_>,
        own: u64,
    ) -> Result<Outcome, Error> {
        let mut others =
            self.consent
                .gather(subject.principal(), request.capability.name, subject.task);
        others.retain(|g| g.id != own);
        // This request first, then the others in the order they came; `None` until settled.
        let scopes: Vec<&str> = std::iter::once(request.scope)
            .chain(others.iter().map(|g| g.scope.as_str()))
            .collect();
        // The user may have answered meanwhile, or granted from agentctl.
        let mut outcomes: Vec<Option<Outcome>> = scopes
            .iter()
            .map(|scope| self.settled(subject, Request { scope, ..request }))
            .collect();
        let mut asked: Vec<&str> = Vec::new();
        for (scope, outcome) in scopes.iter().zip(&outcomes) {
            if outcome.is_none() && !asked.contains(scope) {
                asked.push(scope);
            }
        }
        if !asked.is_empty() {
            let verdict = self.ask_once(subject, request.capability, &asked).await;
            for (i, scope) in scopes.iter().enumerate() {
                if outcomes[i].is_none() {
                    let req = Request { scope, ..request };
                    outcomes[i] = Some(match self.apply(subject, req, &verdict, i > 0).await {
                        Ok(o) => o,
                        // This request's own failure is the caller's error; the others are
                        // told in words.
                        Err(e) if i == 0 => return self.deliver(others, outcomes, Err(e)),
                        Err(e) => Err(e.to_string()),
                    });
                }
            }
        }
        let own = outcomes[0]
            .clone()
            .unwrap_or_else(|| Err("the request was not settled".into()));
        self.deliver(others, outcomes, Ok(own))
    }

    /// Send each gathered request its outcome (one that has none is dropped unanswered, and
    /// waits again), and return this request's.
    fn deliver(
        &self,
        others: Vec<super::desk::Gathered>,
        outcomes: Vec<Option<Outcome>>,
        own: Result<Outcome, Error>,
    ) -> Result<Outcome, Error> {
        for (g, outcome) in others.into_iter().zip(outcomes.into_iter().skip(1)) {
            if let Some(outcome) = outcome {
                // A request that went away meanwhile needs no answer.
                let _ = g.reply.send(outcome);
            }
        }
        own
    }

    /// The outcome of a request that needs no dialog (a grant covers it, the policy denies it,
    /// the user denied it twice), or `None` when the user is to be asked.
    fn settled(&self, subject: &Subject, request: Request<'_>) -> Option<Outcome> {
        if self.rights.stops_asking(request) {
            return Some(Err(denied_twice(subject.principal(), request)));
        }
        match self.rights.decide(request) {
            Decision::Allow { lifetime } => Some(Ok(format!("{} grant", lifetime.as_str()))),
            Decision::Deny { reason } => Some(Err(reason)),
            Decision::Ask => None,
        }
    }

    /// One dialog naming `scopes`, unless the task was silenced or the budget is spent.
    async fn ask_once(
        &self,
        subject: &Subject,
        capability: &'static Capability,
        scopes: &[&str],
    ) -> Verdict {
        if let Some(reason) = self.silenced_reason(subject) {
            return Verdict::Refused(reason);
        }
        let Some(conn) = self.bus() else {
            return Verdict::Answered(
                Answer::Unanswered("the kernel is not on a bus to ask the user".into()),
                Vec::new(),
            );
        };
        // The panel, else the desktop's backend, else the terminal that started the task's tree.
        let terminal = || {
            subject
                .task
                .and_then(|t| self.consent.attendant(&self.line_of(t)))
        };
        let Some(provider) = consent::choose_provider(conn, self.config.desktop_access.as_deref())
            .await
            .or_else(terminal)
        else {
            // Nobody saw anything: neither a denial nor a prompt spent.
            return Verdict::Answered(
                Answer::Unanswered("no consent provider is running to ask the user".into()),
                Vec::new(),
            );
        };
        let now = self.now();
        if let Err(e) = self
            .rights
            .spend_prompt(subject.principal(), subject.task, now)
        {
            return Verdict::Refused(e.reason(now, capability.name, scopes[0]));
        }
        if let Some(task) = subject.task {
            let _ = self.transition(
                task,
                TaskState::AuthRequired,
                Some("waiting for your permission"),
            );
        }
        // The delegators lacking the right, whom the prompt names: the answer is theirs too.
        let told = self.rights.lacking(subject.request(capability, scopes[0]));
        let reply = self
            .ask_provider(conn, &provider, subject, capability, scopes, &told)
            .await;
        if let Some(task) = subject.task {
            let _ = self.transition(task, TaskState::Working, Some(""));
            if reply.task_stop {
                self.consent.silence(task, |t| {
                    self.tasks.get(t).is_some_and(|t| !t.state.is_terminal())
                });
            }
        }
        Verdict::Answered(reply.answer, told)
    }

    /// What a dialog's verdict makes of one request it named: a grant recorded (and the request
    /// decided with it), a denial counted, or the reason it was refused.
    /// A `gathered` request (one of several a dialog named) has its grant recorded here too: its
    /// caller, which records its decision, may have gone away meanwhile.
    async fn apply(
        &self,
        subject: &Subject,
        request: Request<'_>,
        verdict: &Verdict,
        gathered: bool,
    ) -> Result<Outcome, Error> {
        let (answer, told) = match verdict {
            Verdict::Refused(reason) => return Ok(Err(reason.clone())),
            Verdict::Answered(answer, told) => (answer, told),
        };
        let lifetime = match answer {
            Answer::Allow(lifetime) => *lifetime,
            Answer::Denied => {
                self.rights.note_denial(request);
                let silenced = subject
                    .task
                    .is_some_and(|t| self.consent.silenced(&[t]).is_some());
                return Ok(Err(if silenced {
                    "the user denied it, and said to ask nothing more for this task".into()
                } else {
                    "the user denied it".into()
                }));
            }
            Answer::Closed(reason) => {
                // The user saw the question and did not say yes: that is a no.
                self.rights.note_denial(request);
                return Ok(Err(format!("{reason}; counted as a denial")));
            }
            Answer::Unanswered(reason) => {
                let lacking = self.rights.lacking(request);
                return Ok(Err(unanswered(reason, &request, &lacking)));
            }
            Answer::ProviderGone(reason) => return Ok(Err(reason.clone())),
        };
        // Decide again with the new grant: that spends a "once" grant and re-checks the
        // delegators, whose rights may have changed while the user was asked.
        let (grants, decision) = self
            .rights
            .record_consent(request, lifetime, self.now(), told);
        // A delegator's grant is recorded under its own name (the request's record names the
        // acting agent), and so is a gathered request's: every grant the user gave is in the
        // log, and one kept always is backed by it at the next start.
        let acting = subject.principal();
        for g in grants.iter().filter(|g| gathered || g.principal != acting) {
            let how = if g.principal == acting {
                "in a dialog for several of its requests".to_string()
            } else {
                format!("given with {acting}'s request")
            };
            self.audit(AuditEntry {
                principal: &g.principal,
                capability: g.capability.name,
                scope: &g.scope,
                decision: AuditDecision::Grant,
                reason: &format!("{how}: the user allowed it ({})", lifetime.as_str()),
            })?;
        }
        for g in &grants {
            if g.lifetime == Lifetime::Always {
                self.store().insert_grant(&g.info()).map_err(store_err)?;
            }
            self.events.publish(Event::GrantAdded(g.info()));
        }
        self.mirror_add(&grants).await;
        Ok(match decision {
            Decision::Allow { .. } => Ok(format!("the user allowed it ({})", lifetime.as_str())),
            Decision::Deny { reason } => Err(reason),
            Decision::Ask => Err("the grant was revoked while the user was asked".into()),
        })
    }

    /// Put the question to the panel, else the desktop's Access dialog; the dialog is closed if
    /// the asking agent goes away first. While it is open, the request is listed as pending.
    async fn ask_provider(
        &self,
        conn: &zbus::Connection,
        provider: &str,
        subject: &Subject,
        capability: &'static Capability,
        scopes: &[&str],
        told: &[String],
    ) -> Reply {
        let notes = self.chain_notes(subject, capability, scopes, told);
        let prompt = prompt(subject, capability, scopes, &notes);
        let mut prompt = self.with_change_notice(subject, prompt);
        let (pending, count) = self.consent.open(ConsentRequestInfo {
            id: 0,
            principal: subject.principal().to_string(),
            capability: capability.name.to_string(),
            scope: scopes[0].to_string(),
            task: subject.task.unwrap_or(0),
            title: prompt.title.clone(),
            subtitle: prompt.subtitle.clone(),
            body: prompt.body.clone(),
            since: self.now(),
        });
        let id = pending.id;
        prompt.request = Some(id);
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
        let mut gone = std::pin::pin!(gone);
        let deadline = tokio::time::Instant::now() + self.config.consent_timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let reply = consent::ask(conn, provider, &handle, &prompt, left, &mut gone).await;
            // The panel went away with the dialog open (it quit or crashed): the request stays
            // pending, listed, and is asked again of the panel when it is back, within the time
            // the user has to answer; a provider that is not the panel is not waited for.
            let Answer::ProviderGone(reason) = &reply.answer else {
                return reply;
            };
            if provider != CONSENT_BUS_NAME
                || !wait_for_owner(conn, CONSENT_BUS_NAME, deadline, &mut gone).await
            {
                return Answer::Unanswered(reason.clone()).into();
            }
            tracing::info!(request = id, "the panel is back: asking it again");
        }
    }
}

/// Wait until `name` has an owner on the bus again, until `deadline` or until `gone` (the asking
/// agent went away); whether it has. Looks every 100 ms: this runs only while a request waits
/// for a panel that quit.
async fn wait_for_owner(
    conn: &zbus::Connection,
    name: &str,
    deadline: tokio::time::Instant,
    gone: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> bool {
    let Ok(dbus) = zbus::fdo::DBusProxy::new(conn).await else {
        return false;
    };
    let Ok(bus_name) = zbus::names::BusName::try_from(name) else {
        return false;
    };
    loop {
        if dbus.name_has_owner(bus_name.clone()).await.unwrap_or(false) {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return false,
            () = &mut *gone => return false,
            () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
        }
    }
}

/// Agents whose rights one prompt lists, at most (the others are counted).
const LISTED_AGENTS: usize = 3;
/// Scopes of one capability listed per agent, at most (the others are counted).
const LISTED_RIGHTS: usize = 5;

impl Kernel {
    /// What a prompt says about who gains what through the chain: the delegators `lacking` the
    /// right; for an app asking to use agents, each agent's lasting rights now; for a task an app
    /// started, that app.
    fn chain_notes(
        &self,
        subject: &Subject,
        capability: &'static Capability,
        scopes: &[&str],
        lacking: &[String],
    ) -> Vec<String> {
        let mut notes = Vec::new();
        // Delegating agents without the right: the answer is theirs too.
        if !lacking.is_empty() {
            let names: Vec<String> = lacking
                .iter()
                .map(|id| {
                    let name = self.agents.info(id).map_or_else(|| id.clone(), |a| a.name);
                    display_safe(&name, 64)
                })
                .collect();
            notes.push(format!(
                "{} asked {} for this, and holds no such right itself: allowing it until logout \
                 or always gives {} this right too; allowing it only this time lets this one \
                 request through.",
                join_words(&names),
                display_safe(&subject.display_name, 64),
                join_words(&names),
            ));
        }
        if let Some(task) = subject.task {
            if let Some(owner) = self.tasks.root_caller(task).filter(|o| o != "host") {
                notes.push(format!(
                    "This task was started by the app {}: what you allow here, {} does in \
                     that app's task, and the app gets the result.",
                    display_safe(&owner, 64),
                    display_safe(&subject.display_name, 64)
                ));
            }
            return notes;
        }
        if capability.scope != ScopeKind::Agent {
            return notes;
        }
        let app = display_safe(&subject.display_name, 64);
        let grants = self.rights.all();
        for agent in scopes.iter().take(LISTED_AGENTS) {
            let name = self
                .agents
                .info(agent)
                .map_or_else(|| agent.to_string(), |a| a.name);
            let name = display_safe(&name, 64);
            let mut by_capability: Vec<(&Capability, Vec<&str>)> = Vec::new();
            for g in grants
                .iter()
                .filter(|g| g.principal == *agent && g.lifetime != Lifetime::Once)
            {
                match by_capability.iter_mut().find(|(c, _)| *c == g.capability) {
                    Some((_, on)) => on.push(g.scope.as_str()),
                    None => by_capability.push((g.capability, vec![g.scope.as_str()])),
                }
            }
            if by_capability.is_empty() {
                notes.push(format!(
                    "{name} has no lasting rights now: in this app's tasks it asks you for each \
                     one, and those prompts name the app."
                ));
                continue;
            }
            let rights: Vec<String> = by_capability
                .iter()
                .map(|(c, on)| {
                    let mut listed: Vec<String> = on
                        .iter()
                        .take(LISTED_RIGHTS)
                        .map(|s| display_safe(s, 60))
                        .collect();
                    if on.len() > LISTED_RIGHTS {
                        listed.push(format!("{} more", on.len() - LISTED_RIGHTS));
                    }
                    format!("{} {}", c.description, join_words(&listed))
                })
                .collect();
            notes.push(format!(
                "{name} can {}: allowing this lets {app} have it do so for you. Rights you give \
                 {name} later reach this app's tasks too.",
                rights.join("; ")
            ));
        }
        if scopes.len() > LISTED_AGENTS {
            notes.push(format!(
                "The {} other agents named use their own rights the same way.",
                scopes.len() - LISTED_AGENTS
            ));
        }
        notes
    }
}

/// "a", "a and b", "a, b and c".
fn join_words(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The reason given once the user denied a request twice.
fn denied_twice(principal: &str, request: Request<'_>) -> String {
    format!(
        "the user denied this twice (a dialog closed or left unanswered counts as a denial); it is \
         not asked again until reset (agentctl revoke {principal} {} {})",
        request.capability.name, request.scope
    )
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

/// Why a request nobody could be asked about is refused: the `reason`, what it needed, and how
/// the user may let it happen (the panel, a terminal, or grants given ahead: to the acting
/// agent, and to the delegators above it that `lacking` names).
fn unanswered(reason: &str, request: &Request<'_>, lacking: &[String]) -> String {
    let who = request
        .chain
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let (cap, scope) = (request.capability.name, request.scope);
    let mut grantees = vec![who];
    grantees.extend(lacking.iter().map(String::as_str).filter(|p| *p != who));
    let grants: Vec<String> = grantees
        .iter()
        .map(|p| {
            format!(
                "agentctl grant -- {} {cap} {}",
                shell_word(p),
                shell_word(scope)
            )
        })
        .collect();
    format!(
        "{reason}: {who} needs {cap} on {scope:?}. Open the AgentOS panel, or ask from a \
         terminal (agentctl ask, agentctl run), or allow it ahead: {}",
        grants.join("; ")
    )
}

/// `word` as one word for a POSIX shell (zsh included): as it is when it is made of harmless
/// characters only, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._-/:@+,%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// What a kind of scope is called, for "and 3 other hosts".
fn scope_noun(kind: ScopeKind, many: bool) -> &'static str {
    match (kind, many) {
        (ScopeKind::Folder, false) => "folder",
        (ScopeKind::Folder, true) => "folders",
        (ScopeKind::Domain, false) => "host",
        (ScopeKind::Domain, true) => "hosts",
        (ScopeKind::Agent, false) => "agent",
        (ScopeKind::Agent, true) => "agents",
        (ScopeKind::Name, false) => "one",
        (ScopeKind::Name, true) => "ones",
    }
}

/// The text of a consent prompt naming `scopes` (at least one), with `notes` (made safe
/// already) at the end of its body; every string from an agent is made safe to show.
fn prompt(subject: &Subject, capability: &Capability, scopes: &[&str], notes: &[String]) -> Prompt {
    let name = display_safe(&subject.display_name, 64);
    let first = display_safe(scopes.first().copied().unwrap_or_default(), 120);
    let what = match scopes.len() {
        0 | 1 => first,
        n => format!(
            "{first} and {} other {}",
            n - 1,
            scope_noun(capability.scope, n > 2)
        ),
    };
    let mut body = format!("For the task: {}", display_safe(&subject.purpose, 200));
    if let Some(why) = &subject.why {
        body.push('\n');
        body.push_str(&display_safe(why, 300));
    }
    if let Some(arguments) = &subject.arguments {
        body.push_str(&format!("\nThe call: {}", display_safe(arguments, 300)));
    }
    if let Some((_, above)) = subject.chain.split_first().filter(|(_, a)| !a.is_empty()) {
        let above: Vec<String> = above.iter().map(|p| display_safe(p, 64)).collect();
        body.push_str(&format!("\nDelegated by: {}", above.join(" ← ")));
    }
    if scopes.len() > 1 {
        let listed: Vec<String> = scopes
            .iter()
            .take(LISTED_SCOPES)
            .map(|s| display_safe(s, 60))
            .collect();
        body.push_str(&format!("\nAll {}: {}", scopes.len(), listed.join(", ")));
        if scopes.len() > LISTED_SCOPES {
            body.push_str(&format!(" and {} more", scopes.len() - LISTED_SCOPES));
        }
        body.push_str("\nYour answer applies to each of them.");
    }
    for note in notes {
        body.push('\n');
        body.push_str(note);
    }
    Prompt {
        title: format!("Allow “{name}” to {} {what}?", capability.description),
        subtitle: format!(
            "{} ({})",
            capability.name,
            display_safe(subject.principal(), 64)
        ),
        body,
        offer_task_stop: subject.task.is_some(),
        arguments: subject.arguments.clone(),
        request: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(task: Option<u64>) -> Subject {
        Subject {
            chain: vec!["web".into()],
            declared: true,
            delegators_declare: false,
            task,
            purpose: "read the news".into(),
            arguments: None,
            display_name: "Web".into(),
            why: None,
        }
    }

    #[test]
    fn with_nobody_to_ask_the_refusal_says_how_to_allow_it() {
        let read = Capability::lookup("files.read").unwrap();
        let chain = vec!["docs".to_string(), "sidekick".to_string()];
        let request = Request {
            chain: &chain,
            capability: read,
            scope: "/home/me/My Notes/it's",
            declared: true,
            delegators_declare: true,
        };
        assert_eq!(
            unanswered(
                "no consent provider is running to ask the user",
                &request,
                &["sidekick".to_string()]
            ),
            "no consent provider is running to ask the user: docs needs files.read on \
             \"/home/me/My Notes/it's\". Open the AgentOS panel, or ask from a terminal \
             (agentctl ask, agentctl run), or allow it ahead: agentctl grant -- docs files.read \
             '/home/me/My Notes/it'\\''s'; agentctl grant -- sidekick files.read \
             '/home/me/My Notes/it'\\''s'"
        );
        assert_eq!(shell_word("model.remote"), "model.remote");
        assert_eq!(shell_word("openai-compatible"), "openai-compatible");
        assert_eq!(shell_word("a;b"), "'a;b'");
        assert_eq!(shell_word("=ls"), "'=ls'");
        assert_eq!(shell_word("~root"), "'~root'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn a_prompt_says_why_it_is_asked_after_the_task() {
        let remote = Capability::lookup("model.remote").unwrap();
        let mut subject = subject(Some(1));
        subject.why = Some("No model on this computer answers now, so \u{202e}it goes.".into());
        let p = prompt(&subject, remote, &["openai"], &[]);
        assert_eq!(
            p.body,
            format!(
                "For the task: read the news\n{}",
                display_safe(
                    "No model on this computer answers now, so \u{202e}it goes.",
                    300
                )
            )
        );
        assert!(!p.body.contains('\u{202e}'), "{}", p.body);
    }

    #[test]
    fn a_coalesced_prompt_names_its_scopes_together() {
        let fetch = Capability::lookup("web.fetch").unwrap();
        let one = prompt(&subject(Some(1)), fetch, &["example.org"], &[]);
        assert_eq!(
            one.title,
            "Allow “Web” to fetch web pages from example.org?"
        );
        assert_eq!(one.body, "For the task: read the news");
        assert!(one.offer_task_stop);
        let two = prompt(&subject(Some(1)), fetch, &["example.org", "a.org"], &[]);
        assert!(
            two.title.ends_with("example.org and 1 other host?"),
            "{}",
            two.title
        );
        let hosts: Vec<String> = (0..13).map(|i| format!("h{i}.org")).collect();
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let many = prompt(&subject(None), fetch, &hosts, &[]);
        assert!(
            many.title.ends_with("h0.org and 12 other hosts?"),
            "{}",
            many.title
        );
        assert!(
            many.body.contains("All 13: h0.org, h1.org"),
            "{}",
            many.body
        );
        assert!(many.body.contains("h9.org and 3 more"), "{}", many.body);
        assert!(!many.offer_task_stop, "no task, nothing to silence");
    }
}

//! The user's grants as the kernel owns them: the pure policy (grants, decisions, denials) and
//! the prompt budget behind one lock, which grants are on their way into the desktop's
//! permission store, and the grants suspended because their agent changed since they were given
//! (kept, not honoured, until the user confirms the change by giving the agent a grant).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use agentos_dbus_interfaces::{Capability, GrantInfo, Lifetime};

use crate::policy::{Decision, Exhausted, Grant, Policy, PromptBudget, Request};

#[derive(Default)]
struct State {
    policy: Policy,
    /// How many dialogs each agent and task opened lately.
    prompts: PromptBudget,
    /// Grants being written to the permission store (principal, entry id): not there yet.
    mirror_pending: HashSet<(String, String)>,
    /// Counts the writes into the permission store begun and ended, so a look at the store can
    /// tell which writes it surely saw (see [`Rights::mirror_seen_since`]).
    mirror_seq: u64,
    /// When each grant's last write into the permission store ended (`mirror_seq` then).
    mirrored_at: HashMap<(String, String), u64>,
    /// Grants of agents that changed since they were given: kept, not honoured.
    suspended: Vec<Grant>,
    /// Suspended grants a new grant to their agent brought back, until the kernel records the
    /// confirmation.
    restored: HashMap<String, Vec<Grant>>,
}

impl State {
    /// A grant to `principal` confirms what changed in it: its suspended grants come back. A
    /// grant the user's tools just gave for the same scope stays as given (`keep_given`); one a
    /// dialog's answer just recorded gives way to the suspended one (which may live longer).
    fn confirm(&mut self, principal: &str, keep_given: bool) {
        let (back, kept) = std::mem::take(&mut self.suspended)
            .into_iter()
            .partition::<Vec<_>, _>(|g| g.principal == principal);
        self.suspended = kept;
        for g in back {
            let given = self.policy.grants.iter().any(|l| {
                l.principal == g.principal && l.capability == g.capability && l.scope == g.scope
            });
            if !(given && keep_given) {
                drop(self.policy.grants.add(g.clone()));
                self.restored
                    .entry(g.principal.clone())
                    .or_default()
                    .push(g);
            }
        }
    }
}

/// The user's grants and the policy over them.
#[derive(Default)]
pub struct Rights {
    state: Mutex<State>,
}

impl Rights {
    /// Rights starting from `grants` (those stored).
    pub fn with_grants(grants: impl IntoIterator<Item = Grant>) -> Rights {
        let rights = Rights::default();
        {
            let mut s = rights.lock();
            for g in grants {
                drop(s.policy.grants.add(g));
            }
        }
        rights
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decide a request (spends a "once" grant that allows it).
    pub fn decide(&self, req: Request<'_>) -> Decision {
        self.lock().policy.decide(req)
    }

    /// Whether lasting grants alone allow `req` (nothing is spent).
    pub fn allows_lasting(&self, req: Request<'_>) -> bool {
        self.lock().policy.allows_lasting(req)
    }

    /// Whether the user denied this often enough that it is not asked again.
    pub fn stops_asking(&self, req: Request<'_>) -> bool {
        self.lock().policy.stops_asking(req)
    }

    /// The delegating agents of `req` that hold no lasting right to it, nearest first.
    pub fn lacking(&self, req: Request<'_>) -> Vec<String> {
        let s = self.lock();
        s.policy
            .lacking(req)
            .into_iter()
            .map(String::from)
            .collect()
    }

    pub fn note_denial(&self, req: Request<'_>) {
        self.lock().policy.note_denial(req)
    }

    /// Whether `principal` may open one more dialog (for `task`) now; nothing is counted.
    pub fn prompt_fits(
        &self,
        principal: &str,
        task: Option<u64>,
        now: u64,
    ) -> Result<(), Exhausted> {
        self.lock().prompts.check(principal, task, now)
    }

    /// Count a dialog about to be opened, if the budget has room for it.
    pub fn spend_prompt(
        &self,
        principal: &str,
        task: Option<u64>,
        now: u64,
    ) -> Result<(), Exhausted> {
        self.lock().prompts.spend(principal, task, now)
    }

    /// Record the user's consent as a grant and decide the request again with it; the prompt
    /// named `disclosed` as the delegators lacking the right. The acting agent's change (its
    /// manifest or program), which the prompt told, is confirmed by allowing; a delegator's
    /// suspended grants stay suspended (its change was not told).
    pub fn record_consent(
        &self,
        req: Request<'_>,
        lifetime: Lifetime,
        now: u64,
        disclosed: &[String],
    ) -> (Vec<Grant>, Decision) {
        let mut s = self.lock();
        let added = s.policy.consent_grants(req, lifetime, now, disclosed);
        if let Some(acting) = req.chain.first() {
            if added.iter().any(|g| &g.principal == acting) {
                s.confirm(acting, false);
            }
        }
        let decision = s.policy.decide_consented(req, lifetime, disclosed);
        (added, decision)
    }

    /// Add a grant the user gave (not one recorded from a dialog's answer); returns the one it
    /// replaced. The principal's prompt budget starts afresh.
    pub fn add(&self, grant: Grant) -> Option<Grant> {
        let mut s = self.lock();
        s.prompts.reset(&grant.principal);
        let principal = grant.principal.clone();
        let replaced = s.policy.add_grant(grant);
        s.confirm(&principal, true);
        replaced
    }

    /// Revoke grants (every scope when `scope` is `None`); returns them. The principal's prompt
    /// budget starts afresh.
    pub fn revoke(&self, principal: &str, capability: &str, scope: Option<&str>) -> Vec<Grant> {
        let mut s = self.lock();
        s.prompts.reset(principal);
        let matches = |g: &Grant| {
            g.principal == principal
                && g.capability.name == capability
                && scope.is_none_or(|sc| g.scope == sc)
        };
        let (mut removed, kept): (Vec<Grant>, Vec<Grant>) = std::mem::take(&mut s.suspended)
            .into_iter()
            .partition(matches);
        s.suspended = kept;
        removed.extend(s.policy.revoke(principal, capability, scope));
        removed
    }

    pub fn list(&self) -> Vec<GrantInfo> {
        self.lock().policy.grants.iter().map(Grant::info).collect()
    }

    /// Every grant the user gave, suspended ones too (they stay mirrored in the desktop's
    /// permission store).
    pub fn all(&self) -> Vec<Grant> {
        let s = self.lock();
        s.policy
            .grants
            .iter()
            .chain(&s.suspended)
            .cloned()
            .collect()
    }

    /// The lasting grants (session and always) of `capability` on exactly `scope`, suspended
    /// ones too.
    pub fn mirrored_on(&self, capability: &Capability, scope: &str) -> Vec<Grant> {
        let s = self.lock();
        s.policy
            .grants
            .iter()
            .chain(&s.suspended)
            .filter(|g| g.capability == capability && g.scope == scope)
            .filter(|g| g.lifetime != Lifetime::Once)
            .cloned()
            .collect()
    }

    /// Suspend every grant of `principal` (its agent changed since they were given): they are
    /// no longer honoured, and kept until a grant to it confirms the change. Returns them.
    pub fn suspend(&self, principal: &str) -> Vec<Grant> {
        let mut s = self.lock();
        let capabilities: HashSet<&'static str> = s
            .policy
            .grants
            .iter()
            .filter(|g| g.principal == principal)
            .map(|g| g.capability.name)
            .collect();
        let mut suspended = Vec::new();
        for capability in capabilities {
            suspended.extend(s.policy.grants.revoke(principal, capability, None));
        }
        s.suspended.extend(suspended.iter().cloned());
        suspended
    }

    /// Whether `principal` holds a grant (suspended ones aside).
    /// When the newest live grant of `principal` was given.
    pub fn latest_grant_at(&self, principal: &str) -> Option<u64> {
        self.lock()
            .policy
            .grants
            .iter()
            .filter(|g| g.principal == principal)
            .map(|g| g.granted_at)
            .max()
    }

    pub fn holds_any(&self, principal: &str) -> bool {
        self.lock()
            .policy
            .grants
            .iter()
            .any(|g| g.principal == principal)
    }

    /// Whether `principal` has grants waiting for the user to confirm what changed in it.
    pub fn has_suspended(&self, principal: &str) -> bool {
        self.lock()
            .suspended
            .iter()
            .any(|g| g.principal == principal)
    }

    /// The suspended grants.
    pub fn list_suspended(&self) -> Vec<GrantInfo> {
        self.lock().suspended.iter().map(Grant::info).collect()
    }

    /// The suspended grants of `principal` that a grant to it brought back since the last call.
    pub fn take_restored(&self, principal: &str) -> Vec<Grant> {
        self.lock().restored.remove(principal).unwrap_or_default()
    }

    pub fn begin_mirror(&self, key: (String, String)) {
        let mut s = self.lock();
        s.mirror_seq += 1;
        s.mirror_pending.insert(key);
    }

    pub fn end_mirror(&self, key: &(String, String)) {
        let mut s = self.lock();
        s.mirror_seq += 1;
        let seq = s.mirror_seq;
        s.mirror_pending.remove(key);
        s.mirrored_at.insert(key.clone(), seq);
    }

    /// A grant left the permission store (revoked): its write is history.
    pub fn forget_mirror(&self, key: &(String, String)) {
        self.lock().mirrored_at.remove(key);
    }

    /// Where the count of permission-store writes stands: taken before asking the store,
    /// it tells which writes the answer surely reflects.
    pub fn mirror_mark(&self) -> u64 {
        self.lock().mirror_seq
    }

    /// Whether the grant `key` is being written, or its last write ended after `mark`: then a
    /// look at the store asked after `mark` may not show it, and its absence proves nothing.
    pub fn mirror_seen_since(&self, key: &(String, String), mark: u64) -> bool {
        let s = self.lock();
        s.mirror_pending.contains(key) || s.mirrored_at.get(key).is_some_and(|at| *at > mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(principal: &str, capability: &str, scope: &str) -> Grant {
        Grant {
            principal: principal.into(),
            capability: Capability::lookup(capability).unwrap(),
            scope: scope.into(),
            lifetime: Lifetime::Always,
            granted_at: 1,
        }
    }

    fn request<'a>(chain: &'a [String], capability: &str, scope: &'a str) -> Request<'a> {
        Request {
            chain,
            capability: Capability::lookup(capability).unwrap(),
            scope,
            declared: true,
            delegators_declare: false,
        }
    }

    #[test]
    fn a_write_on_its_way_or_ended_after_a_look_is_not_taken_as_missing() {
        let rights = Rights::default();
        let a = ("tester".to_string(), "web.fetch:example.org".to_string());
        let b = ("helper".to_string(), "web.fetch:example.org".to_string());
        rights.begin_mirror(a.clone());
        rights.end_mirror(&a);
        let mark = rights.mirror_mark();
        // Written before the look: its absence counts.
        assert!(!rights.mirror_seen_since(&a, mark));
        // Never written: its absence counts too.
        assert!(!rights.mirror_seen_since(&b, mark));
        rights.begin_mirror(b.clone());
        assert!(rights.mirror_seen_since(&b, mark), "on its way");
        rights.end_mirror(&b);
        assert!(rights.mirror_seen_since(&b, mark), "ended after the look");
        assert!(!rights.mirror_seen_since(&b, rights.mirror_mark()));
        // Written again after the look: not proved missing either.
        rights.begin_mirror(a.clone());
        rights.end_mirror(&a);
        assert!(rights.mirror_seen_since(&a, mark));
    }

    #[test]
    fn suspended_grants_are_kept_not_honoured_and_come_back_with_a_new_grant() {
        let rights = Rights::with_grants([
            grant("docs", "files.read", "/home/u/a"),
            grant("docs", "files.list", "/home/u/a"),
            grant("web", "web.fetch", "example.org"),
        ]);
        let docs = ["docs".to_string()];
        assert_eq!(rights.suspend("docs").len(), 2);
        assert!(rights.has_suspended("docs") && !rights.has_suspended("web"));
        assert_eq!(rights.list().len(), 1);
        assert_eq!(rights.list_suspended().len(), 2);
        // Kept in the desktop's store.
        assert_eq!(rights.all().len(), 3);
        assert_eq!(
            rights
                .mirrored_on(Capability::lookup("files.read").unwrap(), "/home/u/a")
                .len(),
            1
        );
        assert_eq!(
            rights.decide(request(&docs, "files.read", "/home/u/a")),
            Decision::Ask
        );
        // A grant confirms: the others come back, the new one stays as given.
        let mut new = grant("docs", "files.read", "/home/u/a");
        new.lifetime = Lifetime::Session;
        rights.add(new);
        assert!(!rights.has_suspended("docs"));
        let restored = rights.take_restored("docs");
        assert_eq!(restored.len(), 1);
        assert_eq!(restored[0].capability.name, "files.list");
        assert!(rights.take_restored("docs").is_empty());
        assert_eq!(
            rights.decide(request(&docs, "files.read", "/home/u/a")),
            Decision::Allow {
                lifetime: Lifetime::Session
            }
        );
        assert_eq!(rights.list().len(), 3);
    }

    #[test]
    fn an_allowed_prompt_confirms_and_a_revocation_takes_suspended_grants_too() {
        let rights = Rights::with_grants([
            grant("docs", "files.read", "/home/u/a"),
            grant("docs", "files.read", "/home/u/b"),
        ]);
        rights.suspend("docs");
        let removed = rights.revoke("docs", "files.read", Some("/home/u/b"));
        assert_eq!(removed.len(), 1);
        assert_eq!(rights.list_suspended().len(), 1);
        let docs = ["docs".to_string()];
        let (g, decision) = rights.record_consent(
            request(&docs, "files.list", "/home/u/c"),
            Lifetime::Once,
            2,
            &[],
        );
        assert_eq!(g.len(), 1);
        assert_eq!(
            decision,
            Decision::Allow {
                lifetime: Lifetime::Once
            }
        );
        assert_eq!(rights.take_restored("docs").len(), 1);
        assert_eq!(
            rights.decide(request(&docs, "files.read", "/home/u/a")),
            Decision::Allow {
                lifetime: Lifetime::Always
            }
        );
        // The suspended grant wins over the one a dialog just recorded for its scope.
        rights.suspend("docs");
        let (_, decision) = rights.record_consent(
            request(&docs, "files.read", "/home/u/a"),
            Lifetime::Once,
            3,
            &[],
        );
        assert_eq!(
            decision,
            Decision::Allow {
                lifetime: Lifetime::Always
            }
        );
    }

    #[test]
    fn a_lasting_answer_for_a_chain_leaves_a_delegators_suspended_grants_suspended() {
        let rights = Rights::with_grants([grant("sidekick", "web.fetch", "bank.example")]);
        rights.suspend("sidekick");
        let chain = ["docs".to_string(), "sidekick".to_string()];
        let r = Request {
            delegators_declare: true,
            ..request(&chain, "files.read", "/home/u/d")
        };
        let told = ["sidekick".to_string()];
        let (added, _) = rights.record_consent(r, Lifetime::Session, 4, &told);
        assert_eq!(added.len(), 2, "docs and the sidekick get this right");
        // The sidekick's change was not in the prompt: its other grants are not restored.
        assert_eq!(rights.list_suspended().len(), 1);
        assert!(rights.take_restored("sidekick").is_empty());
    }
}

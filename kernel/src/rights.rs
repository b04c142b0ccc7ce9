//! The user's grants as the kernel owns them: the pure policy (grants, decisions, denials) and
//! the prompt budget behind one lock, and which grants are on their way into the desktop's
//! permission store.

use std::collections::HashSet;
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

    /// Whether the user denied this often enough that it is not asked again.
    pub fn stops_asking(&self, req: Request<'_>) -> bool {
        self.lock().policy.stops_asking(req)
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

    /// Record the user's consent as a grant and decide the request again with it.
    pub fn record_consent(
        &self,
        req: Request<'_>,
        lifetime: Lifetime,
        now: u64,
    ) -> (Option<Grant>, Decision) {
        let mut s = self.lock();
        let grant = s.policy.record_consent(req, lifetime, now);
        (grant, s.policy.decide(req))
    }

    /// Add a grant the user gave (not one recorded from a dialog's answer); returns the one it
    /// replaced. The principal's prompt budget starts afresh.
    pub fn add(&self, grant: Grant) -> Option<Grant> {
        let mut s = self.lock();
        s.prompts.reset(&grant.principal);
        s.policy.add_grant(grant)
    }

    /// Revoke grants (every scope when `scope` is `None`); returns them. The principal's prompt
    /// budget starts afresh.
    pub fn revoke(&self, principal: &str, capability: &str, scope: Option<&str>) -> Vec<Grant> {
        let mut s = self.lock();
        s.prompts.reset(principal);
        s.policy.revoke(principal, capability, scope)
    }

    pub fn list(&self) -> Vec<GrantInfo> {
        self.lock().policy.grants.iter().map(Grant::info).collect()
    }

    pub fn all(&self) -> Vec<Grant> {
        self.lock().policy.grants.iter().cloned().collect()
    }

    /// The lasting grants (session and always) of `capability` on exactly `scope`.
    pub fn mirrored_on(&self, capability: &Capability, scope: &str) -> Vec<Grant> {
        let s = self.lock();
        s.policy
            .grants
            .iter()
            .filter(|g| g.capability == capability && g.scope == scope)
            .filter(|g| g.lifetime != Lifetime::Once)
            .cloned()
            .collect()
    }

    /// Whether a grant is being written to the permission store right now.
    pub fn mirror_pending(&self, key: &(String, String)) -> bool {
        self.lock().mirror_pending.contains(key)
    }

    pub fn begin_mirror(&self, key: (String, String)) {
        self.lock().mirror_pending.insert(key);
    }

    pub fn end_mirror(&self, key: &(String, String)) {
        self.lock().mirror_pending.remove(key);
    }
}

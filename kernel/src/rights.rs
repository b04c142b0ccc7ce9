//! The user's grants as the kernel owns them: the pure policy (grants, decisions, denials) behind
//! one lock, and which grants are on their way into the desktop's permission store.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use agentos_dbus_interfaces::{Capability, GrantInfo, Lifetime};

use crate::policy::{Decision, Grant, Policy, Request};

#[derive(Default)]
struct State {
    policy: Policy,
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

    /// Add a grant; returns the one it replaced.
    pub fn add(&self, grant: Grant) -> Option<Grant> {
        self.lock().policy.add_grant(grant)
    }

    /// Revoke grants (every scope when `scope` is `None`); returns them.
    pub fn revoke(&self, principal: &str, capability: &str, scope: Option<&str>) -> Vec<Grant> {
        self.lock().policy.revoke(principal, capability, scope)
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

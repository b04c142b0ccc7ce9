//! The table of live grants: who may do what, on which scope, for how long.

use agentos_dbus_interfaces::{Capability, GrantInfo, Lifetime};

use super::scope::covers;

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub principal: String,
    pub capability: &'static Capability,
    pub scope: String,
    pub lifetime: Lifetime,
    pub granted_at: u64,
}

impl Grant {
    /// A stored grant as a policy grant, if the kernel understands it.
    pub fn from_info(g: &GrantInfo) -> Option<Grant> {
        let capability = Capability::lookup(&g.capability)?;
        Some(Grant {
            principal: g.principal.clone(),
            capability,
            scope: capability.normalize_scope(&g.scope).ok()?,
            lifetime: Lifetime::parse(&g.lifetime)?,
            granted_at: g.granted_at,
        })
    }

    pub fn info(&self) -> GrantInfo {
        GrantInfo {
            principal: self.principal.clone(),
            capability: self.capability.name.to_string(),
            scope: self.scope.clone(),
            lifetime: self.lifetime.as_str().to_string(),
            granted_at: self.granted_at,
        }
    }
}

/// Live grants. "once" grants are consumed by their first use; "session" grants die with the
/// kernel; "always" grants are also kept in the store by the caller.
#[derive(Debug, Default, Clone)]
pub struct GrantTable {
    grants: Vec<Grant>,
}

impl GrantTable {
    /// Add a grant, replacing one for the same principal, capability and scope; returns the
    /// one replaced.
    pub fn add(&mut self, grant: Grant) -> Option<Grant> {
        let same = self.grants.iter().position(|g| {
            g.principal == grant.principal
                && g.capability == grant.capability
                && g.scope == grant.scope
        });
        let replaced = same.map(|i| self.grants.remove(i));
        self.grants.push(grant);
        replaced
    }

    /// Remove matching grants (`scope: None` = every scope); returns the removed ones.
    pub fn revoke(&mut self, principal: &str, capability: &str, scope: Option<&str>) -> Vec<Grant> {
        let (removed, kept) = std::mem::take(&mut self.grants).into_iter().partition(|g| {
            g.principal == principal
                && g.capability.name == capability
                && scope.is_none_or(|s| g.scope == s)
        });
        self.grants = kept;
        removed
    }

    /// Drop every grant that does not outlive the session.
    pub fn end_session(&mut self) {
        self.grants.retain(|g| g.lifetime == Lifetime::Always);
    }

    /// The grant of `principal` that covers the request, preferring longer-lived ones so that a
    /// "once" grant is only spent when nothing else covers the call.
    pub fn find(&self, principal: &str, capability: &Capability, scope: &str) -> Option<&Grant> {
        self.position(principal, capability, scope, true)
            .map(|i| &self.grants[i])
    }

    /// Like [`find`](Self::find), but spends a "once" grant if that is what covers the call.
    pub fn use_grant(
        &mut self,
        principal: &str,
        capability: &Capability,
        scope: &str,
    ) -> Option<Grant> {
        let i = self.position(principal, capability, scope, true)?;
        if self.grants[i].lifetime == Lifetime::Once {
            Some(self.grants.remove(i))
        } else {
            Some(self.grants[i].clone())
        }
    }

    /// Does `principal` hold a lasting (session or always) grant covering the request? Used for
    /// the rights of delegating agents, whose "once" grants are theirs to spend, not a ceiling.
    pub fn has_lasting(&self, principal: &str, capability: &Capability, scope: &str) -> bool {
        self.position(principal, capability, scope, false).is_some()
    }

    fn position(
        &self,
        principal: &str,
        capability: &Capability,
        scope: &str,
        once_ok: bool,
    ) -> Option<usize> {
        let rank = |l: Lifetime| match l {
            Lifetime::Always => 0,
            Lifetime::Session => 1,
            Lifetime::Once => 2,
        };
        self.grants
            .iter()
            .enumerate()
            .filter(|(_, g)| {
                g.principal == principal
                    && g.capability == capability
                    && (once_ok || g.lifetime != Lifetime::Once)
                    && covers(capability.scope, &g.scope, scope)
            })
            .min_by_key(|(_, g)| rank(g.lifetime))
            .map(|(i, _)| i)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter()
    }
}

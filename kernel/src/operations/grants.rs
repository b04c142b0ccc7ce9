//! The user's grants: given and revoked from the user's own tools (agentctl, the panel), kept in
//! the store when "always", mirrored into the desktop's permission store, audited.

use agentos_dbus_interfaces::{names, AuditDecision, Error, GrantInfo, Lifetime};

use super::capability;
use crate::audit_entry::AuditEntry;
use crate::events::Event;
use crate::kernel::{store_err, Kernel};
use crate::policy::Grant;

impl Kernel {
    /// The user grants a capability (from agentctl or the panel).
    pub async fn grant(
        &self,
        principal: &str,
        capability_name: &str,
        scope: &str,
        lifetime: &str,
    ) -> Result<(), Error> {
        let cap = capability(capability_name)?;
        let lifetime = Lifetime::parse(lifetime).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "lifetime must be once, session or always, not {lifetime:?}"
            ))
        })?;
        if !names::is_valid_principal(principal) {
            return Err(Error::InvalidArgument(format!(
                "{principal:?} is not a valid principal"
            )));
        }
        let scope = cap.normalize_scope(scope).map_err(Error::InvalidArgument)?;
        let grant = Grant {
            principal: principal.into(),
            capability: cap,
            scope,
            lifetime,
            granted_at: self.now(),
        };
        // Recorded before it takes effect: a stored grant always has the record that gave it
        // (the start-up check drops any that has not).
        self.audit(AuditEntry {
            principal,
            capability: cap.name,
            scope: &grant.scope,
            decision: AuditDecision::Grant,
            reason: &format!("granted by the user ({})", lifetime.as_str()),
        })?;
        if lifetime == Lifetime::Always {
            self.store()
                .insert_grant(&grant.info())
                .map_err(store_err)?;
        } else {
            // It replaces any grant for the same scope, a stored "always" one too: otherwise that
            // would come back at the next start.
            self.store()
                .delete_grants(principal, cap.name, Some(&grant.scope))
                .map_err(store_err)?;
        }
        let replaced = self.rights.add(grant.clone());
        self.events.publish(Event::GrantAdded(grant.info()));
        if lifetime == Lifetime::Once {
            // "once" grants are not mirrored; the desktop must not keep showing the one replaced.
            self.mirror_remove(replaced.as_slice()).await;
        } else {
            self.mirror_add(std::slice::from_ref(&grant)).await;
        }
        Ok(())
    }

    /// The user revokes grants; applies to the very next call.
    pub async fn revoke(
        &self,
        principal: &str,
        capability_name: &str,
        scope: &str,
    ) -> Result<u32, Error> {
        let cap = capability(capability_name)?;
        let scope = if scope.is_empty() {
            None
        } else {
            Some(cap.normalize_scope(scope).map_err(Error::InvalidArgument)?)
        };
        let removed = self.rights.revoke(principal, cap.name, scope.as_deref());
        self.store()
            .delete_grants(principal, cap.name, scope.as_deref())
            .map_err(store_err)?;
        self.audit(AuditEntry {
            principal,
            capability: cap.name,
            scope: scope.as_deref().unwrap_or("*"),
            decision: AuditDecision::Revoke,
            reason: "revoked by the user",
        })?;
        for g in &removed {
            self.events.publish(Event::GrantRevoked(g.info()));
        }
        self.end_what_was_allowed(&removed);
        self.mirror_remove(&removed).await;
        Ok(removed.len() as u32)
    }

    /// Rights taken away end the work they let start: the tasks a principal handed to an
    /// agent under its `agent.delegate` right, with what hangs below them, are canceled.
    pub(crate) fn end_what_was_allowed(&self, removed: &[Grant]) {
        for g in removed
            .iter()
            .filter(|g| g.capability.name == "agent.delegate")
        {
            // A grant's scope is the agent it names (a revocation of every scope lists each).
            for id in self.tasks.unfinished_from(&g.principal, &g.scope) {
                let why = format!(
                    "canceled: {}'s right to hand tasks to {} was taken away",
                    g.principal, g.scope
                );
                self.cancel_subtree(id, &why, true);
            }
        }
    }

    pub fn list_grants(&self) -> Vec<GrantInfo> {
        self.rights.list()
    }
}

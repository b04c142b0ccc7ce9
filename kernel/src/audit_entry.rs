//! An audit record as the kernel makes it: who, what, on which scope, the typed decision, and why.

use agentos_data::NewAuditEntry;
use agentos_dbus_interfaces::AuditDecision;

/// One decision to record (the time is the kernel clock's when it is appended).
#[derive(Debug, Clone, Copy)]
pub struct AuditEntry<'a> {
    pub principal: &'a str,
    pub capability: &'a str,
    pub scope: &'a str,
    pub decision: AuditDecision,
    pub reason: &'a str,
}

impl AuditEntry<'_> {
    /// The entry as the store keeps it, at `time`.
    pub fn at(self, time: u64) -> NewAuditEntry {
        NewAuditEntry {
            time,
            principal: self.principal.to_string(),
            capability: self.capability.to_string(),
            scope: self.scope.to_string(),
            decision: self.decision.as_str().to_string(),
            reason: self.reason.to_string(),
        }
    }
}

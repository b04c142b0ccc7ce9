//! Direct calls into an agent from a bus client or a private channel (`agent.call`), checked
//! and audited like every other use of an agent.

use std::sync::Arc;

use agentos_dbus_interfaces::{names, AuditDecision, ByteBuf, Bytes, Error};

use super::capability;
use crate::audit_entry::AuditEntry;
use crate::caller::Caller;
use crate::config::AGENT_CALL_TIMEOUT;
use crate::kernel::{check_text, Kernel};

impl Kernel {
    /// A direct call into an agent from a bus client (checked and audited).
    pub async fn call_agent(
        self: &Arc<Self>,
        caller: Caller,
        agent: &str,
        method: &str,
        payload: &[u8],
    ) -> Result<ByteBuf, Error> {
        check_text("agent id", agent, names::MAX_NAME_LEN, false)?;
        check_text("method name", method, 255, false)?;
        if payload.len() > names::MAX_CALL_PAYLOAD {
            return Err(Error::InvalidArgument(format!(
                "the payload is larger than {} bytes",
                names::MAX_CALL_PAYLOAD
            )));
        }
        // Nobody is asked, and nothing recorded, about an agent that is not there.
        if !self.agents.contains(agent) {
            return Err(Error::UnknownAgent(format!(
                "no agent named {agent:?} is installed"
            )));
        }
        let cap = capability("agent.call")?;
        if caller != Caller::Host {
            let subject = caller.app_subject(format!("call {method}"));
            self.authorize(&subject, cap, agent).await?;
        }
        if caller == Caller::Host {
            // The user needs no grant; the decision is still recorded before the call goes out.
            self.audit(AuditEntry {
                principal: "host",
                capability: cap.name,
                scope: agent,
                decision: AuditDecision::Allow,
                reason: "the user called it",
            })?;
        }
        let instance = self.ensure_instance(agent).await?;
        tokio::time::timeout(
            AGENT_CALL_TIMEOUT,
            instance.service.call(method, Bytes::new(payload)),
        )
        .await
        .map_err(|_| {
            Error::Timeout(format!(
                "agent {agent} did not answer within {} s",
                AGENT_CALL_TIMEOUT.as_secs()
            ))
        })?
    }

    /// Count a private channel `caller` opens against its quota; the channel holds the slot
    /// until it closes.
    pub fn channel_slot(self: &Arc<Self>, caller: &Caller) -> Result<ChannelSlot, Error> {
        let principal = caller.principal().to_string();
        self.quotas()
            .open_channel(&principal)
            .map_err(Error::QuotaExceeded)?;
        Ok(ChannelSlot {
            kernel: Arc::downgrade(self),
            principal,
        })
    }
}

/// One open private channel of a caller, counted against its quota while it lives.
pub struct ChannelSlot {
    kernel: std::sync::Weak<Kernel>,
    principal: String,
}

impl Drop for ChannelSlot {
    fn drop(&mut self) {
        if let Some(k) = self.kernel.upgrade() {
            k.quotas().close_channel(&self.principal);
        }
    }
}

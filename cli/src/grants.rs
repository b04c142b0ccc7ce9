//! `agentctl grants`, `agentctl grant` and `agentctl revoke`: the user's standing permissions.

use agentos_dbus_interfaces::{GrantInfo, Lifetime};

use crate::connect::Kernel;
use crate::error::Result;
use crate::output::{self, Table};

pub async fn list(kernel: &Kernel, json: bool) -> Result<u8> {
    let grants = kernel.proxy.list_grants().await?;
    if json {
        output::json(&grants)?;
        return Ok(0);
    }
    if grants.is_empty() {
        output::emit("no grants\n")?;
    } else {
        output::emit(&table(&grants))?;
    }
    // Grants kept but not honoured because their agent changed (an older kernel has no list).
    let suspended = kernel
        .proxy
        .list_suspended_grants()
        .await
        .unwrap_or_default();
    if !suspended.is_empty() {
        output::emit(
            "\nsuspended until you confirm (the agent's program or manifest changed since; \
             any grant to it confirms):\n",
        )?;
        output::emit(&table(&suspended))?;
    }
    Ok(0)
}

fn table(grants: &[GrantInfo]) -> String {
    let mut table = Table::new(&["PRINCIPAL", "CAPABILITY", "SCOPE", "LIFETIME", "GRANTED"]);
    for grant in grants {
        table.row(vec![
            grant.principal.clone(),
            grant.capability.clone(),
            if grant.scope.is_empty() {
                "*".to_string()
            } else {
                grant.scope.clone()
            },
            grant.lifetime.clone(),
            output::time(grant.granted_at),
        ]);
    }
    table.render()
}

pub async fn grant(
    kernel: &Kernel,
    principal: &str,
    capability: &str,
    scope: &str,
    lifetime: Lifetime,
) -> Result<u8> {
    let lifetime = lifetime.as_str();
    kernel
        .proxy
        .grant(principal, capability, scope, lifetime)
        .await?;
    output::emit(&format!(
        "granted {} on {} to {} ({lifetime})\n",
        output::clean(capability),
        output::clean(scope),
        output::clean(principal)
    ))?;
    Ok(0)
}

pub async fn revoke(
    kernel: &Kernel,
    principal: &str,
    capability: &str,
    scope: Option<&str>,
) -> Result<u8> {
    let removed = kernel
        .proxy
        .revoke(principal, capability, scope.unwrap_or(""))
        .await?;
    let plural = if removed == 1 { "" } else { "s" };
    output::emit(&format!("removed {removed} grant{plural}\n"))?;
    Ok(0)
}

//! `agentctl agents`: the agents the kernel knows.

use crate::connect::Kernel;
use crate::error::Result;
use crate::output::{self, Table};

pub async fn list(kernel: &Kernel, json: bool) -> Result<u8> {
    let agents = kernel.proxy.list_agents().await?;
    if json {
        output::json(&agents)?;
        return Ok(0);
    }
    if agents.is_empty() {
        output::emit("no agents\n")?;
        return Ok(0);
    }
    let mut table = Table::new(&["ID", "NAME", "CONNECTED", "CAPABILITIES", "DESCRIPTION"]);
    for agent in &agents {
        table.row(vec![
            agent.id.clone(),
            agent.name.clone(),
            if agent.connected { "yes" } else { "no" }.to_string(),
            if agent.capabilities.is_empty() {
                "-".to_string()
            } else {
                agent.capabilities.join(",")
            },
            output::truncate(&agent.description, 80),
        ]);
    }
    output::emit(&table.render())?;
    Ok(0)
}

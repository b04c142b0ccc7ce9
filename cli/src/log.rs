//! `agentctl log`: read the audit log, or verify it with `--verify` (hash chain, head,
//! checkpoint, the kernel's findings; what was and was not checked).

use serde::Serialize;

use crate::connect::Kernel;
use crate::error::Result;
use crate::output::{self, Table};

/// Hex digits of a record's hash shown in the table.
const HASH_WIDTH: usize = 12;

pub async fn read(kernel: &Kernel, after: u64, limit: u32, json: bool) -> Result<u8> {
    let records = kernel.proxy.read_audit_log(after, limit).await?;
    if json {
        output::json(&records)?;
        return Ok(0);
    }
    if records.is_empty() {
        output::emit("no audit records\n")?;
        return Ok(0);
    }
    let mut table = Table::new(&[
        "SEQ",
        "TIME",
        "PRINCIPAL",
        "CAPABILITY",
        "SCOPE",
        "DECISION",
        "HASH",
        "REASON",
    ]);
    for r in &records {
        table.row(vec![
            r.seq.to_string(),
            output::time(r.time),
            r.principal.clone(),
            r.capability.clone(),
            output::truncate(&r.scope, 60),
            r.decision.clone(),
            r.hash.chars().take(HASH_WIDTH).collect(),
            r.reason.clone(),
        ]);
    }
    output::emit(&table.render())?;
    Ok(0)
}

#[derive(Serialize)]
struct Verdict<'a> {
    ok: bool,
    records: u64,
    problem: &'a str,
    checkpoint: &'a str,
    checked: &'a [String],
    unchecked: &'a [String],
}

/// Verify the log: the hash chain, the head, the checkpoint beside the database, the kernel's
/// own findings; print what was checked and what could not be. Exit status 1 when a problem
/// was found.
pub async fn verify(kernel: &Kernel, json: bool) -> Result<u8> {
    let (ok, records, problem, checkpoint, checked, unchecked) =
        kernel.proxy.verify_audit_log_details().await?;
    if json {
        output::json(&Verdict {
            ok,
            records,
            problem: &problem,
            checkpoint: &checkpoint,
            checked: &checked,
            unchecked: &unchecked,
        })?;
        return Ok(if ok { 0 } else { 1 });
    }
    let mut text = if ok {
        format!("audit log intact: {records} records\n")
    } else {
        format!("audit log TAMPERED ({records} records intact)\n")
    };
    text.push_str(&format!(
        "checkpoint: {}\nchecked:\n",
        output::clean(&checkpoint)
    ));
    for line in &checked {
        text.push_str(&format!("  - {}\n", output::clean(line)));
    }
    text.push_str("not checked:\n");
    for line in &unchecked {
        text.push_str(&format!("  - {}\n", output::clean(line)));
    }
    output::emit(&text)?;
    if !ok {
        output::warn(&format!("audit log TAMPERED: {}", output::clean(&problem)));
    }
    Ok(if ok { 0 } else { 1 })
}

//! What callers may read and register: agents, tasks (a page at a time), the audit log, consent
//! requests waiting now, the task the user watches, and an agent registering itself.

use std::sync::Arc;

use agentos_dbus_interfaces::{AgentInfo, AuditRecord, ConsentRequestInfo, Error, TaskInfo};

use crate::caller::Caller;
use crate::kernel::{store_err, Kernel};

/// Most entries one page of tasks or audit records may hold.
pub const MAX_PAGE: u32 = 10_000;

fn check_limit(n: u32) -> Result<u32, Error> {
    if (1..=MAX_PAGE).contains(&n) {
        Ok(n)
    } else {
        Err(Error::InvalidArgument(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )))
    }
}

/// Only the user's own tools may do this.
pub(crate) fn require_users_tool(caller: &Caller, what: &str) -> Result<(), Error> {
    if caller.is_users_tool() {
        Ok(())
    } else {
        Err(Error::AccessDenied(format!(
            "{} may not {what}; only the user can",
            caller.principal()
        )))
    }
}

/// The outcome of verifying the audit log: intact or not, records checked, the first problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub ok: bool,
    pub records: u64,
    pub problem: String,
}

impl Kernel {
    pub fn list_agents(&self) -> Vec<AgentInfo> {
        self.agents.list()
    }

    /// One agent as `ListAgents` shows it.
    pub fn agent_info(&self, id: &str) -> Result<AgentInfo, Error> {
        self.agents
            .info(id)
            .ok_or_else(|| Error::UnknownAgent(format!("agent {id} is gone")))
    }

    /// The newest tasks, at most `limit`.
    pub fn list_tasks(&self, limit: u32) -> Result<Vec<TaskInfo>, Error> {
        Ok(self.list_task_page(0, limit)?.0)
    }

    /// A page of the task history below `before` (0: from the newest), newest first, and the
    /// `before` of the next page (0: none). Tasks of this run are fresher in memory than in
    /// the store, so their entries come from memory.
    pub fn list_task_page(&self, before: u64, limit: u32) -> Result<(Vec<TaskInfo>, u64), Error> {
        let limit = check_limit(limit)?;
        let mut tasks = self
            .store()
            .list_task_page(before, limit)
            .map_err(store_err)?;
        self.tasks.overlay(&mut tasks);
        let next = match tasks.last() {
            Some(t) if tasks.len() == limit as usize && t.id > 1 => t.id,
            _ => 0,
        };
        Ok((tasks, next))
    }

    /// Audit records after `after`, oldest first (the journal is committed first).
    pub fn read_audit_log(&self, after: u64, limit: u32) -> Result<Vec<AuditRecord>, Error> {
        let limit = check_limit(limit)?;
        self.commit_audit()?;
        self.store().read_audit(after, limit).map_err(store_err)
    }

    /// Walk the audit log's whole hash chain.
    pub fn verify_audit_log(&self) -> Result<Verification, Error> {
        self.commit_audit()?;
        let v = self.store().verify_audit().map_err(store_err)?;
        Ok(Verification {
            ok: v.ok,
            records: v.records,
            problem: v.problem.unwrap_or_default(),
        })
    }

    /// The consent requests waiting for the user now; for the user's own tools.
    pub fn list_consent_requests(&self, caller: &Caller) -> Result<Vec<ConsentRequestInfo>, Error> {
        require_users_tool(caller, "see consent requests")?;
        Ok(self.consent.pending())
    }

    /// The bus client `client` (a unique name) watches `task` now (0: none).
    pub fn set_focus(&self, caller: &Caller, client: &str, task: u64) -> Result<(), Error> {
        if task != 0 {
            let owner = self.tasks.root_caller(task).ok_or_else(|| {
                Error::UnknownTask(format!("no task {task} is running in this kernel"))
            })?;
            if !matches!(caller, Caller::Host) && caller.principal() != owner {
                return Err(Error::AccessDenied(format!(
                    "task {task} was not started by you"
                )));
            }
        }
        self.focus.set(client, task);
        Ok(())
    }

    /// The tasks some client watches now.
    pub fn focused_tasks(&self) -> Vec<u64> {
        self.focus.watched()
    }

    /// An agent registers itself with a socket. Its identity is the caller's: a Flatpak app
    /// registers under its app id (and must say so), host processes (which cannot be told apart
    /// reliably) all as "host"; agents cannot register others. Returns the agent's id.
    pub async fn register_agent(
        self: &Arc<Self>,
        caller: &Caller,
        agent_id: &str,
        socket: std::os::unix::net::UnixStream,
    ) -> Result<String, Error> {
        let (identity, flatpak) = match caller {
            Caller::Host | Caller::HostApp(_) => ("host".to_string(), false),
            Caller::App(app) if app == agent_id => (app.clone(), true),
            Caller::App(app) => return Err(Error::AccessDenied(format!(
                "app {app} cannot register as {agent_id:?}: agents register under their own app id"
            ))),
            Caller::Agent { .. } => {
                return Err(Error::AccessDenied(
                    "agents cannot register other agents".into(),
                ))
            }
        };
        self.register(&identity, flatpak, socket).await
    }
}

//! What callers may read and register: agents, tasks (a page at a time), the audit log, grants,
//! consent requests waiting now, the task the user watches, and an agent registering itself.
//!
//! Each caller sees its own. The user's own processes (`Caller::Host`: agentctl, terminals) see
//! everything. An app, sandboxed or a host app in its own unit, sees the task trees it started
//! (every task below a top-level task whose caller it is: goal, state, progress, message,
//! result, artifacts), the grants given to it and the audit records naming it, and nothing
//! else. Agents read the tasks they work on through `Host1` on their private connection; on
//! the bus an agent is the host or app that runs it.

use std::sync::Arc;

use agentos_data::{CheckpointCheck, CHECKPOINT_FILE};
use agentos_dbus_interfaces::{
    AgentInfo, AuditRecord, ConsentRequestInfo, Error, GrantInfo, TaskInfo,
};

use crate::audit::{CHECKPOINT_FINDING, FINDER};
use crate::caller::Caller;
use crate::focus::Watcher;
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

/// Whether `caller` may see the data of a task tree started by `owner` (a root task's caller):
/// the user sees every tree, an app the trees it started; an agent reads task data through
/// `Host1` only.
pub fn sees_tree(caller: &Caller, owner: &str) -> bool {
    match caller {
        Caller::Host => true,
        Caller::HostApp(principal) | Caller::App(principal) => principal == owner,
        Caller::Agent { .. } => false,
    }
}

/// The outcome of verifying the audit log: intact or not, records found intact, the problems
/// found (empty when intact), and in plain words what was checked and what could not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub ok: bool,
    pub records: u64,
    pub problem: String,
    /// What comparing the log with its checkpoint found (`CheckpointCheck::word`).
    pub checkpoint: String,
    pub checked: Vec<String>,
    pub unchecked: Vec<String>,
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

    /// The caller that started the tree task `id` belongs to: from this run's tasks, else from
    /// the store (walking up the stored parents).
    pub fn task_owner(&self, id: u64) -> Result<String, Error> {
        if let Some(owner) = self.tasks.root_caller(id) {
            return Ok(owner);
        }
        let store = self.store();
        let mut cur = store
            .get_task(id)
            .map_err(store_err)?
            .ok_or_else(|| Error::UnknownTask(format!("no task {id}")))?;
        // A parent is always older than its child; a row that breaks this belongs to no one.
        while cur.parent != 0 {
            let parent = cur.parent;
            match store.get_task(parent).map_err(store_err)? {
                Some(p) if parent < cur.id => cur = p,
                _ => return Ok(String::new()),
            }
        }
        Ok(cur.caller)
    }

    /// Refuses unless `caller` may see the data of task `id` (see the module's rule).
    pub fn check_sees_task(&self, caller: &Caller, id: u64) -> Result<(), Error> {
        if matches!(caller, Caller::Host) {
            return Ok(());
        }
        let owner = self.task_owner(id)?;
        if sees_tree(caller, &owner) {
            Ok(())
        } else {
            Err(Error::AccessDenied(format!(
                "task {id} belongs to a task tree {} did not start; only its starter and the user may see it",
                caller.principal()
            )))
        }
    }

    /// One task, for a caller that may see it.
    pub fn task_info_for(&self, caller: &Caller, id: u64) -> Result<TaskInfo, Error> {
        self.check_sees_task(caller, id)?;
        self.task_info(id)
    }

    /// The newest tasks `caller` may see, at most `limit`.
    pub fn list_tasks(&self, caller: &Caller, limit: u32) -> Result<Vec<TaskInfo>, Error> {
        Ok(self.list_task_page(caller, 0, limit)?.0)
    }

    /// A page of the task history `caller` may see below `before` (0: from the newest), newest
    /// first, and the `before` of the next page (0: none). Tasks of this run are fresher in
    /// memory than in the store, so their entries come from memory.
    pub fn list_task_page(
        &self,
        caller: &Caller,
        before: u64,
        limit: u32,
    ) -> Result<(Vec<TaskInfo>, u64), Error> {
        let limit = check_limit(limit)?;
        let mut tasks = match caller {
            Caller::Host => self.store().list_task_page(before, limit),
            Caller::HostApp(_) | Caller::App(_) => {
                self.store()
                    .list_task_page_of(caller.principal(), before, limit)
            }
            Caller::Agent { .. } => Ok(Vec::new()),
        }
        .map_err(store_err)?;
        self.tasks.overlay(&mut tasks);
        let next = match tasks.last() {
            Some(t) if tasks.len() == limit as usize && t.id > 1 => t.id,
            _ => 0,
        };
        Ok((tasks, next))
    }

    /// Audit records after `after` that `caller` may see, oldest first (the journal is
    /// committed first): all of them for the user, those naming the caller for an app.
    pub fn read_audit_log(
        &self,
        caller: &Caller,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, Error> {
        let limit = check_limit(limit)?;
        self.commit_audit()?;
        if matches!(caller, Caller::Host) {
            return self.store().read_audit(after, limit).map_err(store_err);
        }
        let principal = caller.principal();
        let mut found = Vec::new();
        let mut after = after;
        // The log has no index by principal: read it in pages (the store is free between
        // them) and keep the caller's records.
        loop {
            let page = self
                .store()
                .read_audit(after, MAX_PAGE)
                .map_err(store_err)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full = page.len() == MAX_PAGE as usize;
            for record in page {
                if record.principal == principal {
                    found.push(record);
                    if found.len() == limit as usize {
                        return Ok(found);
                    }
                }
            }
            if !full {
                break;
            }
        }
        Ok(found)
    }

    /// The live grants `caller` may see: all of them for the user, its own for an app.
    pub fn list_grants_for(&self, caller: &Caller) -> Vec<GrantInfo> {
        let mut grants = self.list_grants();
        if !matches!(caller, Caller::Host) {
            grants.retain(|g| g.principal == caller.principal());
        }
        grants
    }

    /// Verify the audit log, for the user only (it covers every record): its whole hash chain
    /// and head, the database against the checkpoint beside it (a tail cut off and a rewritten
    /// log show there), and the findings the kernel recorded at its starts. Says what it
    /// checked and what it could not.
    pub fn verify_audit_log(&self, caller: &Caller) -> Result<Verification, Error> {
        if !matches!(caller, Caller::Host) {
            return Err(Error::AccessDenied(format!(
                "{} may not verify the whole audit log; only the user can",
                caller.principal()
            )));
        }
        self.commit_audit()?;
        let mut findings: Vec<(u64, String, String)> = Vec::new();
        let (v, check) = {
            let store = self.store();
            let v = store
                .walk_audit(|r| {
                    if r.principal == FINDER && r.capability == CHECKPOINT_FINDING {
                        findings.push((r.seq, r.scope.clone(), r.reason.clone()));
                    }
                })
                .map_err(store_err)?;
            (v, store.check_audit_checkpoint().map_err(store_err)?)
        };
        let (mut problems, mut checked, mut unchecked) = (Vec::new(), Vec::new(), Vec::new());
        if v.ok {
            checked.push(format!(
                "hash chain: all {} records match their contents and link to the one before; \
                 the head names the last",
                v.records
            ));
        } else {
            problems.push(v.problem.clone().unwrap_or_default());
            checked.push(format!("hash chain: records 1 to {} are intact", v.records));
            unchecked.push(format!(
                "records after {}: the chain breaks there, so nothing after it can be trusted",
                v.records
            ));
        }
        match &check {
            CheckpointCheck::Matched { seq: 0 } => {
                unchecked.push(format!("the tail: {}", check.describe()));
            }
            CheckpointCheck::Matched { seq } => {
                checked.push(format!(
                    "checkpoint ({CHECKPOINT_FILE} beside the database): {}",
                    check.describe()
                ));
                if v.ok && v.records > *seq {
                    unchecked.push(format!(
                        "records {} to {}: committed after the checkpoint was written",
                        seq + 1,
                        v.records
                    ));
                }
            }
            CheckpointCheck::Missing { .. } => {
                unchecked.push(format!("the tail: {}", check.describe()));
            }
            _ => problems.push(check.describe()),
        }
        if findings.is_empty() {
            checked.push("findings: the kernel recorded none about the log at its starts".into());
        }
        for (seq, word, reason) in findings {
            if word == (CheckpointCheck::Missing { records: 0 }).word() {
                unchecked.push(format!("before record {seq}: {reason}"));
            } else {
                let finding = format!("record {seq}, the kernel's own finding {reason}");
                checked.push(format!("findings: {finding}"));
                problems.push(finding);
            }
        }
        unchecked.push(
            "a process running as you can rewrite the database and the checkpoint together \
             and compute every hash again: nothing kept beside the database can tell that \
             (a copy of the log kept elsewhere, such as agentctl log --json saved off this \
             machine, can)"
                .into(),
        );
        Ok(Verification {
            ok: problems.is_empty(),
            records: v.records,
            problem: problems.join("; "),
            checkpoint: check.word().into(),
            checked,
            unchecked,
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
            if !sees_tree(caller, &owner) {
                return Err(Error::AccessDenied(format!(
                    "task {task} was not started by you"
                )));
            }
        }
        // An app only says that the user watches its tree: its requests then count as its one
        // interactive request at a time, and what it queued is not served first for it.
        let watcher = if matches!(caller, Caller::Host) {
            Watcher::User
        } else {
            Watcher::App
        };
        self.focus.set(client, task, watcher);
        if watcher == Watcher::User {
            self.models_follow_focus(task);
        }
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
            Caller::App(app) => {
                return Err(Error::AccessDenied(format!(
                "app {app} cannot register as {agent_id:?}: agents register under their own app id"
            )))
            }
            Caller::Agent { .. } => {
                return Err(Error::AccessDenied(
                    "agents cannot register other agents".into(),
                ))
            }
        };
        self.register(&identity, flatpak, socket).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use agentos_data::NewTask;
    use agentos_dbus_interfaces::TaskState;

    const EDITOR: &str = "host:org.example.Editor";

    fn ids(tasks: Vec<TaskInfo>) -> Vec<u64> {
        tasks.into_iter().map(|t| t.id).collect()
    }

    #[tokio::test]
    async fn each_caller_sees_its_own_trees_grants_and_records() {
        let dir = tempfile::tempdir().unwrap();
        let k = Kernel::for_test(dir.path(), vec![], Arc::new(ManualClock::new(1)));
        // Tasks of an earlier run: only in the store.
        let insert = |parent, caller: &str| {
            k.store()
                .insert_task(&NewTask {
                    parent,
                    agent: "docs".into(),
                    caller: caller.into(),
                    goal: "g".into(),
                    state: TaskState::Completed,
                    created: 1,
                    deadline: 2,
                })
                .unwrap()
        };
        let a = insert(0, EDITOR);
        let a1 = insert(a, "docs");
        let b = insert(0, "host");
        let (host, editor) = (Caller::Host, Caller::HostApp(EDITOR.into()));
        let sandboxed = Caller::App("org.example.Editor".into());
        assert_eq!(ids(k.list_tasks(&host, 10).unwrap()), [b, a1, a]);
        assert_eq!(ids(k.list_tasks(&editor, 10).unwrap()), [a1, a]);
        assert!(k.list_tasks(&sandboxed, 10).unwrap().is_empty());
        assert_eq!(k.task_owner(a1).unwrap(), EDITOR);
        assert!(k.task_info_for(&editor, a1).is_ok());
        assert!(matches!(
            k.task_info_for(&editor, b),
            Err(Error::AccessDenied(_))
        ));
        assert!(matches!(
            k.check_sees_task(&sandboxed, a),
            Err(Error::AccessDenied(_))
        ));
        assert!(matches!(
            k.check_sees_task(&sandboxed, 999),
            Err(Error::UnknownTask(_))
        ));
        assert!(matches!(
            k.list_artifacts(&sandboxed, a1),
            Err(Error::AccessDenied(_))
        ));

        for principal in [EDITOR, "org.example.Editor", "docs"] {
            k.grant(principal, "agent.delegate", "web", "session")
                .await
                .unwrap();
        }
        let principals = |c: &Caller| -> Vec<String> {
            k.list_grants_for(c)
                .into_iter()
                .map(|g| g.principal)
                .collect()
        };
        assert_eq!(principals(&editor), [EDITOR]);
        assert_eq!(principals(&sandboxed), ["org.example.Editor"]);
        assert_eq!(principals(&host).len(), 3);
        let records = |c: &Caller| -> Vec<String> {
            k.read_audit_log(c, 0, 100)
                .unwrap()
                .into_iter()
                .map(|r| r.principal)
                .collect()
        };
        assert_eq!(records(&editor), [EDITOR]);
        assert_eq!(records(&host).len(), 3);
        assert!(k.verify_audit_log(&host).unwrap().ok);
        assert!(matches!(
            k.verify_audit_log(&editor),
            Err(Error::AccessDenied(_))
        ));
    }
}

//! What callers can ask of the kernel: delegation, tool calls, results, agent calls, grants.
//! Each operation checks its arguments and the caller's rights, then acts.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agentos_dbus_interfaces::{
    names, ArtifactInfo, ByteBuf, Bytes, Capability, Error, FileEntry, GrantInfo, Lifetime,
    TaskState,
};

use crate::kernel::{check_text, store_err, Caller, Kernel, MAX_ARTIFACTS, MAX_ARTIFACT_BYTES};
use crate::policy::Grant;
use crate::tools::{self, files, web};

fn capability(name: &str) -> Result<&'static Capability, Error> {
    Capability::lookup(name)
        .ok_or_else(|| Error::InvalidArgument(format!("unknown capability {name:?}")))
}

/// A folder scope as the user means it: normalized, then resolved to its real path.
fn resolve_folder(folder: &str) -> Result<String, Error> {
    let normalized = capability("files.read")?
        .normalize_scope(folder)
        .map_err(Error::InvalidArgument)?;
    let real = std::fs::canonicalize(&normalized).map_err(|e| {
        Error::InvalidArgument(format!("the folder {normalized:?} cannot be opened: {e}"))
    })?;
    real.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidArgument("the folder's path is not valid UTF-8".into()))
}

impl Kernel {
    /// Delegate a goal to an agent.
    pub async fn delegate(
        self: &Arc<Self>,
        caller: Caller,
        agent: &str,
        goal: &str,
        timeout_s: Option<u32>,
    ) -> Result<u64, Error> {
        check_text("goal", goal, names::MAX_GOAL_LEN, false)?;
        check_text("agent id", agent, names::MAX_NAME_LEN, false)?;
        if let Some(t) = timeout_s {
            if !(1..=86_400).contains(&t) {
                return Err(Error::InvalidArgument(
                    "timeout must be between 1 and 86400 seconds".into(),
                ));
            }
        }
        if !self.inner().agents.contains_key(agent) {
            return Err(Error::UnknownAgent(format!(
                "no agent named {agent:?} is installed"
            )));
        }
        let cap = capability("agent.delegate")?;
        match &caller {
            Caller::Host => {
                self.audit("host", cap.name, agent, "allow", "the user delegated it")?
            }
            Caller::App(_) | Caller::HostApp(_) => {
                self.authorize(&caller.app_subject(goal.to_string()), cap, agent)
                    .await?;
            }
            Caller::Agent { id, task } => {
                let subject = self.agent_subject(id, *task, cap)?;
                self.authorize(&subject, cap, agent).await?;
            }
        }
        self.create_task(
            &caller,
            agent,
            goal,
            timeout_s.map(|s| Duration::from_secs(s.into())),
        )
        .await
    }

    /// `files.list` for an agent's task.
    pub async fn list_files(
        self: &Arc<Self>,
        agent: &str,
        task: u64,
        folder: &str,
        path: &str,
    ) -> Result<Vec<FileEntry>, Error> {
        let root = self
            .authorize_folder(agent, task, "files.list", folder)
            .await?;
        let path = path.to_string();
        blocking(move || files::list(Path::new(&root), &path).map_err(Error::from)).await
    }

    /// `files.read` for an agent's task: a read-only fd.
    pub async fn open_file(
        self: &Arc<Self>,
        agent: &str,
        task: u64,
        folder: &str,
        path: &str,
    ) -> Result<OwnedFd, Error> {
        let root = self
            .authorize_folder(agent, task, "files.read", folder)
            .await?;
        let path = path.to_string();
        blocking(move || files::open_file(Path::new(&root), &path).map_err(Error::from)).await
    }

    /// `files.read` through the Documents portal, for an agent that is a Flatpak app: the file is
    /// exported to that app alone and its path inside the sandbox returned.
    pub async fn share_file(
        self: &Arc<Self>,
        agent: &str,
        task: u64,
        folder: &str,
        path: &str,
    ) -> Result<String, Error> {
        if !self.inner().flatpak_agents.contains(agent) {
            return Err(Error::NotSupported(format!(
                "agent {agent} is not a Flatpak app; use OpenFile"
            )));
        }
        let root = self
            .authorize_folder(agent, task, "files.read", folder)
            .await?;
        let rel = path.to_string();
        let fd =
            blocking(move || files::open_path(Path::new(&root), &rel).map_err(Error::from)).await?;
        let name = Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::InvalidArgument(format!("{path:?} names no file")))?
            .to_string();
        let conn = self
            .bus
            .get()
            .ok_or_else(|| Error::Failed("the kernel is not on a bus".into()))?;
        let id = crate::documents::export(conn, fd, agent).await?;
        Ok(format!("/run/flatpak/doc/{id}/{name}"))
    }

    async fn authorize_folder(
        self: &Arc<Self>,
        agent: &str,
        task: u64,
        cap: &str,
        folder: &str,
    ) -> Result<String, Error> {
        let cap = capability(cap)?;
        let subject = self.agent_subject(agent, task, cap)?;
        let root = resolve_folder(folder)?;
        self.authorize(&subject, cap, &root).await?;
        Ok(root)
    }

    /// `web.fetch` for an agent's task; every redirect's host is checked too.
    pub async fn fetch_url(
        self: &Arc<Self>,
        agent: &str,
        task: u64,
        url: &str,
    ) -> Result<web::Fetched, Error> {
        let cap = capability("web.fetch")?;
        let (mut url, mut host) = web::parse_url(url)?;
        let deadline = tokio::time::Instant::now() + web::TIME_LIMIT;
        for _ in 0..=web::MAX_REDIRECTS {
            let subject = self.agent_subject(agent, task, cap)?;
            let scope = cap.normalize_scope(&host).map_err(Error::InvalidArgument)?;
            self.authorize(&subject, cap, &scope).await?;
            let hop = tokio::time::timeout_at(deadline, web::get_once(&self.http, url.clone()))
                .await
                .map_err(|_| {
                    Error::Timeout(format!(
                        "fetching {url} took longer than {} s",
                        web::TIME_LIMIT.as_secs()
                    ))
                })??;
            match hop {
                web::Hop::Done(f) => return Ok(f),
                web::Hop::Redirect(next) => {
                    (url, host) = web::parse_url(next.as_str())?;
                }
            }
        }
        Err(tools::ToolError::Failed(format!("more than {} redirects", web::MAX_REDIRECTS)).into())
    }

    /// Progress of an agent's own running task.
    pub async fn report_progress(
        &self,
        agent: &str,
        task: u64,
        fraction: f64,
        message: &str,
    ) -> Result<(), Error> {
        check_text("message", message, names::MAX_NAME_LEN, true)?;
        self.own_running(agent, task)?;
        self.progress(task, fraction, message).await
    }

    /// An agent finishes its task with a result and artifacts.
    pub async fn complete(
        &self,
        agent: &str,
        task: u64,
        result: &str,
        artifacts: Vec<(String, OwnedFd)>,
    ) -> Result<(), Error> {
        check_text("result", result, names::MAX_RESULT_LEN, true)?;
        if artifacts.len() > MAX_ARTIFACTS {
            return Err(Error::InvalidArgument(format!(
                "at most {MAX_ARTIFACTS} artifacts per task"
            )));
        }
        self.own_running(agent, task)?;
        for (name, fd) in artifacts {
            // Only regular files (memfds included): a pipe or socket could block the copy forever.
            let stat = rustix::fs::fstat(&fd)
                .map_err(|e| Error::InvalidArgument(format!("artifact {name:?}: {e}")))?;
            if rustix::fs::FileType::from_raw_mode(stat.st_mode)
                != rustix::fs::FileType::RegularFile
            {
                return Err(Error::InvalidArgument(format!(
                    "artifact {name:?} is not a regular file"
                )));
            }
            let store = self.store_handle();
            blocking(move || {
                let mut file = std::fs::File::from(fd);
                let store = store.lock().unwrap_or_else(|p| p.into_inner());
                let stored = store.put_artifact(task, &name, &mut file, MAX_ARTIFACT_BYTES);
                stored
                    .map(|_| ())
                    .map_err(|e| Error::InvalidArgument(format!("artifact {name:?}: {e}")))
            })
            .await?;
        }
        if !self
            .finish(task, TaskState::Completed, "", Some(result))
            .await
        {
            return Err(Error::InvalidArgument(format!(
                "task {task} has already finished"
            )));
        }
        Ok(())
    }

    /// An agent gives up on its task.
    pub async fn fail(&self, agent: &str, task: u64, message: &str) -> Result<(), Error> {
        check_text("message", message, names::MAX_NAME_LEN, true)?;
        self.own_running(agent, task)?;
        self.finish(task, TaskState::Failed, message, None).await;
        self.cancel_subtree(task, "canceled: the task above it failed", false)
            .await;
        Ok(())
    }

    /// Wait for a child of one of the agent's tasks; returns state, result or message, artifacts.
    pub async fn await_child(
        &self,
        agent: &str,
        child: u64,
    ) -> Result<(String, String, Vec<ArtifactInfo>), Error> {
        self.own_child(agent, child)?;
        let state = self.wait_finished(child).await?;
        let info = self.task_info(child)?;
        let artifacts = self.store().list_artifacts(child).map_err(store_err)?;
        let text = if state == TaskState::Completed {
            info.result
        } else {
            info.message
        };
        Ok((state.as_str().to_string(), text, artifacts))
    }

    /// An artifact of a child task, for the agent that delegated it.
    pub fn open_child_artifact(
        &self,
        agent: &str,
        child: u64,
        name: &str,
    ) -> Result<OwnedFd, Error> {
        self.own_child(agent, child)?;
        self.open_artifact(child, name)
    }

    /// A task's artifact as a read-only fd.
    pub fn open_artifact(&self, task: u64, name: &str) -> Result<OwnedFd, Error> {
        check_text("artifact name", name, 255, false)?;
        self.store()
            .open_artifact(task, name)
            .map_err(store_err)?
            .map(OwnedFd::from)
            .ok_or_else(|| Error::InvalidArgument(format!("task {task} has no artifact {name:?}")))
    }

    fn own_running(&self, agent: &str, task: u64) -> Result<(), Error> {
        let inner = self.inner();
        match inner.tasks.get(task) {
            Some(t) if t.agent == agent && !t.state.is_terminal() => Ok(()),
            Some(t) if t.agent == agent => Err(Error::InvalidArgument(format!(
                "task {task} has already finished ({})",
                t.state
            ))),
            _ => Err(Error::AccessDenied(format!(
                "task {task} is not a task of agent {agent}"
            ))),
        }
    }

    fn own_child(&self, agent: &str, child: u64) -> Result<(), Error> {
        let inner = self.inner();
        let parent = inner.tasks.get(child).map(|c| c.parent).unwrap_or(0);
        match inner.tasks.get(parent) {
            Some(p) if p.agent == agent => Ok(()),
            _ => Err(Error::AccessDenied(format!(
                "task {child} was not delegated by agent {agent}"
            ))),
        }
    }

    /// A direct call into an agent from a bus client (checked and audited).
    pub async fn call_agent(
        self: &Arc<Self>,
        caller: Caller,
        agent: &str,
        method: &str,
        payload: &[u8],
    ) -> Result<ByteBuf, Error> {
        check_text("method name", method, 255, false)?;
        if payload.len() > names::MAX_CALL_PAYLOAD {
            return Err(Error::InvalidArgument(format!(
                "the payload is larger than {} bytes",
                names::MAX_CALL_PAYLOAD
            )));
        }
        let cap = capability("agent.call")?;
        if caller != Caller::Host {
            let subject = caller.app_subject(format!("call {method}"));
            self.authorize(&subject, cap, agent).await?;
        }
        if caller == Caller::Host {
            // The user needs no grant; the decision is still recorded before the call goes out.
            self.audit("host", cap.name, agent, "allow", "the user called it")?;
        }
        let instance = self.ensure_instance(agent).await?;
        tokio::time::timeout(
            Duration::from_secs(60),
            instance.service.call(method, Bytes::new(payload)),
        )
        .await
        .map_err(|_| Error::Timeout(format!("agent {agent} did not answer within 60 s")))?
    }

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
        self.audit(
            principal,
            cap.name,
            &grant.scope,
            "grant",
            &format!("granted by the user ({})", lifetime.as_str()),
        )?;
        let replaced = {
            let mut inner = self.inner();
            let replaced = inner.policy.grants.add(grant.clone());
            inner.denials.remove(&(
                grant.principal.clone(),
                cap.name.to_string(),
                grant.scope.clone(),
            ));
            replaced
        };
        if lifetime == Lifetime::Once {
            // "once" grants are not mirrored; the desktop must not keep showing the one replaced.
            self.mirror_remove(replaced.as_slice()).await;
        } else {
            self.mirror_add(&grant).await;
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
        let removed = self
            .inner()
            .policy
            .grants
            .revoke(principal, cap.name, scope.as_deref());
        self.store()
            .delete_grants(principal, cap.name, scope.as_deref())
            .map_err(store_err)?;
        self.audit(
            principal,
            cap.name,
            scope.as_deref().unwrap_or("*"),
            "revoke",
            "revoked by the user",
        )?;
        // A revocation also resets "denied twice, stop asking".
        self.inner().denials.retain(|(p, c, s), _| {
            !(p == principal && c == cap.name && scope.as_deref().is_none_or(|sc| sc == s))
        });
        self.mirror_remove(&removed).await;
        Ok(removed.len() as u32)
    }

    pub fn list_grants(&self) -> Vec<GrantInfo> {
        self.inner().policy.grants.iter().map(Grant::info).collect()
    }
}

/// Run blocking file-system work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Failed(format!("internal error: {e}")))?
}

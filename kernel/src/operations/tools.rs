//! Platform tools for an agent's task: `files.list` and `files.read` (as an fd, or through the
//! Documents portal for Flatpak agents) and `web.fetch`, each checked on its scope first.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use agentos_dbus_interfaces::{Error, FileEntry};

use super::{blocking, capability};
use crate::kernel::Kernel;
use crate::tools::{self, files, web};

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
        if !self.agents.is_flatpak(agent) {
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
            .bus()
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
}

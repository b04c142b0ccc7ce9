//! A task as an agent sees it, with the kernel's tools at hand.

use std::collections::HashMap;
use std::io::Read;

use agentos_dbus_interfaces::proxies::Host1Proxy;
use agentos_dbus_interfaces::{ArtifactInfo, Error, FileEntry, ToolInfo};
use zbus::zvariant::OwnedValue;

/// One task handed to the agent by the kernel.
#[derive(Clone)]
pub struct Task {
    pub id: u64,
    pub goal: String,
    pub context: HashMap<String, OwnedValue>,
    pub(crate) host: Host1Proxy<'static>,
}

/// How a delegated child task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildOutcome {
    pub id: u64,
    /// A2A state: completed, failed, canceled, rejected.
    pub state: String,
    /// The result when completed, else the error message.
    pub text: String,
    pub artifacts: Vec<ArtifactInfo>,
}

impl Task {
    /// The kernel's `org.agentos.Host1` interface, for calls the helpers above do not cover.
    pub fn host(&self) -> &Host1Proxy<'static> {
        &self.host
    }

    /// A string value of the task's context ("caller", "documents_dir").
    pub fn context_str(&self, key: &str) -> Option<String> {
        self.context
            .get(key)
            .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
    }

    /// Report progress (0..1) and a status line.
    pub async fn progress(&self, fraction: f64, message: &str) -> Result<(), Error> {
        self.host.progress(self.id, fraction, message).await
    }

    /// `files.list`: entries of `path` beneath `folder`.
    pub async fn list_files(&self, folder: &str, path: &str) -> Result<Vec<FileEntry>, Error> {
        self.host.list_files(self.id, folder, path).await
    }

    /// `files.read`: open a file beneath `folder`, read-only.
    pub async fn open_file(&self, folder: &str, path: &str) -> Result<std::fs::File, Error> {
        let fd = self.host.open_file(self.id, folder, path).await?;
        Ok(std::fs::File::from(std::os::fd::OwnedFd::from(fd)))
    }

    /// `files.read`, then read at most `max` bytes.
    pub async fn read_file(&self, folder: &str, path: &str, max: u64) -> Result<Vec<u8>, Error> {
        let file = self.open_file(folder, path).await?;
        let mut buf = Vec::new();
        file.take(max)
            .read_to_end(&mut buf)
            .map_err(|e| Error::Failed(format!("reading {path}: {e}")))?;
        Ok(buf)
    }

    /// `web.fetch`: status, content type and body of a URL.
    pub async fn fetch(&self, url: &str) -> Result<(u16, String, Vec<u8>), Error> {
        self.host.fetch_url(self.id, url).await
    }

    /// Every tool the kernel offers, and whether this agent's manifest declares each one's
    /// capability (a model's tool list is built from it).
    pub async fn list_tools(&self) -> Result<Vec<ToolInfo>, Error> {
        self.host.list_tools(self.id).await
    }

    /// Call any tool by name with its arguments as a JSON object (text): the result as JSON
    /// text, bytes the tool hands out, and file descriptors (the result's `"fd"` indexes them).
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: &str,
    ) -> Result<(String, Vec<u8>, Vec<std::os::fd::OwnedFd>), Error> {
        let (result, data, fds) = self.host.call_tool(self.id, tool, arguments).await?;
        Ok((
            result,
            data.into_vec(),
            fds.into_iter().map(std::os::fd::OwnedFd::from).collect(),
        ))
    }

    /// Delegate a goal to another agent as a child task; returns its id.
    pub async fn delegate(&self, agent: &str, goal: &str) -> Result<u64, Error> {
        self.host
            .delegate(self.id, agent, goal, HashMap::new())
            .await
    }

    /// Wait for a child task to finish.
    pub async fn await_child(&self, child: u64) -> Result<ChildOutcome, Error> {
        let (state, text, artifacts) = self.host.await_task(child).await?;
        Ok(ChildOutcome {
            id: child,
            state,
            text,
            artifacts,
        })
    }

    /// Pass a finished child's artifacts up: each is opened and added to `outcome` under its own
    /// name, so the parent task carries them too (stored once, content-addressed).
    pub async fn adopt_artifacts(
        &self,
        child: &ChildOutcome,
        mut outcome: crate::Outcome,
    ) -> Result<crate::Outcome, Error> {
        for artifact in &child.artifacts {
            let file = self.open_child_artifact(child.id, &artifact.name).await?;
            outcome = outcome.with_file(&artifact.name, file);
        }
        Ok(outcome)
    }

    /// Read an artifact of a finished child task.
    pub async fn open_child_artifact(
        &self,
        child: u64,
        name: &str,
    ) -> Result<std::fs::File, Error> {
        let fd = self.host.open_child_artifact(child, name).await?;
        Ok(std::fs::File::from(std::os::fd::OwnedFd::from(fd)))
    }
}

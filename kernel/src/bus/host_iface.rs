//! `org.agentos.Host1`, served on one agent's private connection: the agent is whoever is at
//! the other end of it, fixed when the connection was made.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use agentos_dbus_interfaces::names::KERNEL_PATH;
use agentos_dbus_interfaces::{ArtifactInfo, ByteBuf, Error, FileEntry, ToolInfo};
use zbus::message::Header;
use zbus::zvariant::{OwnedFd, OwnedValue};

use super::args::{from_peer, timeout_option};
use super::live;
use crate::caller::Caller;
use crate::kernel::Kernel;

pub struct HostIface {
    kernel: Weak<Kernel>,
    agent: String,
}

impl HostIface {
    pub fn new(kernel: Weak<Kernel>, agent: String) -> HostIface {
        HostIface { kernel, agent }
    }
}

/// Serve Host1 for `agent` on the kernel's end of its private connection (the kernel's
/// [`HostServer`](crate::agents::HostServer)).
pub fn serve(
    builder: zbus::connection::Builder<'static>,
    kernel: Weak<Kernel>,
    agent: &str,
) -> zbus::Result<zbus::connection::Builder<'static>> {
    builder.serve_at(KERNEL_PATH, HostIface::new(kernel, agent.to_string()))
}

impl HostIface {
    /// The kernel, for a call that came from the agent at the other end of this connection.
    fn kernel(&self, hdr: &Header<'_>) -> Result<Arc<Kernel>, Error> {
        from_peer(hdr)?;
        live(&self.kernel)
    }
}

#[zbus::interface(name = "org.agentos.Host1")]
impl HostIface {
    async fn progress(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        task: u64,
        fraction: f64,
        message: &str,
    ) -> Result<(), Error> {
        self.kernel(&hdr)?
            .report_progress(&self.agent, task, fraction, message)
    }

    async fn complete(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        task: u64,
        result: &str,
        artifacts: Vec<(String, OwnedFd)>,
    ) -> Result<(), Error> {
        let k = self.kernel(&hdr)?;
        let artifacts = artifacts
            .into_iter()
            .map(|(n, fd)| (n, fd.into()))
            .collect();
        k.complete(&self.agent, task, result, artifacts).await
    }

    async fn fail(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        task: u64,
        message: &str,
    ) -> Result<(), Error> {
        self.kernel(&hdr)?.fail(&self.agent, task, message)
    }

    async fn delegate(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        task: u64,
        agent: &str,
        goal: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<u64, Error> {
        let k = self.kernel(&hdr)?;
        let caller = Caller::Agent {
            id: self.agent.clone(),
            task,
        };
        k.delegate(caller, agent, goal, timeout_option(&options)?)
            .await
    }

    async fn await_task(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        child: u64,
    ) -> Result<(String, String, Vec<ArtifactInfo>), Error> {
        self.kernel(&hdr)?.await_child(&self.agent, child).await
    }

    async fn open_child_artifact(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        child: u64,
        name: &str,
    ) -> Result<OwnedFd, Error> {
        Ok(self
            .kernel(&hdr)?
            .open_child_artifact(&self.agent, child, name)?
            .into())
    }

    async fn list_files(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        task: u64,
        folder: &str,
        path: &str,
    ) -> Result<Vec<FileEntry>, Error> {
        self.kernel(&hdr)?
            .list_files(&self.agent, task, folder, path)
            .await
    }

    async fn open_file(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        task: u64,
        folder: &str,
        path: &str,
    ) -> Result<OwnedFd, Error> {
        Ok(self
            .kernel(&hdr)?
            .open_file(&self.agent, task, folder, path)
            .await?
            .into())
    }

    async fn share_file(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        task: u64,
        folder: &str,
        path: &str,
    ) -> Result<String, Error> {
        self.kernel(&hdr)?
            .share_file(&self.agent, task, folder, path)
            .await
    }

    async fn fetch_url(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        task: u64,
        url: &str,
    ) -> Result<(u16, String, Vec<u8>), Error> {
        let f = self.kernel(&hdr)?.fetch_url(&self.agent, task, url).await?;
        Ok((f.status, f.content_type, f.body))
    }

    async fn list_tools(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        task: u64,
    ) -> Result<Vec<ToolInfo>, Error> {
        self.kernel(&hdr)?.list_tools(&self.agent, task)
    }

    async fn call_tool(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        task: u64,
        tool: &str,
        arguments: &str,
    ) -> Result<(String, ByteBuf, Vec<OwnedFd>), Error> {
        let out = self
            .kernel(&hdr)?
            .call_tool_json(&self.agent, task, tool, arguments)
            .await?;
        let fds = out.fds.into_iter().map(OwnedFd::from).collect();
        Ok((out.value.to_string(), ByteBuf::from(out.data), fds))
    }
}

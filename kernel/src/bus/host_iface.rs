//! `org.agentos.Host1`, served on one agent's private connection: the agent is whoever is at
//! the other end of it, fixed when the connection was made. Answered by the bounded dispatcher
//! of private connections (`dispatch.rs`); the methods are declared with `#[zbus::interface]`,
//! whose introspection is what the connection serves.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use agentos_dbus_interfaces::names::HOST_IFACE;
use agentos_dbus_interfaces::{
    AgentInfo, ArtifactInfo, ByteBuf, Error, FileEntry, ModelInfo, ToolInfo,
};
use zbus::message::Header;
use zbus::zvariant::{OwnedFd, OwnedValue};
use zbus::Message;

use super::args::{from_peer, timeout_option};
use super::dispatch::{self, Dispatch, Reply};
use super::live;
use crate::agents::{Departure, HostServer};
use crate::caller::Caller;
use crate::kernel::Kernel;
use crate::operations::delegate::TaskOptions;

pub struct HostIface {
    kernel: Weak<Kernel>,
    agent: String,
    /// Marked when the instance at the other end departed (see `agent_gone`).
    departure: Departure,
}

impl HostIface {
    pub fn new(kernel: Weak<Kernel>, agent: String, departure: Departure) -> HostIface {
        HostIface {
            kernel,
            agent,
            departure,
        }
    }
}

/// How the kernel's end of an agent's private connection is made and served (the kernel's
/// [`HostServer`](crate::agents::HostServer)): the socket within the limits of private
/// connections, and `Host1` answered by their bounded dispatcher.
pub fn host_server() -> HostServer {
    HostServer {
        limits: dispatch::limits(agentos_p2p::Fds::Both),
        max_queued: dispatch::QUEUED,
        serve: |conn, kernel, agent, departure| {
            Box::pin(dispatch::serve(
                conn,
                Arc::new(HostIface::new(kernel, agent, departure)),
            ))
        },
    }
}

/// Calls the `Host1` method `$method` with the body deserialized as the listed types, and
/// replies with its result.
macro_rules! route {
    ($iface:ident, $member:ident, $msg:ident, $reply:ident;
     $( $name:literal => $method:ident ( $($arg:ident : $ty:ty),* ) ),* $(,)?) => {{
        let hdr = $reply.header().clone();
        let body = $msg.body();
        match $member {
            $( $name => match body.deserialize::<( $($ty,)* )>() {
                Ok(( $($arg,)* )) => {
                    let r = HostIface::$method($iface, hdr $(, $arg)*).await;
                    $reply.result(r).await?
                }
                Err(e) => $reply.bad_args($member, e).await?,
            }, )*
            _ => return Ok(false),
        }
        Ok(true)
    }};
}

#[async_trait::async_trait]
impl Dispatch for HostIface {
    fn interface(&self) -> &'static str {
        HOST_IFACE
    }

    fn introspect(&self, xml: &mut String, level: usize) {
        zbus::object_server::Interface::introspect_to_writer(self, xml, level);
    }

    async fn call(&self, member: &str, msg: &Message, reply: &Reply<'_>) -> zbus::Result<bool> {
        route!(self, member, msg, reply;
            "Progress" => progress(task: u64, fraction: f64, message: &str),
            "Complete" => complete(task: u64, result: &str, artifacts: Vec<(String, OwnedFd)>),
            "Fail" => fail(task: u64, message: &str),
            "Delegate" => delegate(task: u64, agent: &str, goal: &str,
                                   options: HashMap<String, OwnedValue>),
            "AwaitTask" => await_task(child: u64),
            "OpenChildArtifact" => open_child_artifact(child: u64, name: &str),
            "ListFiles" => list_files(task: u64, folder: &str, path: &str),
            "OpenFile" => open_file(task: u64, folder: &str, path: &str),
            "ShareFile" => share_file(task: u64, folder: &str, path: &str),
            "FetchUrl" => fetch_url(task: u64, url: &str),
            "ListTools" => list_tools(task: u64),
            "CallTool" => call_tool(task: u64, tool: &str, arguments: &str),
            "ListAgents" => list_agents(task: u64),
            "ListModels" => list_models(task: u64),
            "Chat" => chat(task: u64, request: &str),
            "CancelChat" => cancel_chat(id: u64),
        )
    }
}

impl HostIface {
    /// The kernel, for a call that came from the agent at the other end of this connection,
    /// while that instance is the agent's.
    fn kernel(&self, hdr: &Header<'_>) -> Result<Arc<Kernel>, Error> {
        from_peer(hdr)?;
        if self.departure.happened() {
            return Err(Error::AccessDenied(format!(
                "the instance of agent {} on this connection has ended; what it left running \
                 cannot act for it",
                self.agent
            )));
        }
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
        k.delegate(
            caller,
            agent,
            goal,
            TaskOptions {
                timeout: timeout_option(&options)?,
                model: None,
            },
        )
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

    async fn list_agents(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        task: u64,
    ) -> Result<Vec<AgentInfo>, Error> {
        self.kernel(&hdr)?.agents_for(&self.agent, task)
    }

    async fn list_models(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        task: u64,
    ) -> Result<Vec<ModelInfo>, Error> {
        let caller = Caller::Agent {
            id: self.agent.clone(),
            task,
        };
        self.kernel(&hdr)?.list_models(&caller).await
    }

    #[zbus(out_args("id", "events"))]
    async fn chat(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        task: u64,
        request: &str,
    ) -> Result<(u64, OwnedFd), Error> {
        let caller = Caller::Agent {
            id: self.agent.clone(),
            task,
        };
        let (id, fd) = self.kernel(&hdr)?.chat(&caller, request).await?;
        Ok((id, fd.into()))
    }

    async fn cancel_chat(&self, #[zbus(header)] hdr: Header<'_>, id: u64) -> Result<(), Error> {
        let caller = Caller::Agent {
            id: self.agent.clone(),
            task: 0,
        };
        self.kernel(&hdr)?.cancel_chat(&caller, id)
    }
}

//! `org.agentos.Channel1` on a private channel from `Kernel1.OpenChannel`: the caller was
//! identified when the channel was opened, and every call is checked and audited as on the bus.
//!
//! A channel carries one caller's calls to agents, the path where the kernel's own cost shows
//! most, and it has one object. So it is answered by the bounded dispatcher of private
//! connections (`dispatch.rs`) rather than by zbus's object server, which looks up the object
//! tree, names a task with the formatted message and wraps it in tracing spans for every call.
//! The interface is still declared with `#[zbus::interface]`: its methods are what the
//! dispatcher calls, and its introspection is what the channel serves, so the two cannot drift
//! apart.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use agentos_dbus_interfaces::names::CHANNEL_IFACE;
use agentos_dbus_interfaces::{ByteBuf, Error};
use zbus::message::Header;
use zbus::zvariant::OwnedValue;
use zbus::Message;

use super::dispatch::{self, Dispatch, Reply};

use super::args::{from_peer, task_options};
use super::live;
use crate::caller::Caller;
use crate::config::CHANNEL_HANDSHAKE_TIMEOUT;
use crate::kernel::Kernel;

pub struct ChannelIface {
    pub(crate) kernel: Weak<Kernel>,
    pub(crate) caller: Caller,
    /// Counted against the caller's channel quota until the channel closes.
    pub(crate) _slot: Option<crate::operations::calls::ChannelSlot>,
}

#[zbus::interface(name = "org.agentos.Channel1")]
impl ChannelIface {
    async fn call(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        agent: &str,
        method: &str,
        payload: &[u8],
    ) -> Result<ByteBuf, Error> {
        from_peer(&hdr)?;
        live(&self.kernel)?
            .call_agent(self.caller.clone(), agent, method, payload)
            .await
    }

    async fn delegate(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        agent: &str,
        goal: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<u64, Error> {
        from_peer(&hdr)?;
        let k = live(&self.kernel)?;
        let id = k
            .delegate(self.caller.clone(), agent, goal, task_options(&options)?)
            .await?;
        super::task_iface::exported(&k, id).await?;
        Ok(id)
    }

    #[zbus(out_args("id", "events"))]
    async fn chat(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        request: &str,
    ) -> Result<(u64, zbus::zvariant::OwnedFd), Error> {
        from_peer(&hdr)?;
        let (id, fd) = live(&self.kernel)?.chat(&self.caller, request).await?;
        Ok((id, fd.into()))
    }

    async fn open_chat_pipe(
        &self,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<zbus::zvariant::OwnedFd, Error> {
        from_peer(&hdr)?;
        let k = live(&self.kernel)?;
        let slot = k.channel_slot(&self.caller)?;
        let pipe = super::chat_pipe::open(self.kernel.clone(), self.caller.clone(), slot)?;
        Ok(pipe.into())
    }

    async fn cancel(&self, #[zbus(header)] hdr: Header<'_>, id: u64) -> Result<(), Error> {
        from_peer(&hdr)?;
        live(&self.kernel)?.cancel_chat(&self.caller, id)
    }
}

/// Serves `iface` as the server end of a fresh socketpair; returns the other end. Fds pass only
/// from the kernel (model answers' sockets); the connection lives until its peer closes it (or
/// stops reading, see [`dispatch`](super::dispatch)).
pub(crate) async fn open(iface: ChannelIface) -> Result<std::os::fd::OwnedFd, Error> {
    let failed =
        |e: &dyn std::fmt::Display| Error::Failed(format!("cannot open a private connection: {e}"));
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| failed(&e))?;
    let socket = agentos_p2p::split_limited(ours, dispatch::limits(agentos_p2p::Fds::ToPeer))
        .map_err(|e| failed(&e))?;
    let builder = zbus::connection::Builder::socket(socket)
        .server(zbus::Guid::generate())
        .map_err(|e| failed(&e))?
        .p2p()
        .max_queued(dispatch::QUEUED);
    tokio::spawn(async move {
        let build = tokio::time::timeout(CHANNEL_HANDSHAKE_TIMEOUT, builder.build());
        if let Ok(Ok(conn)) = build.await {
            if let Err(e) = dispatch::serve(conn, Arc::new(iface)).await {
                tracing::debug!(error = %e, "cannot serve a channel");
            }
        }
    });
    Ok(theirs.into())
}

#[async_trait::async_trait]
impl Dispatch for ChannelIface {
    fn interface(&self) -> &'static str {
        CHANNEL_IFACE
    }

    fn introspect(&self, xml: &mut String, level: usize) {
        zbus::object_server::Interface::introspect_to_writer(self, xml, level);
    }

    async fn call(&self, member: &str, msg: &Message, reply: &Reply<'_>) -> zbus::Result<bool> {
        let hdr = reply.header().clone();
        let body = msg.body();
        match member {
            "Call" => match body.deserialize::<(&str, &str, &[u8])>() {
                Ok((agent, method, payload)) => {
                    let r = ChannelIface::call(self, hdr, agent, method, payload).await;
                    reply.result(r).await?
                }
                Err(e) => reply.bad_args(member, e).await?,
            },
            "Delegate" => match body.deserialize::<(&str, &str, HashMap<String, OwnedValue>)>() {
                Ok((agent, goal, options)) => {
                    let r = ChannelIface::delegate(self, hdr, agent, goal, options).await;
                    reply.result(r).await?
                }
                Err(e) => reply.bad_args(member, e).await?,
            },
            "Chat" => match body.deserialize::<&str>() {
                Ok(request) => {
                    let r = ChannelIface::chat(self, hdr, request).await;
                    match reply.result(r).await {
                        // The socket cannot go to a peer that did not negotiate fd passing
                        // (dropped here, so the request ends at once): say so instead.
                        Err(zbus::Error::Unsupported) => {
                            let why = "this channel's connection did not negotiate passing file descriptors, \
                                       which the answer's socket needs";
                            reply.err(Error::Failed(why.into())).await?
                        }
                        sent => sent?,
                    }
                }
                Err(e) => reply.bad_args(member, e).await?,
            },
            "OpenChatPipe" => {
                let r = ChannelIface::open_chat_pipe(self, hdr).await;
                reply.result(r).await?
            }
            "Cancel" => match body.deserialize::<u64>() {
                Ok(id) => {
                    let r = ChannelIface::cancel(self, hdr, id).await;
                    reply.result(r).await?
                }
                Err(e) => reply.bad_args(member, e).await?,
            },
            _ => return Ok(false),
        }
        Ok(true)
    }
}

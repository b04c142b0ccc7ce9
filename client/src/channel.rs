//! The client's private channel to the kernel (`Kernel1.OpenChannel`): a peer-to-peer
//! connection on which model requests skip the bus relay. Opened on first use from the verified
//! kernel, kept while that kernel runs, opened again after the kernel changed or the channel
//! broke. Where no channel can be had, the same calls go over the bus. With the channel comes
//! its chat pipe (`pipe.rs`), where the kernel gives one.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use agentos_dbus_interfaces::proxies::Channel1Proxy;
use agentos_p2p::records::Records;
use zbus::proxy::CacheProperties;
use zbus::Connection;

use crate::chat::ChatError;
use crate::client::{Channel, Client};
use crate::error::ClientError;
use crate::pipe::Pipe;

impl Client {
    /// `org.agentos.Channel1` on this client's channel to the verified kernel, opened now if
    /// there is none yet (or the kernel changed since).
    pub async fn channel(&self) -> Result<Channel1Proxy<'static>, ChatError> {
        proxy(&self.channel_and_pipe().await?.0).await
    }

    /// The channel's connection and its chat pipe (none where the kernel gave none, say over
    /// the caller's quota of channels: `Chat` then serves).
    pub(crate) async fn channel_and_pipe(
        &self,
    ) -> Result<(Connection, Option<Arc<Pipe>>), ChatError> {
        let kernel = self.owner().await?;
        let mut slot = self.channel_slot().lock().await;
        let (conn, pipe) = match slot.as_ref() {
            Some(c) if c.kernel == kernel => (c.conn.clone(), c.pipe.clone()),
            _ => {
                let conn = self.open_channel().await?;
                let pipe = open_pipe(&proxy(&conn).await?).await;
                *slot = Some(Channel {
                    kernel,
                    conn: conn.clone(),
                    pipe: pipe.clone(),
                });
                (conn, pipe)
            }
        };
        Ok((conn, pipe))
    }

    /// Forget the channel `broken` (a call on it failed): the next use opens another. A channel
    /// another caller opened meanwhile is kept (each channel has its own server GUID).
    pub(crate) async fn drop_channel(&self, broken: &Connection) {
        let mut slot = self.channel_slot().lock().await;
        if slot
            .as_ref()
            .is_some_and(|c| c.conn.server_guid() == broken.server_guid())
        {
            *slot = None;
        }
    }

    async fn open_channel(&self) -> Result<Connection, ChatError> {
        let fd = self
            .kernel()
            .await?
            .open_channel()
            .await
            .map_err(ChatError::Refused)?;
        let stream = std::os::unix::net::UnixStream::from(OwnedFd::from(fd));
        stream.set_nonblocking(true).map_err(ChatError::Io)?;
        let stream = tokio::net::UnixStream::from_std(stream).map_err(ChatError::Io)?;
        let connect = zbus::connection::Builder::unix_stream(stream).p2p().build();
        match tokio::time::timeout(crate::bus::CONNECT_TIMEOUT, connect).await {
            Ok(conn) => Ok(conn.map_err(ClientError::from)?),
            Err(_) => Err(ChatError::Client(ClientError::Bus(
                zbus::Error::InputOutput(std::sync::Arc::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the kernel did not answer on the new channel",
                ))),
            ))),
        }
    }
}

/// `Channel1` on the channel `conn`.
pub(crate) async fn proxy(conn: &Connection) -> Result<Channel1Proxy<'static>, ChatError> {
    Ok(Channel1Proxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(ClientError::from)?)
}

/// The channel's chat pipe, ready to send on; none when the kernel gives none.
async fn open_pipe(channel: &Channel1Proxy<'static>) -> Option<Arc<Pipe>> {
    // (An older kernel has no pipe, or the caller is at its quota of channels.)
    let fd = OwnedFd::from(channel.open_chat_pipe().await.ok()?);
    Records::new(fd, tokio::io::Interest::WRITABLE)
        .map(|records| Arc::new(Pipe::new(records)))
        .ok()
}

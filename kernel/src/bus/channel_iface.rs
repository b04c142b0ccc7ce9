//! `org.agentos.Channel1` on a private channel from `Kernel1.OpenChannel`: the caller was
//! identified when the channel was opened, and every call is checked and audited as on the bus.
//!
//! A channel carries one caller's calls to agents, the path where the kernel's own cost shows
//! most, and it has one object. So it is answered by the small dispatcher here rather than by
//! zbus's object server, which looks up the object tree, names a task with the formatted message
//! and wraps it in tracing spans for every call. The interface is still declared with
//! `#[zbus::interface]`: its methods are what the dispatcher calls, and its introspection is
//! what the channel serves, so the two cannot drift apart.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Weak};

use agentos_dbus_interfaces::names::{CHANNEL_IFACE, KERNEL_PATH};
use agentos_dbus_interfaces::{ByteBuf, Error};
use futures_util::StreamExt;
use zbus::fdo;
use zbus::message::{Flags, Header};
use zbus::zvariant::OwnedValue;

use super::args::{from_peer, timeout_option};
use super::live;
use crate::caller::Caller;
use crate::config::CHANNEL_HANDSHAKE_TIMEOUT;
use crate::kernel::Kernel;

pub struct ChannelIface {
    pub(crate) kernel: Weak<Kernel>,
    pub(crate) caller: Caller,
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
            .delegate(self.caller.clone(), agent, goal, timeout_option(&options)?)
            .await?;
        super::task_iface::exported(&k, id).await?;
        Ok(id)
    }
}

/// Serves `iface` as the server end of a fresh socketpair; returns the other end. The
/// connection passes no fds and lives until its peer closes it.
pub(crate) async fn open(iface: ChannelIface) -> Result<std::os::fd::OwnedFd, Error> {
    let failed =
        |e: &dyn std::fmt::Display| Error::Failed(format!("cannot open a private connection: {e}"));
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| failed(&e))?;
    let builder = zbus::connection::Builder::socket(
        agentos_p2p::split_without_fds(ours).map_err(|e| failed(&e))?,
    )
    .server(zbus::Guid::generate())
    .map_err(|e| failed(&e))?
    .p2p();
    tokio::spawn(async move {
        let build = tokio::time::timeout(CHANNEL_HANDSHAKE_TIMEOUT, builder.build());
        if let Ok(Ok(conn)) = build.await {
            serve(conn, iface).await;
        }
    });
    Ok(theirs.into())
}

/// How many calls may wait for the dispatcher before the connection stops reading.
const QUEUED_CALLS: usize = 64;

/// Answers every method call on `conn` until its peer closes it; each in its own task, so a
/// slow agent holds up only the calls made to it.
async fn serve(conn: zbus::Connection, iface: ChannelIface) {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::MethodCall)
        .build();
    let Ok(mut calls) = zbus::MessageStream::for_match_rule(rule, &conn, Some(QUEUED_CALLS)).await
    else {
        return;
    };
    let iface = Arc::new(iface);
    while let Some(Ok(msg)) = calls.next().await {
        let (conn, iface) = (conn.clone(), Arc::clone(&iface));
        tokio::spawn(async move {
            if let Err(e) = answer(&conn, &iface, &msg).await {
                tracing::debug!(error = %e, "cannot answer a call on a channel");
            }
        });
    }
}

/// Where the answer to one call goes: back to the caller, unless it asked for none.
struct Reply<'a> {
    conn: &'a zbus::Connection,
    hdr: &'a Header<'a>,
    wanted: bool,
}

impl Reply<'_> {
    async fn ok<B>(&self, body: &B) -> zbus::Result<()>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        if !self.wanted {
            return Ok(());
        }
        self.conn.reply(self.hdr, body).await
    }

    async fn err(&self, e: impl zbus::DBusError) -> zbus::Result<()> {
        if !self.wanted {
            return Ok(());
        }
        self.conn.reply_dbus_error(self.hdr, e).await
    }

    async fn result<B>(&self, r: Result<B, Error>) -> zbus::Result<()>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        match r {
            Ok(body) => self.ok(&body).await,
            Err(e) => self.err(e).await,
        }
    }
}

/// Answers one method call, with its result or a named error.
async fn answer(
    conn: &zbus::Connection,
    iface: &ChannelIface,
    msg: &zbus::Message,
) -> zbus::Result<()> {
    let hdr = msg.header();
    let reply = Reply {
        conn,
        hdr: &hdr,
        wanted: !hdr.primary().flags().contains(Flags::NoReplyExpected),
    };
    let path = hdr.path().map(|p| p.as_str()).unwrap_or_default();
    let interface = hdr.interface().map(|i| i.as_str());
    let member = hdr.member().map(|m| m.as_str()).unwrap_or_default();
    let bad_args = |e: zbus::Error| fdo::Error::InvalidArgs(format!("{member}: {e}"));
    let body = msg.body();
    match (path, interface, member) {
        (KERNEL_PATH, Some(CHANNEL_IFACE) | None, "Call") => {
            match body.deserialize::<(&str, &str, &[u8])>() {
                Ok((agent, method, payload)) => {
                    let r = iface.call(hdr.clone(), agent, method, payload).await;
                    reply.result(r).await
                }
                Err(e) => reply.err(bad_args(e)).await,
            }
        }
        (KERNEL_PATH, Some(CHANNEL_IFACE) | None, "Delegate") => {
            match body.deserialize::<(&str, &str, HashMap<String, OwnedValue>)>() {
                Ok((agent, goal, options)) => {
                    let r = iface.delegate(hdr.clone(), agent, goal, options).await;
                    reply.result(r).await
                }
                Err(e) => reply.err(bad_args(e)).await,
            }
        }
        (_, Some("org.freedesktop.DBus.Introspectable"), "Introspect") => {
            match introspection(iface, path) {
                Some(xml) => reply.ok(&xml).await,
                None => reply.err(unknown_object(path)).await,
            }
        }
        (_, Some("org.freedesktop.DBus.Peer"), "Ping") => reply.ok(&()).await,
        (KERNEL_PATH, Some(other), _) if other != CHANNEL_IFACE => {
            let e = fdo::Error::UnknownInterface(format!("no interface {other} on a channel"));
            reply.err(e).await
        }
        (KERNEL_PATH, _, _) => {
            let e = fdo::Error::UnknownMethod(format!("no method {member} on a channel"));
            reply.err(e).await
        }
        _ => reply.err(unknown_object(path)).await,
    }
}

fn unknown_object(path: &str) -> fdo::Error {
    fdo::Error::UnknownObject(format!(
        "a channel has one object, {KERNEL_PATH}, not {path:?}"
    ))
}

/// What `Introspect` answers at `path`: the channel's object, or a node on the way to it.
fn introspection(iface: &ChannelIface, path: &str) -> Option<String> {
    let mut xml = String::from(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \
         \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n",
    );
    if path == KERNEL_PATH {
        zbus::object_server::Interface::introspect_to_writer(iface, &mut xml, 2);
        xml.push_str(STANDARD_INTERFACES);
    } else {
        let below = KERNEL_PATH.strip_prefix(path.trim_end_matches('/'))?;
        let child = below.strip_prefix('/')?.split('/').next()?;
        let _ = writeln!(xml, "  <node name=\"{child}\"/>");
    }
    xml.push_str("</node>\n");
    Some(xml)
}

/// The standard interfaces the channel's object answers besides `Channel1`.
const STANDARD_INTERFACES: &str = r#"  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect">
      <arg type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
  </interface>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn iface() -> ChannelIface {
        ChannelIface {
            kernel: Weak::new(),
            caller: Caller::Host,
        }
    }

    #[test]
    fn introspection_leads_to_the_one_object_and_shows_its_interfaces() {
        let xml = introspection(&iface(), KERNEL_PATH).unwrap();
        let node = zbus_xml::Node::from_reader(xml.as_bytes()).unwrap();
        let names: Vec<String> = node
            .interfaces()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        assert_eq!(
            names,
            [
                CHANNEL_IFACE,
                "org.freedesktop.DBus.Introspectable",
                "org.freedesktop.DBus.Peer"
            ]
        );
        for (path, child) in [
            ("/", "org"),
            ("/org", "agentos"),
            ("/org/agentos/", "Kernel"),
        ] {
            let xml = introspection(&iface(), path).unwrap();
            let node = zbus_xml::Node::from_reader(xml.as_bytes()).unwrap();
            let children: Vec<_> = node
                .nodes()
                .iter()
                .filter_map(|n| n.name().map(str::to_string))
                .collect();
            assert_eq!(children, [child], "at {path}");
        }
        for path in ["/org/agentos/Kernel/agents", "/elsewhere", "/org/agent"] {
            assert!(introspection(&iface(), path).is_none(), "{path}");
        }
    }
}

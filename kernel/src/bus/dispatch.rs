//! The dispatcher of the kernel's private connections (an agent's `Host1`, a client's
//! `Channel1`): each has one object, `/org/agentos/Kernel`, with one interface, so it is answered
//! here rather than by zbus's object server, within bounds.
//!
//! Bounds: at most [`IN_FLIGHT`] calls of one connection run at a time, each in its own task (a
//! slow call holds up only itself). While that many run, the connection is not read, so a peer
//! that pipelines calls is slowed, and what waits is bounded: [`QUEUED`] messages in zbus's
//! queues of at most [`MAX_MESSAGE`] bytes each, plus the calls in flight. A peer that does not
//! read the replies is cut off after [`WRITE_STALL`] (`agentos-p2p`). So one connection holds at
//! most about (2 × QUEUED + IN_FLIGHT) × MAX_MESSAGE of messages, and everything it held is freed
//! when it closes.
//!
//! Calls to the object's interface go to the [`Dispatch`] implementation; `Introspectable` and
//! `Peer` are answered here; anything else gets the standard `UnknownMethod`,
//! `UnknownInterface`, `UnknownObject` or `InvalidArgs` error. NO_REPLY_EXPECTED is honoured.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use agentos_dbus_interfaces::names::KERNEL_PATH;
use agentos_dbus_interfaces::Error;
use futures_util::StreamExt;
use zbus::fdo;
use zbus::message::{Flags, Header};
use zbus::Message;

/// Calls of one connection running at a time.
pub const IN_FLIGHT: usize = 32;
/// Messages zbus queues for the dispatcher (and in its own main queue) before it stops reading.
pub const QUEUED: usize = 8;
/// The longest message a peer of a private connection may send (a call's payload, result or
/// arguments are at most 1 MiB).
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// How long a peer may leave replies unread before it is cut off.
pub const WRITE_STALL: Duration = Duration::from_secs(10);

/// The socket limits of a private connection (fds both ways on an agent's; on a channel, only
/// from the kernel: the sockets of model answers).
pub fn limits(fds: agentos_p2p::Fds) -> agentos_p2p::Limits {
    agentos_p2p::Limits {
        fds,
        max_message: MAX_MESSAGE,
        write_stall: Some(WRITE_STALL),
    }
}

/// Where the answer to one call goes: back to the caller, unless it asked for none.
pub struct Reply<'a> {
    conn: &'a zbus::Connection,
    hdr: &'a Header<'a>,
    wanted: bool,
}

impl Reply<'_> {
    pub async fn ok<B>(&self, body: &B) -> zbus::Result<()>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        if !self.wanted {
            return Ok(());
        }
        self.conn.reply(self.hdr, body).await
    }

    pub async fn err(&self, e: impl zbus::DBusError) -> zbus::Result<()> {
        if !self.wanted {
            return Ok(());
        }
        self.conn.reply_dbus_error(self.hdr, e).await
    }

    /// The result of a call, or its named error.
    pub async fn result<B>(&self, r: Result<B, Error>) -> zbus::Result<()>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        match r {
            Ok(body) => self.ok(&body).await,
            Err(e) => self.err(e).await,
        }
    }

    /// Bad arguments for `member`.
    pub async fn bad_args(&self, member: &str, e: zbus::Error) -> zbus::Result<()> {
        self.err(fdo::Error::InvalidArgs(format!("{member}: {e}")))
            .await
    }

    pub fn header(&self) -> &Header<'_> {
        self.hdr
    }
}

/// The interface of a private connection's one object.
#[async_trait::async_trait]
pub trait Dispatch: Send + Sync + 'static {
    /// Its name (`org.agentos.Host1`).
    fn interface(&self) -> &'static str;
    /// Its introspection XML, indented by `level`.
    fn introspect(&self, xml: &mut String, level: usize);
    /// Answer a call of `member`; `false` when the interface has no such method (nothing was
    /// answered).
    async fn call(&self, member: &str, msg: &Message, reply: &Reply<'_>) -> zbus::Result<bool>;
}

/// Answers every method call on `conn` with `object` until its peer closes it. Returns once it
/// listens (so no call is missed), with the loop running in its own task.
pub async fn serve<D: Dispatch>(conn: zbus::Connection, object: Arc<D>) -> zbus::Result<()> {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::MethodCall)
        .build();
    let mut calls = zbus::MessageStream::for_match_rule(rule, &conn, Some(QUEUED)).await?;
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    tokio::spawn(async move {
        loop {
            // While all slots are taken, the next call is not even read.
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let Some(Ok(msg)) = calls.next().await else {
                return;
            };
            let (conn, object) = (conn.clone(), Arc::clone(&object));
            tokio::spawn(async move {
                if let Err(e) = answer(&conn, &*object, &msg).await {
                    tracing::debug!(error = %e, "cannot answer a call on a private connection");
                }
                drop(slot);
            });
        }
    });
    Ok(())
}

/// Answers one method call, with its result or a named error.
async fn answer<D: Dispatch>(
    conn: &zbus::Connection,
    object: &D,
    msg: &Message,
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
    let ours = object.interface();
    match (path, interface, member) {
        (KERNEL_PATH, Some(i), _) if i == ours => {
            if object.call(member, msg, &reply).await? {
                return Ok(());
            }
        }
        (KERNEL_PATH, None, _) => {
            if object.call(member, msg, &reply).await? {
                return Ok(());
            }
        }
        (_, Some("org.freedesktop.DBus.Introspectable"), "Introspect") => {
            return match introspection(object, path) {
                Some(xml) => reply.ok(&xml).await,
                None => reply.err(unknown_object(path)).await,
            };
        }
        (_, Some("org.freedesktop.DBus.Peer"), "Ping") => return reply.ok(&()).await,
        (KERNEL_PATH, Some(other), _) => {
            let e = fdo::Error::UnknownInterface(format!("no interface {other} here"));
            return reply.err(e).await;
        }
        _ => return reply.err(unknown_object(path)).await,
    }
    let e = fdo::Error::UnknownMethod(format!("no method {member} in {ours}"));
    reply.err(e).await
}

fn unknown_object(path: &str) -> fdo::Error {
    fdo::Error::UnknownObject(format!(
        "a private connection has one object, {KERNEL_PATH}, not {path:?}"
    ))
}

/// What `Introspect` answers at `path`: the one object, or a node on the way to it.
fn introspection<D: Dispatch>(object: &D, path: &str) -> Option<String> {
    let mut xml = String::from(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \
         \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n",
    );
    if path == KERNEL_PATH {
        object.introspect(&mut xml, 2);
        xml.push_str(STANDARD_INTERFACES);
    } else {
        let below = KERNEL_PATH.strip_prefix(path.trim_end_matches('/'))?;
        let child = below.strip_prefix('/')?.split('/').next()?;
        let _ = writeln!(xml, "  <node name=\"{child}\"/>");
    }
    xml.push_str("</node>\n");
    Some(xml)
}

/// The standard interfaces the object answers besides its own.
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

    struct Empty;

    #[async_trait::async_trait]
    impl Dispatch for Empty {
        fn interface(&self) -> &'static str {
            "org.agentos.Test1"
        }
        fn introspect(&self, xml: &mut String, level: usize) {
            let _ = writeln!(xml, "{:level$}<interface name=\"org.agentos.Test1\"/>", "");
        }
        async fn call(&self, _: &str, _: &Message, _: &Reply<'_>) -> zbus::Result<bool> {
            Ok(false)
        }
    }

    #[test]
    fn introspection_leads_to_the_one_object_and_shows_its_interfaces() {
        let xml = introspection(&Empty, KERNEL_PATH).unwrap();
        let node = zbus_xml::Node::from_reader(xml.as_bytes()).unwrap();
        let names: Vec<String> = node
            .interfaces()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "org.agentos.Test1",
                "org.freedesktop.DBus.Introspectable",
                "org.freedesktop.DBus.Peer"
            ]
        );
        for (path, child) in [
            ("/", "org"),
            ("/org", "agentos"),
            ("/org/agentos/", "Kernel"),
        ] {
            let xml = introspection(&Empty, path).unwrap();
            let node = zbus_xml::Node::from_reader(xml.as_bytes()).unwrap();
            let children: Vec<_> = node
                .nodes()
                .iter()
                .filter_map(|n| n.name().map(str::to_string))
                .collect();
            assert_eq!(children, [child], "at {path}");
        }
        for path in ["/org/agentos/Kernel/agents", "/elsewhere", "/org/agent"] {
            assert!(introspection(&Empty, path).is_none(), "{path}");
        }
    }
}

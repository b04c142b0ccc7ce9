//! The committed D-Bus contract as tests compare it with what is live: the members of an
//! interface with their signatures, from the XML files and from introspection; and the body
//! signature of each reply, as its header carries it on the wire, against the XML's out args.

use agentos_dbus_interfaces::INTERFACE_XML;

/// The signature of every member of an interface, sorted, for comparison.
pub fn members(iface: &zbus_xml::Interface<'_>) -> Vec<String> {
    let mut out: Vec<String> = iface
        .methods()
        .iter()
        .map(|m| {
            let args: Vec<String> = m
                .args()
                .iter()
                .map(|a| format!("{:?}{:?}", a.direction(), a.ty()))
                .collect();
            format!("method {}({})", m.name(), args.join(","))
        })
        .collect();
    out.extend(iface.signals().iter().map(|s| {
        let args: Vec<String> = s.args().iter().map(|a| format!("{:?}", a.ty())).collect();
        format!("signal {}({})", s.name(), args.join(","))
    }));
    out.extend(
        iface
            .properties()
            .iter()
            .map(|p| format!("property {} {:?} {:?}", p.name(), p.ty(), p.access())),
    );
    out.sort();
    out
}

/// The committed XML of interface `name`.
pub fn committed_node(name: &str) -> zbus_xml::Node<'static> {
    let (_, xml) = INTERFACE_XML
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no committed XML for {name}"));
    zbus_xml::Node::from_reader(xml.as_bytes()).expect("committed XML parses")
}

/// The members of interface `name` as committed.
pub fn committed(name: &str) -> Vec<String> {
    let node = committed_node(name);
    members(interface(&node, name))
}

/// Interface `name` of a node; panics naming what is missing.
pub fn interface<'n>(
    node: &'n zbus_xml::Node<'static>,
    name: &str,
) -> &'n zbus_xml::Interface<'static> {
    node.interfaces()
        .iter()
        .find(|i| i.name() == name)
        .unwrap_or_else(|| panic!("{name} is not served"))
}

/// Introspect `path` on `conn` (on a bus, at `destination`; on a peer-to-peer connection, with
/// none) and return the members of interface `name` as served.
pub async fn served(
    conn: &zbus::Connection,
    destination: Option<&str>,
    path: &str,
    name: &str,
) -> Vec<String> {
    // fdo proxies need a destination; on a peer-to-peer connection nothing routes by it.
    let xml = zbus::fdo::IntrospectableProxy::builder(conn)
        .path(path.to_string())
        .expect("path")
        .destination(destination.unwrap_or("org.agentos.Peer").to_string())
        .expect("destination")
        .build()
        .await
        .expect("introspectable proxy")
        .introspect()
        .await
        .expect("introspect");
    let node = zbus_xml::Node::from_reader(xml.as_bytes()).expect("introspection XML parses");
    members(interface(&node, name))
}

/// The names of the methods of interface `name` as committed, in the XML's order.
pub fn committed_methods(name: &str) -> Vec<String> {
    let node = committed_node(name);
    interface(&node, name)
        .methods()
        .iter()
        .map(|m| m.name().to_string())
        .collect()
}

/// The body signature a reply to `iface.method` must carry: the types of the method's `out`
/// arguments in the committed XML, concatenated (a single struct argument keeps its
/// parentheses: `(ttssssdsstt)`, not its eleven fields).
pub fn committed_reply_signature(iface: &str, method: &str) -> String {
    let node = committed_node(iface);
    let m = interface(&node, iface)
        .methods()
        .iter()
        .find(|m| m.name() == method)
        .unwrap_or_else(|| panic!("{iface} declares no method {method}"));
    m.args()
        .iter()
        .filter(|a| a.direction() == Some(zbus_xml::ArgDirection::Out))
        .map(|a| a.ty().to_string())
        .collect()
}

/// The body signature of a message exactly as its header field carries it on the wire ("" for
/// none). zbus's parsed [`zbus::Message::body`] signature cannot tell one struct argument from
/// the same types as separate arguments, so the header is read here byte by byte.
pub fn wire_signature(msg: &zbus::Message) -> String {
    let bytes: &[u8] = msg.data();
    let big = bytes[0] == b'B';
    let u32_at = |i: usize| {
        let b: [u8; 4] = bytes[i..i + 4].try_into().expect("four bytes");
        (if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }) as usize
    };
    // Header fields: an array of (code, variant) structs from offset 16, each 8-aligned.
    let end = 16 + u32_at(12);
    let mut pos = 16;
    while pos < end {
        pos = pos.next_multiple_of(8);
        let code = bytes[pos];
        let sig_len = bytes[pos + 1] as usize;
        let sig = &bytes[pos + 2..pos + 2 + sig_len];
        pos += 2 + sig_len + 1;
        match sig {
            // A signature: length byte, bytes, nul.
            b"g" => {
                let len = bytes[pos] as usize;
                let value = &bytes[pos + 1..pos + 1 + len];
                if code == 8 {
                    return String::from_utf8(value.to_vec()).expect("a signature is ASCII");
                }
                pos += 1 + len + 1;
            }
            // A string or object path: 4-aligned length, bytes, nul.
            b"s" | b"o" => {
                pos = pos.next_multiple_of(4);
                pos += 4 + u32_at(pos) + 1;
            }
            b"u" => pos = pos.next_multiple_of(4) + 4,
            other => panic!(
                "header field {code} has unexpected type {:?}",
                String::from_utf8_lossy(other)
            ),
        }
    }
    String::new()
}

/// Replies checked against the committed contract, and which methods they covered.
#[derive(Debug, Default)]
pub struct ReplyChecker {
    covered: std::collections::BTreeSet<(String, String)>,
}

impl ReplyChecker {
    /// Check the reply to `iface.method`: it must have succeeded and carry exactly the body
    /// signature the XML declares. Returns the reply.
    pub fn check(
        &mut self,
        iface: &str,
        method: &str,
        reply: zbus::Result<zbus::Message>,
    ) -> zbus::Message {
        let reply = reply.unwrap_or_else(|e| panic!("{iface}.{method} failed: {e}"));
        let (got, want) = (
            wire_signature(&reply),
            committed_reply_signature(iface, method),
        );
        assert_eq!(
            got, want,
            "{iface}.{method} replied with body signature {got:?}; the XML declares {want:?}"
        );
        self.covered.insert((iface.to_string(), method.to_string()));
        reply
    }

    /// Every method of every committed interface that no checked reply covered.
    pub fn uncovered(&self) -> Vec<String> {
        INTERFACE_XML
            .iter()
            .flat_map(|(iface, _)| {
                committed_methods(iface)
                    .into_iter()
                    .filter(|m| !self.covered.contains(&(iface.to_string(), m.clone())))
                    .map(|m| format!("{iface}.{m}"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// The properties of interface `name` as committed: (name, type).
pub fn committed_properties(name: &str) -> Vec<(String, String)> {
    let node = committed_node(name);
    interface(&node, name)
        .properties()
        .iter()
        .map(|p| (p.name().to_string(), p.ty().to_string()))
        .collect()
}

/// The body signature signal `iface.signal` must carry: its args' types in the committed XML.
pub fn committed_signal_signature(iface: &str, signal: &str) -> String {
    let node = committed_node(iface);
    interface(&node, iface)
        .signals()
        .iter()
        .find(|s| s.name() == signal)
        .unwrap_or_else(|| panic!("{iface} declares no signal {signal}"))
        .args()
        .iter()
        .map(|a| a.ty().to_string())
        .collect()
}

/// Check a reply to `org.freedesktop.DBus.Properties.GetAll(iface)`: every committed property
/// is there, each value of the committed type, and nothing else.
pub fn check_properties(iface: &str, reply: zbus::Result<zbus::Message>) {
    let reply = reply.unwrap_or_else(|e| panic!("GetAll({iface}) failed: {e}"));
    let values: std::collections::HashMap<String, zbus::zvariant::OwnedValue> =
        reply.body().deserialize().expect("GetAll replies a{sv}");
    let mut served: Vec<(String, String)> = values
        .iter()
        .map(|(n, v)| (n.clone(), v.value_signature().to_string()))
        .collect();
    served.sort();
    let mut committed = committed_properties(iface);
    committed.sort();
    assert_eq!(served, committed, "{iface}'s properties as served");
}

/// Check a signal's body signature, as its header carries it, against the committed XML.
pub fn check_signal(msg: &zbus::Message) {
    let hdr = msg.header();
    let iface = hdr
        .interface()
        .expect("a signal names its interface")
        .to_string();
    let member = hdr.member().expect("a signal names its member").to_string();
    let (got, want) = (
        wire_signature(msg),
        committed_signal_signature(&iface, &member),
    );
    assert_eq!(
        got, want,
        "signal {iface}.{member} carried body signature {got:?}; the XML declares {want:?}"
    );
}

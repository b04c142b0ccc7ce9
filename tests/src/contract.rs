//! The committed D-Bus contract as tests compare it with what is live: the members of an
//! interface with their signatures, from the XML files and from introspection.

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

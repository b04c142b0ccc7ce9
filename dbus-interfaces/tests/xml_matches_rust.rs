//! The committed XML is the contract: every method, signal and property it documents has a proxy
//! member with the same name, every proxy member is in the XML, and the files parse.

use agentos_dbus_interfaces::INTERFACE_XML;

const PROXIES: &str = include_str!("../src/proxies.rs");

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The proxy trait's body for one interface, by its `interface = "..."` attribute.
fn proxy_body(iface: &str) -> &'static str {
    let marker = format!("interface = \"{iface}\"");
    let start = PROXIES
        .find(&marker)
        .unwrap_or_else(|| panic!("no proxy for {iface}"));
    let rest = &PROXIES[start..];
    let open = rest.find("pub trait").expect("trait after the attribute");
    let end = rest[open..].find("\n}\n").expect("end of trait");
    &rest[open..open + end]
}

fn proxy_members(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("fn "))
        .map(|l| l.split('(').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn every_xml_member_has_a_proxy_member_and_back() {
    for (iface_name, xml) in INTERFACE_XML {
        let node = zbus_xml::Node::from_reader(xml.as_bytes())
            .unwrap_or_else(|e| panic!("{iface_name}: XML does not parse: {e}"));
        let iface = node
            .interfaces()
            .iter()
            .find(|i| i.name() == *iface_name)
            .unwrap_or_else(|| panic!("{iface_name} missing from its XML"));
        let mut xml_members: Vec<String> = iface
            .methods()
            .iter()
            .map(|m| snake(m.name().as_str()))
            .collect();
        xml_members.extend(iface.signals().iter().map(|s| snake(s.name().as_str())));
        xml_members.extend(iface.properties().iter().map(|p| snake(p.name().as_str())));
        xml_members.sort();
        let mut rust_members = proxy_members(proxy_body(iface_name));
        rust_members.sort();
        assert_eq!(
            xml_members, rust_members,
            "{iface_name}: XML and proxy disagree"
        );
    }
}

#[test]
fn every_member_is_documented() {
    for (iface_name, xml) in INTERFACE_XML {
        let node = zbus_xml::Node::from_reader(xml.as_bytes()).unwrap();
        let iface = node
            .interfaces()
            .iter()
            .find(|i| i.name() == *iface_name)
            .unwrap();
        let names = iface
            .methods()
            .iter()
            .map(|m| m.name().to_string())
            .chain(iface.signals().iter().map(|s| s.name().to_string()))
            .chain(iface.properties().iter().map(|p| p.name().to_string()));
        for name in names {
            // Each member is preceded by a comment that starts with its name.
            let documented = xml.contains(&format!("<!-- {name}:"))
                || xml.contains(&format!("<!-- {name} ("))
                || xml.contains(&format!("\n      {name}:"))
                || xml.contains(&format!("\n      {name} ("));
            assert!(
                documented,
                "{iface_name}.{name} has no documentation comment"
            );
        }
    }
}

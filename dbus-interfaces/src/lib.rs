//! The public contract of AgentOS on D-Bus: bus and interface names, object paths, the committed
//! introspection XML, the value types that cross the bus, named errors and client proxies.
//!
//! This crate does no I/O. The kernel, the SDK, `agentctl` and the panel all speak through it, so
//! each interface is defined once. The XML files under `xml/` are the documentation of record; a
//! test fails when they and the Rust definitions disagree.

pub mod capability;
pub mod chat_pipe;
pub mod error;
pub mod inference;
pub mod names;
pub mod proxies;
pub mod text;
pub mod types;

pub use capability::{Capability, ScopeKind};
pub use error::Error;
/// Call payloads (`ay`): encoded and decoded as one block of bytes, not byte by byte.
pub use serde_bytes::{ByteBuf, Bytes};
pub use types::{
    AgentInfo, ArtifactInfo, AuditDecision, AuditRecord, ConsentRequestInfo, FileEntry, GrantInfo,
    Lifetime, ModelInfo, TaskInfo, TaskState, ToolInfo, UsageInfo,
};

/// The committed introspection XML of each interface, by interface name.
pub const INTERFACE_XML: &[(&str, &str)] = &[
    (
        names::KERNEL_IFACE,
        include_str!("../xml/org.agentos.Kernel1.xml"),
    ),
    (
        names::AGENT_IFACE,
        include_str!("../xml/org.agentos.Agent1.xml"),
    ),
    (
        names::TASK_IFACE,
        include_str!("../xml/org.agentos.Task1.xml"),
    ),
    (
        names::HOST_IFACE,
        include_str!("../xml/org.agentos.Host1.xml"),
    ),
    (
        names::CHANNEL_IFACE,
        include_str!("../xml/org.agentos.Channel1.xml"),
    ),
    (
        names::MODELS_IFACE,
        include_str!("../xml/org.agentos.Models1.xml"),
    ),
    (
        names::AGENT_SERVICE_IFACE,
        include_str!("../xml/org.agentos.AgentService1.xml"),
    ),
];

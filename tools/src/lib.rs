//! Tools as values. A tool is a named thing with the capability a call needs, a way to read the
//! call's scope from its arguments, a JSON Schema of those arguments (for agents and models),
//! and a run. The kernel checks every call of every tool the same way (the capability on the
//! scope, for the task's whole delegation chain) before it runs; a tool that touches further
//! scopes while it runs (a redirect to another host) asks through [`ScopeCheck`] first.
//!
//! The platform's own tools are here (`files.list`, `files.read`, `web.fetch`); tools that are
//! not compiled in register their capability at run time
//! ([`Capability::register`](agentos_dbus_interfaces::Capability::register)).

pub mod files;
mod registry;
mod tool;
pub mod web;

pub use registry::Registry;
pub use tool::{ScopeCheck, Tool, ToolError, ToolOutput};

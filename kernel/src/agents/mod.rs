//! Agents: who the kernel knows (`registry`), and how their instances come and go
//! (`lifecycle`: launch on demand, private connections, what happens when one goes away).

pub mod lifecycle;
pub mod registry;

pub use lifecycle::HostServer;
pub use registry::{AgentRegistry, Instance, LaunchPlan, Origin};

//! Agents: who the kernel knows (`registry`), how their instances come and go (`lifecycle`:
//! launch on demand, private connections, what happens when one goes away), and what changed in
//! them since the user gave them access (`fingerprint`: their grants wait for the user's word).

pub mod fingerprint;
pub mod lifecycle;
pub mod registry;

pub use lifecycle::HostServer;
pub use registry::{AgentRegistry, Change, Departure, Instance, LaunchPlan, Origin};

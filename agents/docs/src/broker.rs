//! The kernel's model broker as this agent's [`Model`](crate::model::Model): the SDK's.

pub use agentos_sdk::text_model::Broker;

//! The model this agent asks, behind a small trait: the kernel's broker in production
//! (`Host1.Chat` through the SDK), a scripted model in tests. Both are the SDK's.

pub use agentos_sdk::text_model::{Model, ModelError};

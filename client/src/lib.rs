//! The one door to the AgentOS kernel for clients (`agentctl`, the SDK's self-registration, the
//! panel), in the style of ashpd: [`Client::new`] finds the bus and verifies the kernel on it,
//! [`Client::with_connection`] verifies it on a connection made elsewhere.
//!
//! Any process may queue for a name on the session bus. The client asks the bus who owns
//! `org.agentos.Kernel` and which user runs it, refuses an owner running as another user, and
//! pins every proxy to the verified unique name, so a process that takes the name later cannot
//! receive calls meant for the kernel; when the name changes hands, the next use verifies the
//! new owner. A same-user process can still be anything the user can run: this check is about
//! other users and stale names, not about the user's own processes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use agentos_client::{display_safe, Client};
//!
//! let client = Client::new().await?;
//! for task in client.kernel().await?.list_tasks(10).await? {
//!     println!("{} {}", task.id, display_safe(&task.goal, 60));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Where there is no session bus, `./scripts/start` starts one and writes its address to
//! [`address_file`] (`$XDG_RUNTIME_DIR/agentos/bus-address`); [`Client::new`] reads it then, if
//! it and its folder belong to this user and nobody else can write them.

mod bus;
mod channel;
mod chat;
mod client;
mod error;
mod events;
mod pipe;

pub use agentos_dbus_interfaces::inference::{
    ChatEvent, ChatMessage, ChatRequest, ToolCall, ToolDefinition,
};
pub use agentos_dbus_interfaces::text::{display_safe, display_safe_block, is_bidi_control};
pub use bus::{
    address_file, open_bus, read_address_file, session_address, ADDRESS_FILE, CALL_TIMEOUT,
    CONNECT_TIMEOUT, HEADLESS_DIR,
};
pub use chat::{ChatError, ChatReply, ChatStream, CHAT_CALL_TIMEOUT, MAX_EVENT_LINE};
pub use client::Client;
pub use error::{describe_bus_error, describe_fdo, describe_zbus, ClientError};
pub use events::{TaskEvent, TaskEvents};

//! The AgentOS panel: a GTK4/libadwaita app (relm4) to ask agents, watch delegation live,
//! answer consent and manage permissions. Every call to the kernel goes through
//! `agentos-client`, in relm4 commands on its tokio runtime, never on the main loop.
//!
//! - [`app`]: the window (an `AdwLeaflet` of a sidebar and the pages) and the kernel's state.
//! - [`link`]: the connection to the kernel: verified, followed across restarts.
//! - [`pages`]: one component per page.
//! - [`consent`]: the panel as the kernel's consent provider, and its dialog.
//! - [`model`]: what the pages show, as plain Rust tested without a display.

pub mod app;
pub mod bus_error;
pub mod consent;
pub mod link;
pub mod model;
pub mod notify;
pub mod open_with;
pub mod pages;
pub mod ui;

/// The panel's application id (its D-Bus name, desktop file and icon).
pub const APP_ID: &str = "org.agentos.Panel";

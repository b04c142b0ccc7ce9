//! AgentOS's side of the desktop: who is calling (Flatpak app or host), read the way
//! xdg-desktop-portal reads it; the clients of desktop services (the consent dialog, the desktop's
//! portal backend, the Documents portal, the permission store); where the user's files are (XDG
//! directories) and the key-file format those services' files are written in; model providers'
//! API keys in the Secret Service.

pub mod consent;
pub mod desktop_portal;
pub mod documents;
pub mod flatpak_info;
pub mod identity;
pub mod keyfile;
pub mod permission_store;
pub mod proc_stat;
pub mod secrets;
pub mod systemd_scope;
pub mod xdg;

pub use identity::{identify_pid, identify_sender, CallerIdentity, IdentityError};

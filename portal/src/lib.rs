//! AgentOS's side of the desktop portal machinery: who is calling (Flatpak app or host), read the
//! way xdg-desktop-portal reads it.

pub mod flatpak_info;
pub mod identity;
pub mod systemd_scope;

pub use identity::{identify_pid, identify_sender, CallerIdentity, IdentityError};

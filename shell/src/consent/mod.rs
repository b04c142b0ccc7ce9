//! Consent: the panel is the kernel's consent provider. It owns `org.agentos.Consent`, serves
//! `org.freedesktop.impl.portal.Access` at `/org/freedesktop/portal/desktop` (answering only the
//! verified kernel), and asks the user in a dialog that defaults to deny.

pub mod dialog;
pub mod early;
pub mod icon;
pub mod queue;
pub mod request;
pub mod service;

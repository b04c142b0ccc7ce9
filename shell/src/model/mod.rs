//! What the pages show, as plain Rust: built from the kernel's answers and events, tested
//! without a display.

pub mod artifacts;
pub mod audit;
pub mod format;
pub mod grants;
pub mod image;
pub mod latest;
pub mod markdown;
pub mod paging;
pub mod tasks;

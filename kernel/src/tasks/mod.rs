//! Tasks: the tree (`tree`, plain Rust), its owner in the kernel (`board`: the tree, its
//! waiters and deadlines), the store writer that batches task changes off the async thread
//! (`writer`), and the task lifecycle the kernel drives (`lifecycle`).

pub mod board;
pub mod lifecycle;
pub mod tree;
pub mod writer;

pub use board::TaskBoard;
pub use tree::{Task, TaskError, TaskTable};
pub use writer::TaskWriter;

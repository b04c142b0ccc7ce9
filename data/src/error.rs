//! The one error type of the store.

/// Anything that can go wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite refused or failed an operation.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// A file or directory of the store could not be read or written.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// The database has a schema this build does not know.
    #[error(
        "the database has schema version {found} but this AgentOS supports at most {supported}: \
         it was written by a newer AgentOS"
    )]
    TooNew { found: u32, supported: u32 },

    /// No task has this id.
    #[error("no task {0}")]
    NoSuchTask(u64),

    /// The task already has an artifact of this name; artifacts are never replaced.
    #[error("task {task_id} already has an artifact named {name:?}")]
    Duplicate { task_id: u64, name: String },

    /// The artifact is larger than the caller's limit; nothing was stored.
    #[error("the artifact is larger than the limit of {max_size} bytes")]
    TooLarge { max_size: u64 },

    /// An artifact name that is empty, too long, or could name another path.
    #[error("invalid artifact name {0:?}: it must be 1 to 255 bytes, without '/' or NUL, and not \".\" or \"..\"")]
    InvalidName(String),

    /// A grant the store does not keep (only "always" grants are stored).
    #[error("invalid grant: {0}")]
    InvalidGrant(String),

    /// The database holds something this code never writes.
    #[error("corrupt store: {0}")]
    Corrupt(String),
}

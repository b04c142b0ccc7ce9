//! What a finished task hands back: a result text and artifacts (files, passed as fds).

use std::io::{Seek, SeekFrom, Write};

/// The result of a task.
#[derive(Debug, Default)]
pub struct Outcome {
    pub result: String,
    pub artifacts: Vec<(String, std::fs::File)>,
}

impl Outcome {
    /// A result with no artifacts.
    pub fn text(result: impl Into<String>) -> Outcome {
        Outcome {
            result: result.into(),
            artifacts: Vec::new(),
        }
    }

    /// Add an artifact made of `bytes` (kept in an anonymous memory file until sent).
    pub fn with_artifact(mut self, name: &str, bytes: &[u8]) -> std::io::Result<Outcome> {
        let fd = rustix::fs::memfd_create("agentos-artifact", rustix::fs::MemfdFlags::CLOEXEC)?;
        let mut file = std::fs::File::from(fd);
        file.write_all(bytes)?;
        file.seek(SeekFrom::Start(0))?;
        self.artifacts.push((name.to_string(), file));
        Ok(self)
    }

    /// Add an artifact from an open file (read from its current offset).
    pub fn with_file(mut self, name: &str, file: std::fs::File) -> Outcome {
        self.artifacts.push((name.to_string(), file));
        self
    }
}

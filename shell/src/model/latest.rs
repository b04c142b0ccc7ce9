//! Which of the reads under way is the newest: a page that reads again as things change shows
//! the answer of the last read it started, not whichever answer came last (an older read can
//! be answered after a newer one).

/// The reads a page started, counted.
#[derive(Debug, Default)]
pub struct Latest {
    started: u64,
}

impl Latest {
    /// A read starts: its number, to hand back with its answer.
    pub fn start(&mut self) -> u64 {
        self.started += 1;
        self.started
    }

    /// Whether the answer of read `read` is the one to show.
    pub fn is_latest(&self, read: u64) -> bool {
        read == self.started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_read_started_is_shown() {
        let mut latest = Latest::default();
        let older = latest.start();
        let newer = latest.start();
        assert!(!latest.is_latest(older), "an older answer that comes last");
        assert!(latest.is_latest(newer));
        assert!(!latest.is_latest(0));
    }
}

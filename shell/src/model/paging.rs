//! The "Load Older" button of a list read a page at a time: which page is next, and whether
//! one is being read, so that a failed read leaves the button ready to try again.

/// The state behind a "Load Older" button.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Older {
    /// The `before` of the next older page; 0 when the oldest was read (or none yet).
    next: u64,
    /// Whether a page is being read.
    reading: bool,
}

impl Older {
    /// The button was pressed: the `before` of the page to read, if there is one and no read
    /// is under way.
    pub fn start(&mut self) -> Option<u64> {
        if !self.enabled() {
            return None;
        }
        self.reading = true;
        Some(self.next)
    }

    /// A page was read; `next` is the `before` of the one after it.
    pub fn loaded(&mut self, next: u64) {
        self.next = next;
        self.reading = false;
    }

    /// A read failed: the same page may be asked for again.
    pub fn failed(&mut self) {
        self.reading = false;
    }

    /// The answers of an earlier kernel or reload are dropped: nothing is being read for
    /// this one.
    pub fn reset(&mut self) {
        *self = Older::default();
    }

    /// Whether the button can be pressed.
    pub fn enabled(&self) -> bool {
        !self.reading && self.next != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_read_can_be_tried_again() {
        let mut o = Older::default();
        assert!(!o.enabled(), "nothing read yet");
        assert_eq!(o.start(), None);
        o.loaded(40);
        assert!(o.enabled());
        assert_eq!(o.start(), Some(40));
        assert!(!o.enabled(), "not pressed twice while reading");
        assert_eq!(o.start(), None);
        o.failed();
        assert!(o.enabled(), "the button is back after a failure");
        assert_eq!(o.start(), Some(40), "the same page again");
        o.loaded(0);
        assert!(!o.enabled(), "the oldest was read");
        o.failed();
        assert!(!o.enabled());
    }

    #[test]
    fn a_reload_forgets_the_read_under_way() {
        let mut o = Older::default();
        o.loaded(9);
        assert_eq!(o.start(), Some(9));
        o.reset();
        assert!(!o.enabled());
        o.loaded(7);
        assert!(o.enabled());
    }
}

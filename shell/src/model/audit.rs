//! The Activity page's content: the audit log read page by page from the kernel (never all of
//! it at once), and the filters by agent, capability and decision over what was read.

use agentos_dbus_interfaces::AuditRecord;

/// Records asked for per page.
pub const PAGE: u32 = 500;

/// The filter the user set; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Part of the principal (agent or app id).
    pub principal: String,
    /// Part of the capability.
    pub capability: String,
    /// A decision's wire name ("allow", "deny"…), or empty for any.
    pub decision: String,
}

impl Filter {
    pub fn matches(&self, r: &AuditRecord) -> bool {
        r.principal.contains(self.principal.trim())
            && r.capability.contains(self.capability.trim())
            && (self.decision.is_empty() || r.decision == self.decision)
    }
}

/// The audit records read so far: the newest page first, older pages on request, newer ones as
/// they come. The kernel reads forward from a sequence number (`after`), so the newest page is
/// found from the number of records the verification counted.
#[derive(Debug, Default)]
pub struct Pager {
    records: std::collections::BTreeMap<u64, AuditRecord>,
    /// The `after` of the oldest page read (`None` before the first).
    oldest_after: Option<u64>,
}

impl Pager {
    /// The first page to read (`after`, `limit`) when the log holds about `total` records.
    pub fn first_page(total: u64) -> (u64, u32) {
        (total.saturating_sub(u64::from(PAGE)), PAGE)
    }

    /// The page before the oldest read, `None` once the beginning was read.
    pub fn older_page(&self) -> Option<(u64, u32)> {
        let oldest = self.oldest_after?;
        if oldest == 0 {
            return None;
        }
        let after = oldest.saturating_sub(u64::from(PAGE));
        Some((after, (oldest - after) as u32))
    }

    /// The page after the newest record read.
    pub fn newer_page(&self) -> (u64, u32) {
        let newest = self
            .records
            .keys()
            .next_back()
            .copied()
            .or(self.oldest_after)
            .unwrap_or(0);
        (newest, PAGE)
    }

    /// Whether the beginning of the log was read.
    pub fn at_start(&self) -> bool {
        self.oldest_after == Some(0)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Forget everything (another kernel, or a reload).
    pub fn reset(&mut self) {
        *self = Pager::default();
    }

    /// Take a page the kernel returned for `after`; records at or before `after` (which the
    /// kernel never sends) are dropped. Returns how many were new.
    pub fn take(&mut self, after: u64, page: Vec<AuditRecord>) -> usize {
        self.oldest_after = Some(self.oldest_after.map_or(after, |o| o.min(after)));
        let before = self.records.len();
        for r in page.into_iter().filter(|r| r.seq > after) {
            self.records.insert(r.seq, r);
        }
        self.records.len() - before
    }

    /// The records read that match `filter`, newest first.
    pub fn filtered<'a>(&'a self, filter: &'a Filter) -> impl Iterator<Item = &'a AuditRecord> {
        self.records
            .values()
            .rev()
            .filter(move |r| filter.matches(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, principal: &str, capability: &str, decision: &str) -> AuditRecord {
        AuditRecord {
            seq,
            time: seq,
            principal: principal.into(),
            capability: capability.into(),
            scope: String::new(),
            decision: decision.into(),
            reason: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn the_newest_page_first_then_older_ones() {
        let mut p = Pager::default();
        assert_eq!(Pager::first_page(1200), (700, PAGE));
        assert_eq!(Pager::first_page(30), (0, PAGE));
        assert_eq!(p.older_page(), None);
        let page = (701..=1200)
            .map(|s| rec(s, "docs", "files.read", "allow"))
            .collect();
        assert_eq!(p.take(700, page), 500);
        assert_eq!(p.older_page(), Some((200, 500)));
        assert_eq!(p.newer_page(), (1200, PAGE));
        let page = (201..=700)
            .map(|s| rec(s, "docs", "files.read", "allow"))
            .collect();
        p.take(200, page);
        assert_eq!(p.older_page(), Some((0, 200)));
        // A record the kernel should not have sent is dropped.
        assert_eq!(
            p.take(
                0,
                vec![rec(0, "x", "y", "allow"), rec(5, "x", "y", "allow")]
            ),
            1
        );
        assert!(p.at_start());
        assert_eq!(p.older_page(), None);
        p.reset();
        assert!(p.is_empty());
    }

    #[test]
    fn filters_by_agent_capability_and_decision() {
        let mut p = Pager::default();
        p.take(
            0,
            vec![
                rec(1, "docs", "files.read", "allow"),
                rec(2, "web", "web.fetch", "deny"),
                rec(3, "docs", "files.list", "deny"),
            ],
        );
        let seqs = |f: &Filter| p.filtered(f).map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&Filter::default()), vec![3, 2, 1]);
        let docs = Filter {
            principal: "docs".into(),
            ..Filter::default()
        };
        assert_eq!(seqs(&docs), vec![3, 1]);
        let denied = Filter {
            decision: "deny".into(),
            ..Filter::default()
        };
        assert_eq!(seqs(&denied), vec![3, 2]);
        let files = Filter {
            capability: "files.".into(),
            decision: "allow".into(),
            ..Filter::default()
        };
        assert_eq!(seqs(&files), vec![1]);
    }
}

//! Model budgets: how many tokens a principal (agent or app) may spend per hour and per day, and
//! how many requests it may make per minute. Over a budget is a refusal at submit, never a wait.
//! Pure: the time comes in as milliseconds.
//!
//! Tokens are counted in fixed windows (the UTC hour and day, so "reset by time" means at the
//! top of the hour and at midnight UTC). A request is charged its estimate when it is admitted
//! (the prompt's tokens plus the `max_tokens` it is sent with, so it cannot use more), and its
//! actual use when it finishes; a request canceled before it started is given back. Requests per
//! minute are counted in a sliding minute, so the retry-after is exact.

use std::collections::{HashMap, VecDeque};

pub const MINUTE_MS: u64 = 60_000;
pub const HOUR_MS: u64 = 60 * MINUTE_MS;
pub const DAY_MS: u64 = 24 * HOUR_MS;

/// One principal's limits; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    pub tokens_per_hour: Option<u64>,
    pub tokens_per_day: Option<u64>,
    pub requests_per_minute: Option<u32>,
}

impl Budget {
    pub const UNLIMITED: Budget = Budget {
        tokens_per_hour: None,
        tokens_per_day: None,
        requests_per_minute: None,
    };
}

/// Which token window a budget was exhausted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Window::Hour => "hour",
            Window::Day => "day",
        })
    }
}

/// Why a request does not fit a principal's budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The tokens of the window plus this request's estimate would pass the limit.
    Tokens {
        window: Window,
        limit: u64,
        used: u64,
        requested: u64,
        /// When the window starts afresh (ms since the epoch).
        free_at: u64,
    },
    /// The principal made its requests of the minute already.
    Rate {
        per_minute: u32,
        retry_after_ms: u64,
    },
}

/// What an admitted request was charged to one principal, so it can be settled or given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    principal: String,
    hour: u64,
    day: u64,
    tokens: u64,
}

/// One principal's spending in the current windows.
#[derive(Debug, Clone, Default)]
struct Spend {
    hour: u64,
    hour_tokens: u64,
    day: u64,
    day_tokens: u64,
    /// When the requests of the last minute were admitted, oldest first.
    recent: VecDeque<u64>,
}

impl Spend {
    /// Move to the windows of `now` (never back: a clock that went back stays in the later one).
    fn roll(&mut self, now: u64) {
        let (hour, day) = (now / HOUR_MS, now / DAY_MS);
        if hour > self.hour {
            self.hour = hour;
            self.hour_tokens = 0;
        }
        if day > self.day {
            self.day = day;
            self.day_tokens = 0;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| t.saturating_add(MINUTE_MS) <= now)
        {
            self.recent.pop_front();
        }
    }

    fn idle(&self) -> bool {
        self.hour_tokens == 0 && self.day_tokens == 0 && self.recent.is_empty()
    }
}

/// The budgets of every principal and what each spent.
#[derive(Debug, Clone, Default)]
pub struct Budgets {
    default: Budget,
    overrides: HashMap<String, Budget>,
    spend: HashMap<String, Spend>,
}

impl Budgets {
    pub fn new(default: Budget) -> Budgets {
        Budgets {
            default,
            ..Budgets::default()
        }
    }

    /// `principal`'s own limits instead of the default ones.
    pub fn set(&mut self, principal: &str, budget: Budget) {
        self.overrides.insert(principal.to_string(), budget);
    }

    pub fn of(&self, principal: &str) -> Budget {
        self.overrides
            .get(principal)
            .copied()
            .unwrap_or(self.default)
    }

    /// What `principal` spent in the windows `hour` and `day` (each its number and its tokens),
    /// kept from before: counted where those are still the windows of `now`.
    pub fn restore(&mut self, principal: &str, hour: (u64, u64), day: (u64, u64), now: u64) {
        let spend = self.spend.entry(principal.to_string()).or_default();
        spend.roll(now);
        if hour.0 == spend.hour {
            spend.hour_tokens = spend.hour_tokens.saturating_add(hour.1);
        }
        if day.0 == spend.day {
            spend.day_tokens = spend.day_tokens.saturating_add(day.1);
        }
        if spend.idle() {
            self.spend.remove(principal);
        }
    }

    /// Whether one more request of `tokens` (estimated) fits `principal`'s budget now: the rate
    /// first, then the hour, then the day.
    fn check(&mut self, principal: &str, tokens: u64, now: u64) -> Result<(), Refusal> {
        let budget = self.of(principal);
        let spend = self.spend.entry(principal.to_string()).or_default();
        spend.roll(now);
        if let Some(per_minute) = budget.requests_per_minute {
            if spend.recent.len() >= per_minute as usize {
                // The oldest that must leave the minute for one more to fit.
                let oldest = spend
                    .recent
                    .get(spend.recent.len() - per_minute as usize)
                    .copied()
                    .unwrap_or(now);
                return Err(Refusal::Rate {
                    per_minute,
                    retry_after_ms: oldest.saturating_add(MINUTE_MS).saturating_sub(now).max(1),
                });
            }
        }
        let windows = [
            (
                Window::Hour,
                budget.tokens_per_hour,
                spend.hour_tokens,
                spend.hour,
                HOUR_MS,
            ),
            (
                Window::Day,
                budget.tokens_per_day,
                spend.day_tokens,
                spend.day,
                DAY_MS,
            ),
        ];
        for (window, limit, used, index, len) in windows {
            if let Some(limit) = limit {
                if used.saturating_add(tokens) > limit {
                    return Err(Refusal::Tokens {
                        window,
                        limit,
                        used,
                        requested: tokens,
                        free_at: index.saturating_add(1).saturating_mul(len),
                    });
                }
            }
        }
        Ok(())
    }

    /// Admit one request of `tokens` (estimated), charged to each of `principals` (an agent, and
    /// the app it works for), or say whose limit it would pass and which: all or none are
    /// charged.
    pub fn admit(
        &mut self,
        principals: &[&str],
        tokens: u64,
        now: u64,
    ) -> Result<Vec<Charge>, (String, Refusal)> {
        if self.spend.len() > 1024 {
            self.spend.retain(|_, s| {
                s.roll(now);
                !s.idle()
            });
        }
        let mut distinct: Vec<&str> = Vec::with_capacity(principals.len());
        for p in principals {
            if !distinct.contains(p) {
                distinct.push(p);
            }
        }
        for p in &distinct {
            self.check(p, tokens, now).map_err(|r| (p.to_string(), r))?;
        }
        Ok(distinct
            .into_iter()
            .map(|p| {
                let spend = self.spend.entry(p.to_string()).or_default();
                spend.recent.push_back(now);
                spend.hour_tokens = spend.hour_tokens.saturating_add(tokens);
                spend.day_tokens = spend.day_tokens.saturating_add(tokens);
                Charge {
                    principal: p.to_string(),
                    hour: spend.hour,
                    day: spend.day,
                    tokens,
                }
            })
            .collect())
    }

    /// The request charged `charge` finished having used `actual` tokens: charge that instead,
    /// in the windows it was charged in if they are still the current ones.
    pub fn settle(&mut self, charge: &Charge, actual: u64) {
        let Some(spend) = self.spend.get_mut(&charge.principal) else {
            return;
        };
        if spend.hour == charge.hour {
            spend.hour_tokens = spend
                .hour_tokens
                .saturating_sub(charge.tokens)
                .saturating_add(actual);
        }
        if spend.day == charge.day {
            spend.day_tokens = spend
                .day_tokens
                .saturating_sub(charge.tokens)
                .saturating_add(actual);
        }
    }

    /// The request charged `charge` never ran: give its tokens back (not its place in the
    /// minute's rate: it was made).
    pub fn release(&mut self, charge: &Charge) {
        self.settle(charge, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000 * DAY_MS;

    fn admit(b: &mut Budgets, principal: &str, tokens: u64, now: u64) -> Result<Charge, Refusal> {
        match b.admit(&[principal], tokens, now) {
            Ok(mut charges) => Ok(charges.remove(0)),
            Err((_, refusal)) => Err(refusal),
        }
    }

    #[test]
    fn rate_then_tokens_each_with_when_it_frees() {
        let mut b = Budgets::new(Budget {
            tokens_per_hour: Some(1000),
            tokens_per_day: Some(1500),
            requests_per_minute: Some(3),
        });
        for i in 0..3 {
            admit(&mut b, "a", 100, T0 + i * 1000).unwrap();
        }
        let e = admit(&mut b, "a", 100, T0 + 10_000).unwrap_err();
        assert_eq!(
            e,
            Refusal::Rate {
                per_minute: 3,
                retry_after_ms: 50_000
            }
        );
        // Another principal is not affected; a minute later the first may again.
        admit(&mut b, "b", 100, T0 + 10_000).unwrap();
        let c = admit(&mut b, "a", 700, T0 + MINUTE_MS).unwrap();
        let e = admit(&mut b, "a", 1, T0 + MINUTE_MS + 2001).unwrap_err();
        assert!(matches!(
            e,
            Refusal::Tokens { window: Window::Hour, used: 1000, free_at, .. } if free_at == T0 + HOUR_MS
        ));
        // It used 200 of its 700: 500 come back.
        b.settle(&c, 200);
        admit(&mut b, "a", 500, T0 + 2 * MINUTE_MS).unwrap();
        // The next hour starts afresh, but the day holds 1000 already.
        let e = admit(&mut b, "a", 600, T0 + HOUR_MS).unwrap_err();
        assert!(
            matches!(e, Refusal::Tokens { window: Window::Day, used: 1000, free_at, .. } if free_at == T0 + DAY_MS)
        );
        let c = admit(&mut b, "a", 200, T0 + HOUR_MS).unwrap();
        b.release(&c);
        admit(&mut b, "a", 200, T0 + HOUR_MS + 1).unwrap();
        admit(&mut b, "a", 1000, T0 + DAY_MS).unwrap();
    }

    #[test]
    fn settling_after_the_window_changed_leaves_the_new_window_alone() {
        let mut b = Budgets::new(Budget {
            tokens_per_hour: Some(100),
            ..Budget::UNLIMITED
        });
        let c = admit(&mut b, "a", 100, T0).unwrap();
        admit(&mut b, "a", 100, T0 + HOUR_MS).unwrap();
        b.settle(&c, 0);
        assert!(admit(&mut b, "a", 1, T0 + HOUR_MS).is_err());
    }

    #[test]
    fn spending_kept_from_before_counts_only_in_its_own_windows() {
        let budget = Budget {
            tokens_per_hour: Some(1000),
            tokens_per_day: Some(1500),
            ..Budget::UNLIMITED
        };
        let now = T0 + 5 * HOUR_MS;
        let (hour, day) = (now / HOUR_MS, now / DAY_MS);
        let mut b = Budgets::new(budget);
        b.restore("a", (hour, 900), (day, 1400), now);
        let e = admit(&mut b, "a", 200, now).unwrap_err();
        assert!(
            matches!(
                e,
                Refusal::Tokens {
                    window: Window::Hour,
                    used: 900,
                    ..
                }
            ),
            "{e:?}"
        );
        // An earlier hour of the same day counts in the day only.
        let mut b = Budgets::new(budget);
        b.restore("a", (hour - 1, 900), (day, 1400), now);
        let e = admit(&mut b, "a", 200, now).unwrap_err();
        assert!(
            matches!(
                e,
                Refusal::Tokens {
                    window: Window::Day,
                    used: 1400,
                    ..
                }
            ),
            "{e:?}"
        );
        // Windows that have passed count for nothing, and leave nothing behind.
        let mut b = Budgets::new(budget);
        b.restore("a", (hour - 30, 900), (day - 1, 1400), now);
        assert!(b.spend.is_empty());
        admit(&mut b, "a", 1000, now).unwrap();
    }

    #[test]
    fn an_agent_and_its_app_are_charged_together_or_not_at_all() {
        let mut b = Budgets::new(Budget::UNLIMITED);
        b.set(
            "app",
            Budget {
                tokens_per_hour: Some(150),
                ..Budget::UNLIMITED
            },
        );
        let charges = b.admit(&["agent", "app"], 100, T0).unwrap();
        assert_eq!(charges.len(), 2);
        let (who, refusal) = b.admit(&["agent", "app"], 100, T0).unwrap_err();
        assert_eq!(who, "app");
        assert!(matches!(refusal, Refusal::Tokens { used: 100, .. }));
        // One principal named twice is charged once.
        assert_eq!(b.admit(&["agent", "agent"], 100, T0).unwrap().len(), 1);
        b.release(&charges[1]);
        b.admit(&["app"], 150, T0).unwrap();
    }
}

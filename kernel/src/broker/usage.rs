//! Usage accounting: what each finished model request cost, summed per principal (agent or
//! app), per task and per provider. Pure: the scheduler records a request when it finishes.

use std::collections::HashMap;

/// What one request used, as the provider reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub tokens_in: u64,
    pub tokens_out: u64,
}

impl Usage {
    /// Tokens in and out together (what budgets count).
    pub fn tokens(&self) -> u64 {
        self.tokens_in.saturating_add(self.tokens_out)
    }
}

/// A provider's price, in millionths of a currency unit per million tokens (so 3 $/Mtok is
/// `3_000_000`). Local servers cost nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    pub per_mtok_in: u64,
    pub per_mtok_out: u64,
}

impl Price {
    /// The estimated cost of `usage`, in millionths of a currency unit (rounded down).
    pub fn cost_micros(&self, usage: Usage) -> u64 {
        let cost = u128::from(usage.tokens_in) * u128::from(self.per_mtok_in)
            + u128::from(usage.tokens_out) * u128::from(self.per_mtok_out);
        u64::try_from(cost / 1_000_000).unwrap_or(u64::MAX)
    }
}

/// Usage summed over requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Time the requests held a slot, in ms.
    pub busy_ms: u64,
    /// Time the requests waited in the queue before they started, in ms.
    pub waited_ms: u64,
    /// Estimated cost, in millionths of a currency unit.
    pub cost_micros: u64,
}

impl Totals {
    fn add(&mut self, r: &Record) {
        self.requests += 1;
        self.tokens_in = self.tokens_in.saturating_add(r.usage.tokens_in);
        self.tokens_out = self.tokens_out.saturating_add(r.usage.tokens_out);
        self.busy_ms = self.busy_ms.saturating_add(r.busy_ms);
        self.waited_ms = self.waited_ms.saturating_add(r.waited_ms);
        self.cost_micros = self.cost_micros.saturating_add(r.cost_micros);
    }
}

/// One finished request, as it is recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    pub usage: Usage,
    pub busy_ms: u64,
    pub waited_ms: u64,
    pub cost_micros: u64,
}

/// Usage per principal (an agent's requests; an app's, and those made for it), per task and per
/// provider.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    by_principal: HashMap<String, Totals>,
    by_task: HashMap<u64, Totals>,
    by_provider: HashMap<String, Totals>,
}

impl Ledger {
    /// Count one finished request, for each of `principals` (the agent that asked, the app it
    /// worked for; one named twice is counted once).
    pub fn record(&mut self, provider: &str, principals: &[&str], task: u64, r: &Record) {
        for (i, principal) in principals.iter().enumerate() {
            if !principals[..i].contains(principal) {
                self.by_principal
                    .entry(principal.to_string())
                    .or_default()
                    .add(r);
            }
        }
        self.by_task.entry(task).or_default().add(r);
        self.by_provider
            .entry(provider.to_string())
            .or_default()
            .add(r);
    }

    pub fn principal(&self, principal: &str) -> Totals {
        self.by_principal
            .get(principal)
            .copied()
            .unwrap_or_default()
    }

    pub fn task(&self, task: u64) -> Totals {
        self.by_task.get(&task).copied().unwrap_or_default()
    }

    pub fn provider(&self, provider: &str) -> Totals {
        self.by_provider.get(provider).copied().unwrap_or_default()
    }

    /// The task ended: its totals, forgotten here (so the ledger does not grow with every task).
    pub fn take_task(&mut self, task: u64) -> Totals {
        self.by_task.remove(&task).unwrap_or_default()
    }

    /// Every principal's totals, in no particular order.
    pub fn principals(&self) -> impl Iterator<Item = (&str, &Totals)> {
        self.by_principal.iter().map(|(p, t)| (p.as_str(), t))
    }

    /// Every task's totals, in no particular order.
    pub fn tasks(&self) -> impl Iterator<Item = (u64, &Totals)> {
        self.by_task.iter().map(|(t, totals)| (*t, totals))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_and_totals() {
        let price = Price {
            per_mtok_in: 3_000_000,
            per_mtok_out: 15_000_000,
        };
        let usage = Usage {
            tokens_in: 1000,
            tokens_out: 200,
        };
        // 1000 × 3 $/Mtok + 200 × 15 $/Mtok = 0.003 $ + 0.003 $.
        assert_eq!(price.cost_micros(usage), 6000);
        let mut ledger = Ledger::default();
        let r = Record {
            usage,
            busy_ms: 500,
            waited_ms: 20,
            cost_micros: 6000,
        };
        ledger.record("claude", &["agent.docs", "app.notes"], 7, &r);
        ledger.record("claude", &["agent.docs", "agent.docs"], 8, &r);
        let t = ledger.principal("agent.docs");
        assert_eq!((t.requests, t.tokens_in, t.busy_ms), (2, 2000, 1000));
        assert_eq!(ledger.principal("app.notes").requests, 1);
        assert_eq!(ledger.task(7).requests, 1);
        assert_eq!(ledger.provider("claude").cost_micros, 12_000);
        assert_eq!(ledger.take_task(7).tokens_out, 200);
        assert_eq!(ledger.task(7), Totals::default());
    }
}

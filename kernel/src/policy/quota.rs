//! Quotas: how much one caller or agent may have the kernel do at once, and how fast. Over a
//! quota is a refusal at once (`QuotaExceeded`), never a wait. Plain Rust, the time passed in.

use std::collections::HashMap;

/// The limits, each named once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Unfinished tasks one caller (the user, an app, a delegating agent) may have started.
    pub tasks_per_caller: u32,
    /// Unfinished tasks one agent may have been given.
    pub tasks_per_agent: u32,
    /// Delegations one caller may make per second, on average...
    pub delegations_per_second: f64,
    /// ...and at once, after a pause.
    pub delegation_burst: f64,
    /// Bytes of artifacts one task may return.
    pub artifact_bytes_per_task: u64,
    /// Bytes of artifacts one agent may return in one kernel run.
    pub artifact_bytes_per_agent: u64,
    /// Private channels one caller may hold open.
    pub channels_per_caller: u32,
    /// Calls of one bus connection in flight at once.
    pub calls_in_flight: u32,
}

/// The kernel's limits (the XML of `org.agentos.Kernel1` states them too).
pub const LIMITS: Limits = Limits {
    tasks_per_caller: 64,
    tasks_per_agent: 64,
    delegations_per_second: 20.0,
    delegation_burst: 40.0,
    artifact_bytes_per_task: 256 * 1024 * 1024,
    artifact_bytes_per_agent: 1024 * 1024 * 1024,
    channels_per_caller: 8,
    calls_in_flight: 32,
};

/// A token bucket: `tokens` left at time `at` (ms).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: u64,
}

/// What the quotas remember: delegation buckets per caller, artifact bytes per agent, channels
/// per caller.
#[derive(Debug, Clone)]
pub struct Quotas {
    limits: Limits,
    buckets: HashMap<String, Bucket>,
    artifact_bytes: HashMap<String, u64>,
    channels: HashMap<String, u32>,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas::new(LIMITS)
    }
}

impl Quotas {
    pub fn new(limits: Limits) -> Quotas {
        Quotas {
            limits,
            buckets: HashMap::new(),
            artifact_bytes: HashMap::new(),
            channels: HashMap::new(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// May `caller` delegate to `agent` now, with `caller_tasks` and `agent_tasks` unfinished
    /// tasks already? Takes a token of the caller's delegation bucket when it may.
    pub fn admit_delegation(
        &mut self,
        caller: &str,
        agent: &str,
        caller_tasks: u32,
        agent_tasks: u32,
        now: u64,
    ) -> Result<(), String> {
        let l = self.limits;
        if caller_tasks >= l.tasks_per_caller {
            return Err(format!(
                "{caller} already has {caller_tasks} unfinished tasks (at most {}); wait for some to finish",
                l.tasks_per_caller
            ));
        }
        if agent_tasks >= l.tasks_per_agent {
            return Err(format!(
                "agent {agent} already has {agent_tasks} unfinished tasks (at most {}); wait for some to finish",
                l.tasks_per_agent
            ));
        }
        // Buckets of callers idle long enough to be full again are forgotten, so the map stays
        // as small as the set of callers active in the last couple of seconds.
        if self.buckets.len() > 1024 {
            let full_after = (l.delegation_burst / l.delegations_per_second * 1000.0) as u64;
            self.buckets
                .retain(|_, b| now.saturating_sub(b.at) < full_after);
        }
        let bucket = self.buckets.entry(caller.to_string()).or_insert(Bucket {
            tokens: l.delegation_burst,
            at: now,
        });
        let elapsed = now.saturating_sub(bucket.at) as f64 / 1000.0;
        bucket.tokens =
            (bucket.tokens + elapsed * l.delegations_per_second).min(l.delegation_burst);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            let wait_ms = ((1.0 - bucket.tokens) / l.delegations_per_second * 1000.0).ceil();
            return Err(format!(
                "{caller} delegates faster than {} tasks a second; try again in {wait_ms} ms",
                l.delegations_per_second
            ));
        }
        bucket.tokens -= 1.0;
        Ok(())
    }

    /// May `agent` return artifacts of `bytes` in all for one task? Counts them when it may.
    pub fn admit_artifacts(&mut self, agent: &str, bytes: u64) -> Result<(), String> {
        let l = self.limits;
        if bytes > l.artifact_bytes_per_task {
            return Err(format!(
                "the artifacts of one task may be at most {} MiB in all, not {} MiB",
                l.artifact_bytes_per_task >> 20,
                bytes.div_ceil(1 << 20)
            ));
        }
        let used = self.artifact_bytes.entry(agent.to_string()).or_default();
        if used.saturating_add(bytes) > l.artifact_bytes_per_agent {
            return Err(format!(
                "agent {agent} has returned {} MiB of artifacts in this session (at most {} MiB)",
                *used >> 20,
                l.artifact_bytes_per_agent >> 20
            ));
        }
        *used += bytes;
        Ok(())
    }

    /// May `caller` open one more private channel? Counts it when it may.
    pub fn open_channel(&mut self, caller: &str) -> Result<(), String> {
        let open = self.channels.entry(caller.to_string()).or_default();
        if *open >= self.limits.channels_per_caller {
            return Err(format!(
                "{caller} already holds {open} open channels (at most {})",
                self.limits.channels_per_caller
            ));
        }
        *open += 1;
        Ok(())
    }

    /// One of `caller`'s channels closed.
    pub fn close_channel(&mut self, caller: &str) {
        if let Some(open) = self.channels.get_mut(caller) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                self.channels.remove(caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tasks_in_flight_are_bounded_per_caller_and_per_agent() {
        let mut q = Quotas::default();
        assert!(q.admit_delegation("app", "docs", 63, 0, 0).is_ok());
        let e = q.admit_delegation("app", "docs", 64, 0, 0).unwrap_err();
        assert!(e.contains("64 unfinished tasks"), "{e}");
        let e = q.admit_delegation("app", "docs", 0, 64, 0).unwrap_err();
        assert!(e.contains("agent docs"), "{e}");
    }

    #[test]
    fn a_burst_then_the_steady_rate() {
        let mut q = Quotas::default();
        for i in 0..40 {
            assert!(q.admit_delegation("app", "a", 0, 0, 1000).is_ok(), "{i}");
        }
        let e = q.admit_delegation("app", "a", 0, 0, 1000).unwrap_err();
        assert!(e.contains("try again in 50 ms"), "{e}");
        // Another caller has its own bucket.
        assert!(q.admit_delegation("other", "a", 0, 0, 1000).is_ok());
        // A token comes back every 50 ms.
        assert!(q.admit_delegation("app", "a", 0, 0, 1050).is_ok());
        assert!(q.admit_delegation("app", "a", 0, 0, 1050).is_err());
    }

    #[test]
    fn artifacts_and_channels() {
        let mut q = Quotas::default();
        assert!(q.admit_artifacts("a", 257 << 20).is_err());
        for _ in 0..4 {
            assert!(q.admit_artifacts("a", 256 << 20).is_ok());
        }
        assert!(q.admit_artifacts("a", 1).is_err());
        assert!(q.admit_artifacts("b", 1).is_ok());
        for _ in 0..8 {
            assert!(q.open_channel("app").is_ok());
        }
        assert!(q.open_channel("app").is_err());
        q.close_channel("app");
        assert!(q.open_channel("app").is_ok());
    }

    proptest! {
        /// Over any window of time, no caller gets more delegations than the burst plus the
        /// rate times the window.
        #[test]
        fn the_rate_holds_over_any_window(steps in proptest::collection::vec(0..200u64, 1..400)) {
            let mut q = Quotas::default();
            let mut now = 0;
            let mut admitted: Vec<u64> = Vec::new();
            for step in steps {
                now += step;
                if q.admit_delegation("app", "a", 0, 0, now).is_ok() {
                    admitted.push(now);
                }
            }
            for (i, start) in admitted.iter().enumerate() {
                for (j, end) in admitted.iter().enumerate().skip(i) {
                    let window_s = (end - start) as f64 / 1000.0;
                    let allowed = LIMITS.delegation_burst + window_s * LIMITS.delegations_per_second;
                    prop_assert!((j - i + 1) as f64 <= allowed + 1e-9);
                }
            }
        }
    }
}

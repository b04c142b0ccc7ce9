//! When to try a request again: which statuses, how long to wait (`Retry-After` honoured, capped).

use std::time::{Duration, SystemTime};

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// The first wait; each later one doubles.
    pub base: Duration,
    /// No wait is longer, nor all of one request's waits together: a server asking for more
    /// is answered with `RateLimited` at once (the caller hears of it, rather than nothing for
    /// minutes).
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(20),
        }
    }
}

/// Statuses worth another try: too many requests, and the server's own failures.
pub(crate) fn retryable(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status) && status != 501
}

/// `Retry-After` as seconds or an HTTP date, as a wait from `now`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0 for the first), after `waited` in the waits
    /// before it; None when that would take the request's waits beyond the cap (a server's
    /// `Retry-After` beyond it included: then waiting is the caller's choice, not ours).
    pub(crate) fn wait(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        waited: Duration,
    ) -> Option<Duration> {
        let wait = retry_after.unwrap_or_else(|| {
            self.base
                .saturating_mul(2u32.saturating_pow(attempt))
                .min(self.cap)
        });
        (waited.saturating_add(wait) <= self.cap).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        // 21 Oct 2015 07:28:00 GMT is now; 10 s later:
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_long_asks_are_not_waited() {
        let p = RetryPolicy {
            retries: 5,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(5),
        };
        let none = Duration::ZERO;
        assert_eq!(p.wait(0, None, none), Some(Duration::from_secs(1)));
        assert_eq!(p.wait(2, None, none), Some(Duration::from_secs(4)));
        assert_eq!(p.wait(3, None, none), Some(Duration::from_secs(5)));
        assert_eq!(
            p.wait(0, Some(Duration::from_secs(2)), none),
            Some(Duration::from_secs(2))
        );
        assert_eq!(p.wait(0, Some(Duration::from_secs(60)), none), None);
        // The waits of one request together stay within the cap: 1 + 2 s, then not 4 more.
        assert_eq!(
            p.wait(2, None, Duration::from_secs(3)),
            None,
            "3 s waited and 4 to come is beyond 5"
        );
        assert_eq!(
            p.wait(1, None, Duration::from_secs(1)),
            Some(Duration::from_secs(2))
        );
        // A server asking for the whole cap each time gets one wait, not one per retry.
        let whole = Some(Duration::from_secs(5));
        assert_eq!(p.wait(0, whole, none), Some(Duration::from_secs(5)));
        assert_eq!(p.wait(1, whole, Duration::from_secs(5)), None);
        assert!(retryable(429) && retryable(503) && retryable(500) && !retryable(501));
        assert!(!retryable(400) && !retryable(401));
    }
}

//! What each principal spent of its model budgets in the current UTC hour and day, kept so that
//! a restart of the kernel does not renew them. One row per principal: a window that has passed
//! starts again from what is added in the new one.

use rusqlite::{params, Transaction};

use crate::usage::int;
use crate::{Store, StoreError};

/// Tokens a principal spent, in the windows (numbered from the epoch) they count in; read
/// back, the sums of the principal's latest windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpend {
    pub principal: String,
    pub hour: u64,
    pub hour_tokens: u64,
    pub day: u64,
    pub day_tokens: u64,
}

/// Add `spent` to its principals' windows: to the sums of the same window, instead of those of
/// an earlier one, and not at all to a window that has already passed (a clock set back).
pub(crate) fn add(tx: &Transaction<'_>, spent: &[ModelSpend]) -> Result<(), StoreError> {
    if spent.is_empty() {
        return Ok(());
    }
    // SQLite evaluates every expression of the SET before it assigns any.
    let mut upsert = tx.prepare_cached(
        "INSERT INTO model_spend (principal, hour, hour_tokens, day, day_tokens)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (principal) DO UPDATE SET
                 hour_tokens = CASE
                     WHEN excluded.hour = hour
                         THEN min(hour_tokens + excluded.hour_tokens, 9223372036854775807)
                     WHEN excluded.hour > hour THEN excluded.hour_tokens
                     ELSE hour_tokens END,
                 hour = max(hour, excluded.hour),
                 day_tokens = CASE
                     WHEN excluded.day = day
                         THEN min(day_tokens + excluded.day_tokens, 9223372036854775807)
                     WHEN excluded.day > day THEN excluded.day_tokens
                     ELSE day_tokens END,
                 day = max(day, excluded.day)",
    )?;
    for s in spent {
        upsert.execute(params![
            s.principal,
            int(s.hour),
            int(s.hour_tokens),
            int(s.day),
            int(s.day_tokens)
        ])?;
    }
    Ok(())
}

impl Store {
    /// Every principal's latest windows and what it spent in them.
    pub fn model_spend(&self) -> Result<Vec<ModelSpend>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT principal, hour, hour_tokens, day, day_tokens FROM model_spend
             ORDER BY principal",
        )?;
        let n = |v: i64| v.max(0) as u64;
        let rows = stmt.query_map([], |r| {
            Ok(ModelSpend {
                principal: r.get(0)?,
                hour: n(r.get(1)?),
                hour_tokens: n(r.get(2)?),
                day: n(r.get(3)?),
                day_tokens: n(r.get(4)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spent(principal: &str, hour: u64, day: u64, tokens: u64) -> ModelSpend {
        ModelSpend {
            principal: principal.into(),
            hour,
            hour_tokens: tokens,
            day,
            day_tokens: tokens,
        }
    }

    #[test]
    fn spending_adds_up_within_its_windows_and_starts_again_in_new_ones() {
        let tmp = tempfile::TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store
            .add_model_use(&[], &[spent("docs", 10, 0, 5), spent("host", 10, 0, 1)])
            .unwrap();
        store
            .add_model_use(&[], &[spent("docs", 10, 0, 7)])
            .unwrap();
        // The next hour of the same day: the hour starts again, the day goes on.
        store
            .add_model_use(&[], &[spent("host", 11, 0, 2)])
            .unwrap();
        // A clock set back: not added to a window that has passed, and no window goes back.
        store
            .add_model_use(&[], &[spent("host", 9, 0, 100)])
            .unwrap();
        drop(store);
        let store = Store::open(tmp.path()).unwrap();
        let expected = |p: &str, hour, hour_tokens, day_tokens| ModelSpend {
            principal: p.into(),
            hour,
            hour_tokens,
            day: 0,
            day_tokens,
        };
        assert_eq!(
            store.model_spend().unwrap(),
            [expected("docs", 10, 12, 12), expected("host", 11, 2, 103)]
        );
        // The next day starts both again.
        store
            .add_model_use(&[], &[spent("docs", 34, 1, 4)])
            .unwrap();
        let docs = &store.model_spend().unwrap()[0];
        assert_eq!(
            (docs.hour, docs.hour_tokens, docs.day, docs.day_tokens),
            (34, 4, 1, 4)
        );
    }
}

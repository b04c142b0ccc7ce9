//! Model use, summed since the store began: requests, tokens in and out, time holding a
//! provider's slot and estimated cost (and how many requests had no known price), per agent,
//! app, the user's own tools (`host`) and task.
//! A task's row also names its owner (who started its tree), so an app can be shown the rows of
//! its own tasks.

use rusqlite::params;

use crate::{Store, StoreError};
use agentos_dbus_interfaces::UsageInfo;

/// What one finished request adds to one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelUsage {
    /// `agent`, `app`, `host` or `task`.
    pub kind: String,
    /// The agent id, the app's principal, `host`, or the task id in decimal.
    pub who: String,
    /// Who started the task's tree (`host`, an app's principal); the principal itself otherwise.
    pub owner: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub millis: u64,
    pub cost_micros: u64,
    /// Requests whose model has no known price (their cost is not in `cost_micros`).
    pub unpriced: u64,
}

/// SQLite integers are signed: counters stay below `i64::MAX`.
pub(crate) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Add each of `rows` to its sums, in one transaction.
    pub fn add_model_usage(&self, rows: &[ModelUsage]) -> Result<(), StoreError> {
        self.add_model_use(rows, &[])
    }

    /// Add each of `rows` to its sums and each of `spent` to its principal's budget windows, in
    /// one transaction.
    pub fn add_model_use(
        &self,
        rows: &[ModelUsage],
        spent: &[crate::ModelSpend],
    ) -> Result<(), StoreError> {
        let tx = self.begin()?;
        // Parsed once per connection (every finished model request comes here).
        let mut insert = tx.prepare_cached(
            "INSERT INTO model_usage (kind, who, owner, requests, input_tokens, output_tokens,
                                          millis, cost_micros, unpriced)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (kind, who) DO UPDATE SET
                     requests = min(requests + excluded.requests, 9223372036854775807),
                     input_tokens = min(input_tokens + excluded.input_tokens, 9223372036854775807),
                     output_tokens = min(output_tokens + excluded.output_tokens, 9223372036854775807),
                     millis = min(millis + excluded.millis, 9223372036854775807),
                     cost_micros = min(cost_micros + excluded.cost_micros, 9223372036854775807),
                     unpriced = min(unpriced + excluded.unpriced, 9223372036854775807)",
        )?;
        for r in rows {
            insert.execute(params![
                r.kind,
                r.who,
                r.owner,
                int(r.requests),
                int(r.input_tokens),
                int(r.output_tokens),
                int(r.millis),
                int(r.cost_micros),
                int(r.unpriced)
            ])?;
        }
        drop(insert);
        crate::spend::add(&tx, spent)?;
        tx.commit()?;
        Ok(())
    }

    /// The sums, principals first (agents, apps, host), then tasks by id; only the rows of
    /// `owner` (its own and its tasks') when given.
    pub fn list_model_usage(&self, owner: Option<&str>) -> Result<Vec<UsageInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT kind, who, requests, input_tokens, output_tokens, millis, cost_micros, unpriced
             FROM model_usage WHERE ?1 IS NULL OR owner = ?1
             ORDER BY kind = 'task', kind, CASE WHEN kind = 'task' THEN CAST(who AS INTEGER) END, who",
        )?;
        let rows = stmt.query_map(params![owner], |r| {
            Ok(UsageInfo {
                kind: r.get(0)?,
                who: r.get(1)?,
                requests: r.get::<_, i64>(2)?.max(0) as u64,
                input_tokens: r.get::<_, i64>(3)?.max(0) as u64,
                output_tokens: r.get::<_, i64>(4)?.max(0) as u64,
                millis: r.get::<_, i64>(5)?.max(0) as u64,
                cost_micros: r.get::<_, i64>(6)?.max(0) as u64,
                unpriced_requests: r.get::<_, i64>(7)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, who: &str, owner: &str, tokens: u64) -> ModelUsage {
        ModelUsage {
            kind: kind.into(),
            who: who.into(),
            owner: owner.into(),
            requests: 1,
            input_tokens: tokens,
            output_tokens: 2 * tokens,
            millis: 10,
            cost_micros: 0,
            unpriced: 0,
        }
    }

    #[test]
    fn usage_adds_up_per_row_and_survives_a_reopen() {
        let tmp = tempfile::TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store
            .add_model_usage(&[
                row("agent", "docs", "docs", 5),
                row("task", "10", "host", 5),
            ])
            .unwrap();
        store
            .add_model_usage(&[
                row("agent", "docs", "docs", 7),
                row("app", "org.example.App", "org.example.App", 3),
                row("task", "9", "org.example.App", 3),
                row("task", "10", "host", 1),
            ])
            .unwrap();
        drop(store);
        let store = Store::open(tmp.path()).unwrap();
        let all = store.list_model_usage(None).unwrap();
        let keys: Vec<(String, String, u64, u64)> = all
            .iter()
            .map(|u| (u.kind.clone(), u.who.clone(), u.requests, u.input_tokens))
            .collect();
        assert_eq!(
            keys,
            [
                ("agent".into(), "docs".into(), 2, 12),
                ("app".into(), "org.example.App".into(), 1, 3),
                ("task".into(), "9".into(), 1, 3),
                ("task".into(), "10".into(), 2, 6),
            ]
        );
        assert_eq!(all[0].output_tokens, 24);
        assert_eq!(all[0].millis, 20);
        assert_eq!(all[0].unpriced_requests, 0);
        let mut unknown = row("agent", "docs", "docs", 1);
        unknown.unpriced = 1;
        store.add_model_usage(&[unknown]).unwrap();
        let docs = &store.list_model_usage(None).unwrap()[0];
        assert_eq!((docs.requests, docs.unpriced_requests), (3, 1));
        let app = store.list_model_usage(Some("org.example.App")).unwrap();
        assert_eq!(app.len(), 2);
        assert!(app.iter().all(|u| u.who != "docs" && u.who != "10"));
    }

    #[test]
    fn sums_saturate_instead_of_failing() {
        let tmp = tempfile::TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let mut big = row("host", "host", "host", u64::MAX / 2);
        big.requests = u64::MAX;
        store.add_model_usage(&[big.clone()]).unwrap();
        store.add_model_usage(&[big]).unwrap();
        let u = &store.list_model_usage(None).unwrap()[0];
        assert_eq!(u.requests, i64::MAX as u64);
    }
}

//! `agentctl usage`: model use per principal and task (`Models1.ListUsage`): requests, tokens in
//! and out, time holding a provider's slot, estimated cost (`unknown` for requests to a remote
//! model with no known price, not `$0`).

use std::cmp::Reverse;

use agentos_dbus_interfaces::UsageInfo;
use serde::Serialize;

use crate::connect::Kernel;
use crate::error::{CliError, Result};
use crate::output::{self, Table};

/// Tasks shown without `--all` (the most recent ones).
const TASKS_SHOWN: usize = 20;

#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    usage: &'a UsageInfo,
    /// The estimated cost in US dollars, for people and scripts that do not divide; `null`
    /// when some requests had no known price (`unpriced_requests`): the whole is not known.
    cost_usd: Option<f64>,
    /// The estimated cost of the requests with a known price, in US dollars.
    priced_cost_usd: f64,
}

impl<'a> Row<'a> {
    fn of(usage: &'a UsageInfo) -> Row<'a> {
        let priced = usage.cost_micros as f64 / 1e6;
        Row {
            usage,
            cost_usd: (usage.unpriced_requests == 0).then_some(priced),
            priced_cost_usd: priced,
        }
    }
}

/// `agentctl usage [--all] [--json]`.
pub async fn list(kernel: &Kernel, all: bool, json: bool) -> Result<u8> {
    let mut rows = kernel
        .client
        .list_usage()
        .await
        .map_err(|e| CliError::new(e.to_string()))?;
    sort(&mut rows);
    if json {
        let rows: Vec<Row<'_>> = rows.iter().map(Row::of).collect();
        output::json(&rows)?;
        return Ok(0);
    }
    if rows.is_empty() {
        output::emit("no model use recorded yet\n")?;
        return Ok(0);
    }
    let (shown, hidden) = keep_recent_tasks(rows, if all { usize::MAX } else { TASKS_SHOWN });
    let mut text = render(&shown);
    if hidden > 0 {
        text.push_str(&format!(
            "… and {hidden} older task{} (agentctl usage --all)\n",
            if hidden == 1 { "" } else { "s" }
        ));
    }
    output::emit(&text)?;
    Ok(0)
}

/// The user's own tools, then apps, agents, and tasks; the costliest (then the busiest) first
/// within each, tasks newest first.
fn sort(rows: &mut [UsageInfo]) {
    fn rank(kind: &str) -> u8 {
        match kind {
            "host" => 0,
            "app" => 1,
            "agent" => 2,
            "task" => 3,
            _ => 4,
        }
    }
    rows.sort_by_key(|r| {
        let task_id = if r.kind == "task" {
            r.who.parse::<u64>().unwrap_or(0)
        } else {
            0
        };
        (
            rank(&r.kind),
            Reverse(task_id),
            Reverse(r.cost_micros),
            Reverse(r.input_tokens.saturating_add(r.output_tokens)),
            r.who.clone(),
        )
    });
}

/// At most `max` task rows (the first ones, as sorted), and how many were left out.
fn keep_recent_tasks(rows: Vec<UsageInfo>, max: usize) -> (Vec<UsageInfo>, usize) {
    let mut tasks = 0;
    let mut hidden = 0;
    let kept = rows
        .into_iter()
        .filter(|r| {
            if r.kind != "task" {
                return true;
            }
            tasks += 1;
            if tasks > max {
                hidden += 1;
                return false;
            }
            true
        })
        .collect();
    (kept, hidden)
}

fn render(rows: &[UsageInfo]) -> String {
    let mut table = Table::new(&[
        "KIND",
        "WHO",
        "REQUESTS",
        "TOKENS IN",
        "TOKENS OUT",
        "TIME",
        "COST",
    ]);
    for r in rows {
        table.row(vec![
            r.kind.clone(),
            r.who.clone(),
            r.requests.to_string(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            duration(r.millis),
            cost(r),
        ]);
    }
    table.render()
}

/// Milliseconds as a short duration: `850 ms`, `12.3 s`, `4 min 5 s`, `2 h 3 min`.
fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// A row's estimated cost: in dollars, `unknown` when none of its requests' models has a known
/// price, and `$… + unknown` when some have not.
fn cost(r: &UsageInfo) -> String {
    match r.unpriced_requests {
        0 => dollars(r.cost_micros),
        n if n >= r.requests && r.cost_micros == 0 => "unknown".to_string(),
        _ => format!("{} + unknown", dollars(r.cost_micros)),
    }
}

/// Millionths of a dollar as dollars: `$0` for nothing, else four decimals (`$0.0012`), and
/// `<$0.0001` for less than that.
fn dollars(micros: u64) -> String {
    match micros {
        0 => "$0".to_string(),
        1..=99 => "<$0.0001".to_string(),
        _ => format!("${}.{:04}", micros / 1_000_000, micros % 1_000_000 / 100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, who: &str, tokens: u64, cost: u64) -> UsageInfo {
        UsageInfo {
            kind: kind.into(),
            who: who.into(),
            requests: 1,
            input_tokens: tokens,
            output_tokens: 0,
            millis: 1500,
            cost_micros: cost,
            unpriced_requests: 0,
        }
    }

    #[test]
    fn principals_first_costliest_first_tasks_newest_first() {
        let mut rows = vec![
            row("task", "9", 10, 0),
            row("agent", "docs", 100, 0),
            row("task", "12", 5, 0),
            row("agent", "sidekick", 50, 2_000),
            row("host", "host", 1, 0),
            row("app", "org.example.App", 3, 0),
            row("task", "100", 1, 0),
        ];
        sort(&mut rows);
        let order: Vec<&str> = rows.iter().map(|r| r.who.as_str()).collect();
        assert_eq!(
            order,
            [
                "host",
                "org.example.App",
                "sidekick",
                "docs",
                "100",
                "12",
                "9"
            ]
        );
        let (kept, hidden) = keep_recent_tasks(rows, 2);
        assert_eq!(hidden, 1);
        assert_eq!(kept.last().unwrap().who, "12");
    }

    #[test]
    fn times_and_money_read_plainly() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_345), "12.3 s");
        assert_eq!(duration(245_000), "4 min 5 s");
        assert_eq!(duration(7_380_000), "2 h 3 min");
        assert_eq!(dollars(0), "$0");
        assert_eq!(dollars(42), "<$0.0001");
        assert_eq!(dollars(1_234), "$0.0012");
        assert_eq!(dollars(12_345_678), "$12.3456");
        let table = render(&[row("agent", "docs", 7, 1_500_000)]);
        assert_eq!(
            table,
            "KIND   WHO   REQUESTS  TOKENS IN  TOKENS OUT  TIME   COST\n\
             agent  docs  1         7          0           1.5 s  $1.5000\n"
        );
    }

    #[test]
    fn a_cost_with_no_known_price_is_unknown_not_free() {
        let mut r = row("agent", "docs", 7, 0);
        r.unpriced_requests = 1;
        assert_eq!(cost(&r), "unknown");
        r.requests = 3;
        r.cost_micros = 1_234;
        assert_eq!(cost(&r), "$0.0012 + unknown");
        r.unpriced_requests = 0;
        assert_eq!(cost(&r), "$0.0012");
    }

    #[test]
    fn a_cost_not_known_whole_is_null_in_json() {
        let mut r = row("agent", "sidekick", 50, 1_200);
        let json = |r: &UsageInfo| serde_json::to_value(Row::of(r)).unwrap();
        assert_eq!(json(&r)["cost_usd"], serde_json::json!(0.0012));
        r.unpriced_requests = 1;
        assert_eq!(json(&r)["cost_usd"], serde_json::Value::Null);
        assert_eq!(json(&r)["priced_cost_usd"], serde_json::json!(0.0012));
        assert_eq!(json(&r)["unpriced_requests"], 1);
    }
}

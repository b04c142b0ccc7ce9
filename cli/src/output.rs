//! Writing to the terminal: tables, JSON, times, and text from the bus made safe to print.

use std::io::Write;

use agentos_client::{display_safe, display_safe_block, is_bidi_control};
use serde::Serialize;

use crate::error::{CliError, Result};

/// Write `text` to stdout. A closed pipe (`agentctl tasks | head`) is not an error.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::new(format!("cannot write output: {e}"))),
    }
}

/// Write one line to stderr; nothing sensible is left to do if that fails.
pub fn warn(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Print `value` as pretty JSON followed by a newline. Control characters are escaped by JSON
/// itself; bidirectional controls are escaped too (`\u202e`), so the values stay exact but
/// cannot reorder what the terminal shows.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut text = escape_bidi(&serde_json::to_string_pretty(value)?);
    text.push('\n');
    emit(&text)
}

/// JSON text with every bidirectional control written as a `\uXXXX` escape (they can only
/// occur inside strings, where the escape means the same character).
fn escape_bidi(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if is_bidi_control(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// One line of text from the bus, safe to print: control characters (escape sequences,
/// newlines) and bidirectional controls removed, so an agent cannot forge, garble or disguise
/// terminal output.
pub fn clean(s: &str) -> String {
    display_safe(s, usize::MAX)
}

/// [`clean`], cut to at most `max` characters (ending in `…` when cut).
pub fn truncate(s: &str, max: usize) -> String {
    display_safe(s, max)
}

/// Multi-line text from the bus (a result): newlines and tabs stay, other control characters
/// and bidirectional controls go.
pub fn clean_block(s: &str) -> String {
    display_safe_block(s, usize::MAX)
}

/// A progress fraction as a whole percentage.
pub fn percent(progress: f64) -> String {
    let p = if progress.is_finite() {
        progress.clamp(0.0, 1.0)
    } else {
        0.0
    };
    format!("{}%", (p * 100.0).round() as u32)
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A plain text table: columns padded to their widest cell, the last one left ragged.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Add a row; cells are made safe to print (see [`clean`]).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| clean(c)).collect());
    }

    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                if i + 1 == columns {
                    line.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count();
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_text() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_709_210_096_000), "2024-02-29 12:34:56");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(clean("a\x1b[2Jb\nc"), "a[2Jb c");
        assert_eq!(clean("invoice-\u{202e}fdp.exe"), "invoice-fdp.exe");
        assert_eq!(clean_block("a\r\nb\u{2067}"), "a\nb");
        assert_eq!(percent(0.404), "40%");
        let json = escape_bidi(&serde_json::to_string(&"a\u{202e}b\u{1b}").unwrap());
        assert_eq!(json, "\"a\\u202eb\\u001b\"");
        assert_eq!(
            serde_json::from_str::<String>(&json).unwrap(),
            "a\u{202e}b\u{1b}"
        );
        assert_eq!(percent(f64::NAN), "0%");
    }

    #[test]
    fn table_pads_columns() {
        let mut t = Table::new(&["A", "BB"]);
        t.row(vec!["xyz".into(), "1".into()]);
        assert_eq!(t.render(), "A    BB\nxyz  1\n");
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["\u{202e}x\ny".into(), "\x1b[2J".into()]);
        assert_eq!(t.render(), "A    B\nx y  [2J\n");
    }
}

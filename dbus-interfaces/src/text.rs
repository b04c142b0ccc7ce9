//! Text from the bus made safe to show to a person: the one implementation for the kernel's
//! prompts, `agentctl` and the panel.
//!
//! Goals, messages, results, names and scopes come from agents and apps, which may be hostile.
//! Shown as they are, control characters could move the cursor, clear the screen or forge lines
//! (`ESC [2J`, `\r`, `\n`), and Unicode's bidirectional controls could reorder what the reader
//! sees (`report\u{202e}fdp.exe` displays as `reportexe.pdf`). Both are removed here; a long
//! value is cut, visibly, with `…`.

/// The mark that ends a value that was cut.
pub const ELLIPSIS: char = '…';

/// One line of text, safe to show: newlines, tabs and other line breaks become a space, every
/// other control character (C0, DEL, C1) and every bidirectional control is removed, and the
/// result is cut to at most `max_chars` characters, ending in `…` when cut.
///
/// ```
/// use agentos_dbus_interfaces::text::display_safe;
/// assert_eq!(display_safe("a\nb\u{202e}c\u{7}", 100), "a bc");
/// assert_eq!(display_safe("abcdef", 4), "abc…");
/// ```
pub fn display_safe(s: &str, max_chars: usize) -> String {
    let cleaned: String = s
        .chars()
        .filter_map(|c| {
            if is_line_break(c) || c == '\t' {
                Some(' ')
            } else if is_hidden(c) {
                None
            } else {
                Some(c)
            }
        })
        .collect();
    cut(cleaned, max_chars)
}

/// Several lines of text (a result), safe to show: newlines and tabs stay (`\r\n` and the
/// Unicode line and paragraph separators become `\n`; a lone `\r`, which would let a line
/// overwrite the one shown before it, is removed), every other control character and every
/// bidirectional control is removed, and the result is cut to at most `max_chars` characters,
/// ending in `…` when cut.
pub fn display_safe_block(s: &str, max_chars: usize) -> String {
    let cleaned: String = s
        .chars()
        .filter_map(|c| {
            if c == '\n' || c == '\t' {
                Some(c)
            } else if c == '\u{2028}' || c == '\u{2029}' {
                Some('\n')
            } else if is_hidden(c) {
                None
            } else {
                Some(c)
            }
        })
        .collect();
    cut(cleaned, max_chars)
}

/// Is `c` one of Unicode's bidirectional formatting characters: the Arabic letter mark, the
/// left-to-right and right-to-left marks, the embeddings and overrides (U+202A–U+202E) and the
/// isolates (U+2066–U+2069)?
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// A character that ends a line on a terminal or in a text view.
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// A character removed from shown text: a control character (C0, DEL, C1) or a bidi control.
fn is_hidden(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

fn cut(s: String, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s;
    }
    let mut out: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    out.push(ELLIPSIS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_controls_and_cuts() {
        assert_eq!(display_safe("a\nb\u{202e}c\u{7}", 100), "a bc");
        assert_eq!(display_safe("abcdef", 4), "abc…");
        assert_eq!(display_safe("abcd", 4), "abcd");
        assert_eq!(display_safe("", 4), "");
        assert_eq!(display_safe("a\tb\r\nc", 100), "a b  c");
        // Cutting counts characters, not bytes.
        assert_eq!(display_safe("ééééé", 3), "éé…");
    }

    #[test]
    fn terminal_escapes_cannot_act() {
        let hostile = "ok\x1b[2J\x1b]0;title\x07\x1b[1A\rforged\u{9b}31m";
        let shown = display_safe(hostile, 200);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert_eq!(shown, "ok[2J]0;title[1A forged31m");
        let block = display_safe_block(hostile, 200);
        assert!(!block.chars().any(|c| c.is_control()), "{block:?}");
    }

    #[test]
    fn bidi_spoofing_is_undone() {
        // Displays as "invoice-exe.pdf" when the override is honoured.
        assert_eq!(
            display_safe("invoice-\u{202e}fdp.exe", 100),
            "invoice-fdp.exe"
        );
        // An isolate that hides a "not" in a goal ("do not delete" shown as "do delete").
        assert_eq!(
            display_safe("do \u{2067}\u{2066}not\u{2069}\u{2069} delete", 100),
            "do not delete"
        );
        for c in [
            '\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
            '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ] {
            assert!(is_bidi_control(c));
            assert_eq!(display_safe(&format!("a{c}b"), 10), "ab");
            assert_eq!(display_safe_block(&format!("a{c}\nb"), 10), "a\nb");
        }
        // Right-to-left text itself stays.
        assert_eq!(display_safe("שלום", 10), "שלום");
    }

    #[test]
    fn blocks_keep_lines_but_not_carriage_returns() {
        assert_eq!(
            display_safe_block("line 1\r\n\tline 2\rforged\u{2028}x", 100),
            "line 1\n\tline 2forged\nx"
        );
        assert_eq!(display_safe_block("abcdef", 4), "abc…");
        assert_eq!(
            display_safe_block("a\u{1b}[31mb\u{0}", usize::MAX),
            "a[31mb"
        );
        assert_eq!(
            display_safe("one\u{2029}two\u{85}three", 100),
            "one two three"
        );
    }
}

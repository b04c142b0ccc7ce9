//! A small Markdown reader for artifacts (`.md`): headings, emphasis, inline code, lists and
//! fenced code blocks become Pango markup; everything else is text. The text is made safe to
//! show and escaped before any markup is added, so nothing an agent writes becomes markup of
//! its own (links stay text: nothing is opened from an artifact).

use agentos_dbus_interfaces::text::display_safe_block;

/// Longest text converted.
pub const MAX_CHARS: usize = 64 * 1024;

/// Escape text for Pango markup.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Inline markup of one (escaped) line: `**bold**`, `*italic*` / `_italic_`, `` `code` ``.
/// Markers without their closing twin stay as they are.
fn inline(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while !rest.is_empty() {
        let (marker, open, close) = if rest.starts_with("**") {
            ("**", "<b>", "</b>")
        } else if rest.starts_with('`') {
            ("`", "<tt>", "</tt>")
        } else if rest.starts_with('*') {
            ("*", "<i>", "</i>")
        } else if rest.starts_with('_') {
            ("_", "<i>", "</i>")
        } else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
            continue;
        };
        let after = &rest[marker.len()..];
        // As CommonMark has it: emphasis hugs its text (no space inside the markers), and `_`
        // does not open inside a word (snake_case stays as it is).
        let hugs = |inner: &str| {
            marker == "`"
                || (!inner.starts_with(char::is_whitespace)
                    && !inner.ends_with(char::is_whitespace))
        };
        let in_word = marker == "_" && out.chars().last().is_some_and(char::is_alphanumeric);
        match after.find(marker) {
            Some(end) if end > 0 && hugs(&after[..end]) && !in_word => {
                let inner = &after[..end];
                out.push_str(open);
                // No markup inside code; emphasis may hold code.
                if marker == "`" {
                    out.push_str(inner);
                } else {
                    out.push_str(&inline(inner));
                }
                out.push_str(close);
                rest = &after[end + marker.len()..];
            }
            _ => {
                out.push_str(marker);
                rest = after;
            }
        }
    }
    out
}

/// The Pango markup for Markdown `text`.
pub fn to_pango(text: &str) -> String {
    let text = display_safe_block(text, MAX_CHARS);
    let mut out = Vec::new();
    let mut in_code = false;
    for raw in text.lines() {
        if raw.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let line = escape(raw);
        if in_code {
            out.push(format!("<tt>{line}</tt>"));
            continue;
        }
        let trimmed = line.trim_start();
        let hashes = trimmed.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
            let size = if hashes == 1 { "x-large" } else { "large" };
            let title = inline(trimmed[hashes..].trim());
            out.push(format!("<span size=\"{size}\"><b>{title}</b></span>"));
        } else if let Some(item) = trimmed
            .strip_prefix("- ")
            .or_else(|| trimmed.strip_prefix("* "))
        {
            out.push(format!("  • {}", inline(item)));
        } else {
            out.push(inline(&line));
        }
    }
    out.join("\n")
}

/// Whether an artifact's name says it is Markdown.
pub fn is_markdown(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".md") || lower.ends_with(".markdown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_emphasis_code_and_lists() {
        assert_eq!(
            to_pango("# Budget\n\nTotal **42** in `a.ods`, *roughly*\n- one\n* two _x_"),
            "<span size=\"x-large\"><b>Budget</b></span>\n\nTotal <b>42</b> in <tt>a.ods</tt>, \
             <i>roughly</i>\n  • one\n  • two <i>x</i>"
        );
        assert_eq!(to_pango("## Sub"), "<span size=\"large\"><b>Sub</b></span>");
        assert_eq!(to_pango("#hashtag"), "#hashtag");
        assert_eq!(to_pango("```\nlet *a* = 1;\n```"), "<tt>let *a* = 1;</tt>");
        assert_eq!(to_pango("a * b and 2*3"), "a * b and 2*3");
        assert_eq!(to_pango("`**not bold**`"), "<tt>**not bold**</tt>");
        assert_eq!(to_pango("snake_case_name"), "snake_case_name");
    }

    #[test]
    fn nothing_from_the_agent_becomes_markup() {
        assert_eq!(
            to_pango("<span foreground=\"red\">x</span> & <b>"),
            "&lt;span foreground=&quot;red&quot;&gt;x&lt;/span&gt; &amp; &lt;b&gt;"
        );
        assert_eq!(to_pango("**<i>**"), "<b>&lt;i&gt;</b>");
        assert_eq!(to_pango("[link](http://x)\u{202e}"), "[link](http://x)");
        assert!(is_markdown("Notes.MD") && !is_markdown("notes.txt"));
    }
}

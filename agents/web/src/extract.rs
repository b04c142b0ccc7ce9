//! Readable text from HTML: drop scripts, styles and tags, decode common entities, keep the
//! title, collapse whitespace.

/// Elements whose content is not text to read: skipped up to their closing tag.
const SKIPPED: [&str; 4] = ["script", "style", "head", "noscript"];

/// Returns the page title and its text.
pub fn html_to_text(html: &str) -> (String, String) {
    let lower = html.to_ascii_lowercase();
    let title = between(html, &lower, "<title", "</title>")
        .map(|t| {
            decode(t.split_once('>').map(|(_, r)| r).unwrap_or(t))
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let mut out = String::new();
    let mut i = 0;
    let bytes = html.as_bytes();
    // A closing tag not found once is not found further on either: remembered, so a page of
    // many unclosed `<script>` is read once, not once per tag.
    let mut unclosed = [false; SKIPPED.len()];
    while i < bytes.len() {
        if bytes[i] == b'<' {
            let rest = &lower[i..];
            let skip_to = SKIPPED
                .iter()
                .position(|t| rest.starts_with(&format!("<{t}")))
                .filter(|k| !unclosed[*k])
                .and_then(|k| {
                    let t = SKIPPED[k];
                    let found = rest.find(&format!("</{t}>")).map(|e| e + t.len() + 3);
                    unclosed[k] = found.is_none();
                    found
                });
            let end = skip_to
                .or_else(|| rest.find('>').map(|e| e + 1))
                .unwrap_or(rest.len());
            let tag = &rest[..end.min(rest.len())];
            if ["<p", "<br", "<div", "<h1", "<h2", "<h3", "<li", "<tr"]
                .iter()
                .any(|b| tag.starts_with(b))
            {
                out.push('\n');
            }
            i += end;
        } else {
            let next = html[i..].find('<').map(|n| i + n).unwrap_or(html.len());
            out.push_str(&html[i..next]);
            i = next;
        }
    }
    let text = decode(&out)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    (title, text)
}

fn between<'a>(html: &'a str, lower: &str, open: &str, close: &str) -> Option<&'a str> {
    let s = lower.find(open)?;
    let e = lower[s..].find(close)? + s;
    html.get(s + open.len()..e)
}

fn decode(s: &str) -> String {
    s.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_title_and_text() {
        let html = "<html><head><title>Hello &amp; bye</title><style>p{}</style></head>\
                    <body><script>var x='<p>';</script><h1>Big</h1><p>One &lt;two&gt;</p></body></html>";
        let (title, text) = html_to_text(html);
        assert_eq!(title, "Hello & bye");
        assert_eq!(text, "Big\nOne <two>");
    }

    #[test]
    fn many_unclosed_scripts_are_read_in_one_pass() {
        let html = format!("<p>Hi</p>{}", "<script>x<style>".repeat(200_000));
        let started = std::time::Instant::now();
        let (_, text) = html_to_text(&html);
        assert!(text.starts_with("Hi"), "{}", &text[..20.min(text.len())]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        // A closed script is still skipped after an unclosed one.
        let (_, text) = html_to_text("<script>a<script>b</script>c");
        assert_eq!(text, "c");
        let (_, text) = html_to_text("<style>a<p>b");
        assert_eq!(text, "a\nb");
    }
}

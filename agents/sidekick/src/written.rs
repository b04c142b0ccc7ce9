//! Tool calls a model wrote as text instead of making them: small models (and servers whose
//! chat template does not recognise the model's way of calling) answer with the JSON of a call,
//! `{"name": …, "arguments": {…}}`, alone, one per line, or in a fenced block. While tools are
//! offered such a call is made when the reply is nothing but calls (one quoted among words is
//! the model citing something, not calling); in an answer it is no answer and is left out.
//! Near misses of a small model are calls too: a call cut short of its last closing braces, and
//! `<tool> with {…}` or `<tool>({…})` alone, `<tool>` an offered tool's name. A reply that begins
//! as a call but is none of these is [`unreadable`]: no answer either.

use serde_json::Value;

/// Most closing braces or brackets a call cut short may lack and still be read.
const MAX_MISSING_CLOSERS: usize = 3;

/// The call `s` is, if it is one: a JSON object with a string `name` and `arguments` (an
/// object, or a string holding one).
fn parse(s: &str) -> Option<(String, Value)> {
    let v: Value = serde_json::from_str(s.trim()).ok()?;
    let name = v.get("name")?.as_str()?.to_string();
    let arguments = match v.get("arguments")? {
        Value::String(inner) => serde_json::from_str::<Value>(inner).ok()?,
        other => other.clone(),
    };
    arguments.is_object().then_some((name, arguments))
}

/// The call `s` is when the model stopped before its last closing braces or brackets (small
/// models do): at most [`MAX_MISSING_CLOSERS`] are added, and only where the rest is whole
/// (not cut inside a string, no closer out of place).
fn cut_short(s: &str) -> Option<(String, Value)> {
    let s = s.trim();
    if !s.starts_with('{') {
        return None;
    }
    let mut missing = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in s.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => missing.push('}'),
            '[' => missing.push(']'),
            '}' | ']' if missing.last() == Some(&c) => {
                missing.pop();
            }
            '}' | ']' => return None,
            _ => {}
        }
    }
    if in_string || missing.is_empty() || missing.len() > MAX_MISSING_CLOSERS {
        return None;
    }
    let closers: String = missing.iter().rev().collect();
    parse(&format!("{s}{closers}"))
}

/// The call `s` is when it is `<tool> with {arguments}` or `<tool>({arguments})` and nothing
/// else, `<tool>` one of `names` (the tools offered).
fn named(s: &str, names: &[&str]) -> Option<(String, Value)> {
    let s = s.trim();
    names.iter().find_map(|name| {
        let rest = s.strip_prefix(name)?;
        let object = match rest.trim_start().strip_prefix("with") {
            Some(after) if rest.starts_with(char::is_whitespace) => after,
            _ => rest.trim_start().strip_prefix('(')?.strip_suffix(')')?,
        };
        let arguments: Value = serde_json::from_str(object.trim()).ok()?;
        arguments.is_object().then(|| (name.to_string(), arguments))
    })
}

/// The calls `text` is, when it is nothing but calls: one alone (or one cut short, or one
/// written `<tool> with {…}` naming one of `names`), one per line, or each in a fenced block
/// with nothing but space around them. A call quoted among other words (a page the model
/// cites, say) is not one: `text` comes back whole, with no calls.
pub fn split(text: &str, names: &[&str]) -> (String, Vec<(String, Value)>) {
    let alone = parse(text)
        .or_else(|| cut_short(text))
        .or_else(|| named(text, names));
    if let Some(call) = alone {
        return (String::new(), vec![call]);
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let each: Vec<_> = lines.iter().filter_map(|l| parse(l)).collect();
    if !each.is_empty() && each.len() == lines.len() {
        return (String::new(), each);
    }
    let (rest, fenced) = fenced(text);
    if !fenced.is_empty() && rest.is_empty() {
        return (String::new(), fenced);
    }
    (text.to_string(), Vec::new())
}

/// Whether `text` begins as a call, alone or in a fenced block (`{"name"`, or one of `names`
/// and then `{`), yet is no call [`split`] can read: one the model did not finish writing, or
/// wrote wrong. It is no answer. JSON that is whole is not taken for one (it may be an answer
/// that happens to be JSON).
pub fn unreadable(text: &str, names: &[&str]) -> bool {
    let body = unfenced(text.trim());
    begins_as_call(body, names)
        && serde_json::from_str::<Value>(body).is_err()
        && split(text, names).1.is_empty()
}

/// The body of a fenced block `text` begins with, or `text` itself.
fn unfenced(text: &str) -> &str {
    let Some(after) = text.strip_prefix("```") else {
        return text;
    };
    let body = after.find('\n').map_or("", |i| &after[i + 1..]);
    body.find("```").map_or(body, |end| &body[..end]).trim()
}

/// Whether `s` begins the way a call does: `{"name"` (or `{'name'`), or one of `names` followed
/// by `{` (after `with`, `(` or `:`, if any).
fn begins_as_call(s: &str, names: &[&str]) -> bool {
    // An object naming an offered tool, or with arguments: an answer that is a record with a
    // "name" (a person's, say) is no call.
    let json = s.strip_prefix('{').is_some_and(|rest| {
        let rest = rest.trim_start();
        (rest.starts_with("\"name\"") || rest.starts_with("'name'"))
            && (rest.contains("arguments")
                || names.iter().any(|n| {
                    rest.contains(&format!("\"{n}\"")) || rest.contains(&format!("'{n}'"))
                }))
    });
    json || names.iter().any(|name| {
        s.strip_prefix(name).is_some_and(|rest| {
            let rest = rest.trim_start();
            let rest = ["with", "(", ":"]
                .iter()
                .find_map(|word| rest.strip_prefix(word))
                .unwrap_or(rest);
            rest.trim_start().starts_with('{')
        })
    })
}

/// `text` without the calls written in it: an answer that quotes a call has it left out.
/// `names` are the tools a call may be written by name to (see [`split`]).
pub fn without_calls(text: &str, names: &[&str]) -> String {
    match split(text, names) {
        (_, calls) if !calls.is_empty() => String::new(),
        _ => fenced(text).0,
    }
}

/// `text` without its fenced blocks that are calls, and those calls in order.
fn fenced(text: &str) -> (String, Vec<(String, Value)>) {
    let mut calls = Vec::new();
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let body_start = after.find('\n').map_or(after.len(), |i| i + 1);
        let Some(len) = after[body_start..].find("```") else {
            break;
        };
        let body = &after[body_start..body_start + len];
        let end = start + 3 + body_start + len + 3;
        match parse(body) {
            Some(call) => {
                calls.push(call);
                out.push_str(&rest[..start]);
            }
            None => out.push_str(&rest[..end]),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    (out.trim().to_string(), calls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_written_alone_by_line_or_fenced_are_found() {
        let call = "{\"name\": \"delegate_to_docs\", \"arguments\": {\"goal\": \"x?\"}}";
        let found = ("delegate_to_docs".to_string(), json!({"goal": "x?"}));
        assert_eq!(split(call, &[]), (String::new(), vec![found.clone()]));
        assert_eq!(
            split(&format!("{call}\n\n{call}\n"), &[]),
            (String::new(), vec![found.clone(), found.clone()])
        );
        assert_eq!(
            split(&format!("```json\n{call}\n```\n\n```\n{call}\n```"), &[]),
            (String::new(), vec![found.clone(), found.clone()])
        );
        let as_string = r#"{"name": "web_fetch", "arguments": "{\"url\": \"https://a.org/\"}"}"#;
        assert_eq!(
            split(as_string, &[]).1,
            [("web_fetch".to_string(), json!({"url": "https://a.org/"}))]
        );
    }

    #[test]
    fn other_text_and_code_stay() {
        let code = "Run:\n```json\n{\"a\": 1}\n```\ndone";
        assert_eq!(split(code, &[]), (code.to_string(), Vec::new()));
        assert_eq!(
            split("``` unclosed", &[]),
            ("``` unclosed".to_string(), Vec::new())
        );
        assert_eq!(split("plain words", &[]).1, Vec::new());
        let no_args = "{\"name\": \"x\"}";
        assert_eq!(split(no_args, &[]), (no_args.to_string(), Vec::new()));
        let mixed = "{\"name\": \"x\", \"arguments\": {}}\nand words";
        assert_eq!(
            split(mixed, &[]).1,
            Vec::new(),
            "a call among words is not one"
        );
    }

    #[test]
    fn a_call_quoted_in_prose_is_not_made_but_is_left_out_of_an_answer() {
        let call = "{\"name\": \"delegate_to_docs\", \"arguments\": {\"goal\": \"x?\"}}";
        let quoted = format!("The page says to run:\n```json\n{call}\n```\nI did not.");
        assert_eq!(split(&quoted, &[]), (quoted.clone(), Vec::new()));
        assert_eq!(
            without_calls(&quoted, &[]),
            "The page says to run:\n\nI did not."
        );
        assert_eq!(without_calls(call, &[]), "");
        assert_eq!(without_calls("plain", &[]), "plain");
    }

    const OFFERED: &[&str] = &["delegate_to_docs", "delegate_to_docs_2", "web_fetch"];

    #[test]
    fn a_call_cut_short_of_its_last_braces_is_found() {
        let cut = r#"{"name": "delegate_to_docs", "arguments": {"goal": "When were the tomato seedlings planted?"}"#;
        assert_eq!(
            split(cut, OFFERED),
            (
                String::new(),
                vec![(
                    "delegate_to_docs".to_string(),
                    json!({"goal": "When were the tomato seedlings planted?"})
                )]
            )
        );
        let both = r#"{"name": "web_fetch", "arguments": {"url": "https://a.org/", "q": ["a", "{"#;
        assert_eq!(split(both, OFFERED).1, Vec::new(), "cut inside a string");
        let lists = r#" {"name": "web_fetch", "arguments": {"urls": ["https://a.org/"#;
        assert_eq!(split(lists, OFFERED).1, Vec::new(), "cut inside a string");
        let lists = r#" {"name": "web_fetch", "arguments": {"urls": ["https://a.org/"]"#;
        assert_eq!(
            split(lists, OFFERED).1,
            [("web_fetch".to_string(), json!({"urls": ["https://a.org/"]}))]
        );
        let escaped = r#"{"name": "x", "arguments": {"goal": "a \"}\" b"}"#;
        assert_eq!(
            split(escaped, &[]).1,
            [("x".to_string(), json!({"goal": "a \"}\" b"}))]
        );
    }

    #[test]
    fn json_cut_elsewhere_or_by_more_than_a_few_braces_is_not_mended() {
        for text in [
            r#"{"name": "x", "arguments": {"goal": "y"},"#,
            r#"{"name": "x", "arguments": {"goal": "#,
            r#"{"name": "x", "arguments": {"goal": "y"]"#,
            r#"{"name": "x"}"#,
            r#"{"name": "x", "arguments": {"a": {"b": {"c": {}"#,
            r#"{"name": "x", "arguments": "{\"goal\": \"y\""#,
            "{",
            "{\"name\": \"x\", \"arguments\": {}\nand words",
        ] {
            assert_eq!(split(text, OFFERED).1, Vec::new(), "{text}");
        }
    }

    #[test]
    fn an_offered_tool_named_with_its_arguments_alone_is_a_call() {
        let goal = json!({"goal": "Where is the blue watering can kept? Check my documents."});
        let found = vec![("delegate_to_docs".to_string(), goal.clone())];
        for text in [
            r#"delegate_to_docs with {"goal": "Where is the blue watering can kept? Check my documents."}"#,
            "delegate_to_docs({\"goal\": \"Where is the blue watering can kept? Check my documents.\"})\n",
            "  delegate_to_docs with\n{\"goal\": \"Where is the blue watering can kept? Check my documents.\"}",
        ] {
            assert_eq!(split(text, OFFERED), (String::new(), found.clone()), "{text}");
        }
        assert_eq!(
            split(r#"delegate_to_docs_2 with {"goal": "x"}"#, OFFERED).1,
            [("delegate_to_docs_2".to_string(), json!({"goal": "x"}))],
            "the whole name, not a shorter one it begins with"
        );
        for text in [
            r#"delegate_to_mars with {"goal": "x"}"#,
            r#"delegate_to_docswith {"goal": "x"}"#,
            r#"delegate_to_docs with {"goal": "x"} and then I answer."#,
            r#"delegate_to_docs({"goal": "x"}"#,
            r#"delegate_to_docs with ["x"]"#,
        ] {
            assert_eq!(split(text, OFFERED).1, Vec::new(), "{text}");
        }
        let call = r#"delegate_to_docs with {"goal": "x"}"#;
        assert_eq!(split(call, &[]).1, Vec::new(), "no tool is offered");
    }

    #[test]
    fn prose_quoting_a_near_miss_is_not_a_call() {
        for text in [
            r#"I would call delegate_to_docs with {"goal": "x"} but I know: Tuesday."#,
            "The answer is Tuesday.\ndelegate_to_docs with {\"goal\": \"x\"}",
            "The page says:\n{\"name\": \"delegate_to_docs\", \"arguments\": {\"goal\": \"x\"}",
        ] {
            assert_eq!(
                split(text, OFFERED),
                (text.to_string(), Vec::new()),
                "{text}"
            );
            assert!(!unreadable(text, OFFERED), "{text}");
        }
    }

    #[test]
    fn a_reply_beginning_as_a_call_that_cannot_be_read_is_unreadable() {
        for text in [
            r#"{"name": "delegate_to_docs", "arguments": {"goal": "x"},"#,
            r#"{ "name": "delegate_to_docs", "arguments": {"goal": "#,
            "{'name': 'delegate_to_docs', 'arguments': {'goal': 'x'}}",
            "```json\n{\"name\": \"delegate_to_docs\", \"arguments\": {\"goal\": \"x\"}\n```",
            r#"delegate_to_docs with {"goal": "x"} and then I answer."#,
            r#"delegate_to_docs({"goal": "x"}"#,
            r#"web_fetch: {"url": "#,
        ] {
            assert!(unreadable(text, OFFERED), "{text}");
        }
        for text in [
            r#"{"name": "delegate_to_docs", "arguments": {"goal": "x"}"#,
            r#"delegate_to_docs with {"goal": "x"}"#,
            r#"{"name": "delegate_to_mars", "arguments": {"goal": "x"}}"#,
            r#"{"name": "Ada", "age": 36}"#,
            "```json\n{\"name\": \"Ada\"}\n```",
            // A record with a name, followed by words or cut short, is an answer, not a call.
            "{\"name\": \"Ada\", \"age\": 36}\nThat is her record.",
            r#"{"name": "Ada", "born": 18"#,
            "{'name': 'Ada', 'age': 36}",
            "delegate_to_docs can find your documents.",
            "Tuesday.",
            "",
        ] {
            assert!(!unreadable(text, OFFERED), "{text}");
        }
        assert!(
            !unreadable(r#"delegate_to_docs with {"goal": "#, &[]),
            "a name counts only when it is an offered tool's"
        );
    }

    #[test]
    fn near_misses_are_left_out_of_an_answer() {
        let cut = r#"{"name": "delegate_to_docs", "arguments": {"goal": "x"}"#;
        assert_eq!(without_calls(cut, &[]), "");
        let named = r#"delegate_to_docs with {"goal": "x"}"#;
        assert_eq!(without_calls(named, OFFERED), "");
        assert_eq!(without_calls(named, &[]), named);
    }
}

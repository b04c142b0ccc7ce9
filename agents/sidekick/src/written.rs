//! Tool calls a model wrote as text instead of making them: small models (and servers whose
//! chat template does not recognise the model's way of calling) answer with the JSON of a call,
//! `{"name": …, "arguments": {…}}`, alone, one per line, or in a fenced block. While tools are
//! offered such a call is made when the reply is nothing but calls (one quoted among words is
//! the model citing something, not calling); in an answer it is no answer and is left out.

use serde_json::Value;

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

/// The calls `text` is, when it is nothing but calls: one alone, one per line, or each in a
/// fenced block with nothing but space around them. A call quoted among other words (a page
/// the model cites, say) is not one: `text` comes back whole, with no calls.
pub fn split(text: &str) -> (String, Vec<(String, Value)>) {
    if let Some(call) = parse(text) {
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

/// `text` without the calls written in it: an answer that quotes a call has it left out.
pub fn without_calls(text: &str) -> String {
    match split(text) {
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
        assert_eq!(split(call), (String::new(), vec![found.clone()]));
        assert_eq!(
            split(&format!("{call}\n\n{call}\n")),
            (String::new(), vec![found.clone(), found.clone()])
        );
        assert_eq!(
            split(&format!("```json\n{call}\n```\n\n```\n{call}\n```")),
            (String::new(), vec![found.clone(), found.clone()])
        );
        let as_string = r#"{"name": "web_fetch", "arguments": "{\"url\": \"https://a.org/\"}"}"#;
        assert_eq!(
            split(as_string).1,
            [("web_fetch".to_string(), json!({"url": "https://a.org/"}))]
        );
    }

    #[test]
    fn other_text_and_code_stay() {
        let code = "Run:\n```json\n{\"a\": 1}\n```\ndone";
        assert_eq!(split(code), (code.to_string(), Vec::new()));
        assert_eq!(
            split("``` unclosed"),
            ("``` unclosed".to_string(), Vec::new())
        );
        assert_eq!(split("plain words").1, Vec::new());
        let no_args = "{\"name\": \"x\"}";
        assert_eq!(split(no_args), (no_args.to_string(), Vec::new()));
        let mixed = "{\"name\": \"x\", \"arguments\": {}}\nand words";
        assert_eq!(split(mixed).1, Vec::new(), "a call among words is not one");
    }

    #[test]
    fn a_call_quoted_in_prose_is_not_made_but_is_left_out_of_an_answer() {
        let call = "{\"name\": \"delegate_to_docs\", \"arguments\": {\"goal\": \"x?\"}}";
        let quoted = format!("The page says to run:\n```json\n{call}\n```\nI did not.");
        assert_eq!(split(&quoted), (quoted.clone(), Vec::new()));
        assert_eq!(
            without_calls(&quoted),
            "The page says to run:\n\nI did not."
        );
        assert_eq!(without_calls(call), "");
        assert_eq!(without_calls("plain"), "plain");
    }
}

//! Tool parameters cut to the JSON-Schema subset Gemini's `functionDeclarations` accept (its
//! OpenAPI-style `Schema`): unknown keywords such as `additionalProperties`, `$schema`, `$ref`
//! are dropped, `type: [T, "null"]` becomes `type: T` with `nullable`, `const` becomes a
//! one-value `enum`.

use serde_json::{Map, Value};

/// Keywords Gemini's `Schema` knows, whose values are kept as they are.
const PLAIN: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "propertyOrdering",
    "default",
    "minimum",
    "maximum",
];

/// `schema` as Gemini accepts it.
pub(crate) fn for_gemini(schema: &Value) -> Value {
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "type" => match v {
                Value::Array(types) => {
                    let mut non_null = types.iter().filter(|t| t.as_str() != Some("null"));
                    if let Some(t) = non_null.next() {
                        out.insert("type".into(), t.clone());
                    }
                    if types.iter().any(|t| t.as_str() == Some("null")) {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "properties" => {
                if let Value::Object(props) = v {
                    let props = props
                        .iter()
                        .map(|(name, s)| (name.clone(), for_gemini(s)))
                        .collect();
                    out.insert("properties".into(), Value::Object(props));
                }
            }
            "items" => {
                out.insert("items".into(), for_gemini(v));
            }
            "anyOf" => {
                if let Value::Array(all) = v {
                    out.insert(
                        "anyOf".into(),
                        Value::Array(all.iter().map(for_gemini).collect()),
                    );
                }
            }
            "const" => {
                out.insert("enum".into(), Value::Array(vec![v.clone()]));
            }
            k if PLAIN.contains(&k) => {
                out.insert(k.to_owned(), v.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_gemini_rejects_is_dropped_and_the_rest_kept() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "path": {"type": "string", "description": "a file", "$comment": "x"},
                "depth": {"type": ["integer", "null"], "minimum": 0},
                "mode": {"const": "fast"},
                "tags": {"type": "array", "items": {"type": "string", "additionalProperties": false}}
            },
            "required": ["path"]
        });
        assert_eq!(
            for_gemini(&schema),
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "a file"},
                    "depth": {"type": "integer", "nullable": true, "minimum": 0},
                    "mode": {"enum": ["fast"]},
                    "tags": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["path"]
            })
        );
    }
}

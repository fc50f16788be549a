//! Checks tool arguments against the tool's JSON Schema before the call, so a model that sends the
//! wrong shape gets told exactly what is wrong and where, instead of a deserialisation error from
//! deep inside the tool.
//!
//! The keywords checked are the ones tool schemas use (and `schemars` emits): `type` (also as a
//! list), `properties`, `required`, `additionalProperties: false`, `enum`, `const`, `items`,
//! `minimum`/`maximum`, `minLength`/`maxLength`, `minItems`/`maxItems`, `anyOf` (some variant
//! matches) and `oneOf` (exactly one does). Unknown keywords are ignored, as JSON Schema itself does.

use serde_json::Value;

/// `name` as chat APIs take a function or schema name: characters other than letters, digits, `_`
/// and `-` replaced by `_`, cut to 64.
///
/// ```
/// assert_eq!(sextant_tools::wire_name("files.read/v2"), "files_read_v2");
/// ```
pub fn wire_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// What is wrong with the arguments, and where (a JSON pointer, `""` for the whole value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", if path.is_empty() { "the arguments" } else { path.as_str() })]
pub struct SchemaViolation {
    /// JSON pointer to the offending value, e.g. `/expression`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// Checks `value` against `schema`; the first violation found is the error.
///
/// ```
/// use serde_json::json;
/// let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
/// assert!(sextant_tools::validate_arguments(&schema, &json!({"n": 3})).is_ok());
/// let error = sextant_tools::validate_arguments(&schema, &json!({"n": "3"})).unwrap_err();
/// assert_eq!(error.to_string(), "/n: expected an integer, got the string \"3\"");
/// ```
pub fn validate_arguments(schema: &Value, value: &Value) -> Result<(), SchemaViolation> {
    check(schema, value, "")
}

fn violation(path: &str, message: String) -> SchemaViolation {
    SchemaViolation {
        path: path.to_owned(),
        message,
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            format!("a string of {} characters", s.chars().count())
        }
        Value::String(s) => format!("the string {}", Value::String(s.clone())),
        Value::Array(items) => format!("an array of {} items", items.len()),
        Value::Object(_) => "an object".into(),
    }
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.as_f64().is_some_and(|n| n.fract() == 0.0),
        _ => true,
    }
}

fn article(name: &str) -> &'static str {
    if matches!(name, "object" | "array" | "integer") {
        "an"
    } else {
        "a"
    }
}

/// The `[min, max]` keywords that bound a count (a string's characters, an array's items).
fn check_count(
    schema: &serde_json::Map<String, Value>,
    path: &str,
    count: u64,
    [min_key, max_key]: [&str; 2],
    unit: &str,
) -> Result<(), SchemaViolation> {
    if let Some(min) = schema.get(min_key).and_then(Value::as_u64)
        && count < min
    {
        return Err(violation(
            path,
            format!("must have at least {min} {unit}, got {count}"),
        ));
    }
    if let Some(max) = schema.get(max_key).and_then(Value::as_u64)
        && count > max
    {
        return Err(violation(
            path,
            format!("must have at most {max} {unit}, got {count}"),
        ));
    }
    Ok(())
}

fn check(schema: &Value, value: &Value, path: &str) -> Result<(), SchemaViolation> {
    let Some(schema) = schema.as_object() else {
        return Ok(());
    };
    if let Some(expected) = schema.get("type") {
        let names: Vec<&str> = match expected {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|name| has_type(value, name)) {
            let wanted: Vec<String> = names
                .iter()
                .map(|n| format!("{} {n}", article(n)))
                .collect();
            return Err(violation(
                path,
                format!("expected {}, got {}", wanted.join(" or "), describe(value)),
            ));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return Err(violation(
            path,
            format!(
                "must be one of {}, got {}",
                list.join(", "),
                describe(value)
            ),
        ));
    }
    for (keyword, exactly_one) in [("anyOf", false), ("oneOf", true)] {
        let Some(variants) = schema.get(keyword).and_then(Value::as_array) else {
            continue;
        };
        let mut first_error = None;
        let mut matched = 0;
        for variant in variants {
            match check(variant, value, path) {
                Ok(()) => matched += 1,
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if matched == 0 {
            let reason =
                first_error.map_or_else(String::new, |e| format!(" (first: {})", e.message));
            return Err(violation(
                path,
                format!(
                    "matches none of the {} allowed shapes{reason}",
                    variants.len()
                ),
            ));
        }
        if exactly_one && matched > 1 {
            return Err(violation(
                path,
                format!("matches {matched} of the `oneOf` shapes; exactly one must match"),
            ));
        }
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        return Err(violation(
            path,
            format!("must be {constant}, got {}", describe(value)),
        ));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(violation(path, format!("must be at least {min}, got {n}")));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(violation(path, format!("must be at most {max}, got {n}")));
        }
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        check_count(
            schema,
            path,
            length,
            ["minLength", "maxLength"],
            "characters",
        )?;
    }
    if let Some(items) = value.as_array() {
        check_count(
            schema,
            path,
            items.len() as u64,
            ["minItems", "maxItems"],
            "items",
        )?;
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                check(item_schema, item, &format!("{path}/{index}"))?;
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    return Err(violation(
                        path,
                        format!("the required property `{name}` is missing"),
                    ));
                }
            }
        }
        for (name, item) in object {
            let child = format!("{path}/{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(property_schema) => check(property_schema, item, &child)?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    let known: Vec<&str> = properties
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    return Err(violation(
                        &child,
                        format!(
                            "is not a known property; the properties are: {}",
                            known.join(", ")
                        ),
                    ));
                }
                None => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1},
                "days": {"type": "integer", "minimum": 1, "maximum": 14},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                "note": {"type": ["string", "null"]}
            },
            "required": ["city"],
            "additionalProperties": false
        })
    }

    fn error(value: Value) -> String {
        validate_arguments(&schema(), &value)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn any_of_needs_one_variant_and_one_of_exactly_one() {
        let nullable = json!({"anyOf": [{"type": "object", "properties": {"n": {"type": "integer"}},
                                         "required": ["n"]}, {"type": "null"}]});
        assert_eq!(validate_arguments(&nullable, &json!(null)), Ok(()));
        assert_eq!(validate_arguments(&nullable, &json!({"n": 1})), Ok(()));
        let error = validate_arguments(&nullable, &json!({"n": "x"})).unwrap_err();
        assert_eq!(
            error.message,
            "matches none of the 2 allowed shapes (first: expected an integer, got the string \"x\")"
        );
        let one_of = json!({"oneOf": [{"type": "integer"}, {"type": "number"}]});
        assert_eq!(validate_arguments(&one_of, &json!(1.5)), Ok(()));
        assert!(validate_arguments(&one_of, &json!(2)).is_err(), "2 is both");
    }

    #[test]
    fn valid_arguments_pass() {
        let ok =
            json!({"city": "Paris", "days": 3, "unit": "celsius", "tags": ["a"], "note": null});
        assert_eq!(validate_arguments(&schema(), &ok), Ok(()));
    }

    #[test]
    fn each_violation_names_the_place_and_the_problem() {
        assert_eq!(
            error(json!({})),
            "the arguments: the required property `city` is missing"
        );
        assert_eq!(
            error(json!("Paris")),
            "the arguments: expected an object, got the string \"Paris\""
        );
        assert_eq!(
            error(json!({"city": 7})),
            "/city: expected a string, got the number 7"
        );
        assert_eq!(
            error(json!({"city": ""})),
            "/city: must have at least 1 characters, got 0"
        );
        assert_eq!(
            error(json!({"city": "P", "days": 2.5})),
            "/days: expected an integer, got the number 2.5"
        );
        assert_eq!(
            error(json!({"city": "P", "days": 30})),
            "/days: must be at most 14, got 30"
        );
        assert!(
            error(json!({"city": "P", "unit": "kelvin"}))
                .starts_with("/unit: must be one of \"celsius\", \"fahrenheit\"")
        );
        assert_eq!(
            error(json!({"city": "P", "tags": ["a", 1]})),
            "/tags/1: expected a string, got the number 1"
        );
        assert_eq!(
            error(json!({"city": "P", "tags": ["a", "b", "c"]})),
            "/tags: must have at most 2 items, got 3"
        );
        assert_eq!(
            error(json!({"city": "P", "note": 1})),
            "/note: expected a string or a null, got the number 1"
        );
        assert!(
            error(json!({"city": "P", "country": "FR"}))
                .starts_with("/country: is not a known property; the properties are: city")
        );
    }

    #[test]
    fn open_schemas_accept_extra_properties_and_unknown_keywords() {
        let open =
            json!({"type": "object", "properties": {"a": {"type": "string", "format": "uri"}}});
        assert_eq!(
            validate_arguments(&open, &json!({"a": "x", "b": 1})),
            Ok(())
        );
    }
}

//! Typed answers: the JSON Schema an agent's final answer must follow (`[output] schema`, a registry
//! prompt's `response_format`, or a Rust type through [`OutputSchema::of`]).
//!
//! Each provider is asked for it in its own way (OpenAI `response_format: json_schema` strict,
//! Ollama `format`, schema-constrained decoding on the local model), and every answer is checked
//! against it before it is returned ([`OutputSchema::parse`]).
//!
//! A schema uses the part of JSON Schema every provider can honour and the local model can decode:
//! `type`, `properties`, `required`, `additionalProperties`, `items`, `enum`, `const`, `anyOf` /
//! `oneOf`, `minimum` / `maximum`, `minLength` / `maxLength`, `minItems` / `maxItems`, plus the
//! annotations (`title`, `description`, `default`, `examples`, `format`, `$schema`, `$id`,
//! `$comment`). Anything else (`$ref`, `pattern`, `allOf`, …) is refused when the schema is loaded,
//! naming the keyword and where it is, rather than being ignored by one provider and enforced by
//! another.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Keywords that constrain a value, all enforced by validation and by constrained decoding.
const CONSTRAINTS: [&str; 15] = [
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
];
/// Keywords that only describe.
const ANNOTATIONS: [&str; 8] = [
    "title",
    "description",
    "default",
    "examples",
    "format",
    "$schema",
    "$id",
    "$comment",
];

/// The schema of an agent's answer, with the name providers label it by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSchema {
    /// The name (OpenAI's `json_schema.name`): letters, digits, `_` and `-`, at most 64.
    pub name: String,
    /// The JSON Schema; its root is an object.
    pub schema: Value,
}

/// Why a schema cannot be an output schema, or where an answer breaks it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OutputSchemaError {
    /// The schema file cannot be read or is not JSON.
    #[error("the output schema {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The schema uses what not every provider can honour, or is not an object schema.
    #[error("the output schema `{name}` at `{pointer}`: {message}")]
    Unsupported {
        /// The schema's name.
        name: String,
        /// A JSON pointer into the schema (`""` for its root).
        pointer: String,
        /// What is wrong there.
        message: String,
    },
}

/// An answer that does not follow the schema: not JSON, or JSON of the wrong shape.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct OutputViolation {
    /// What is wrong, and where (a JSON pointer into the answer).
    pub message: String,
}

impl OutputSchema {
    /// `schema` named `name`, checked to be an object schema in the supported subset.
    ///
    /// ```
    /// use sextant_agent::OutputSchema;
    /// let schema = serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}},
    ///                                 "required": ["city"]});
    /// let output = OutputSchema::new("place", schema).unwrap();
    /// assert_eq!(output.parse(r#"{"city": "Paris"}"#).unwrap()["city"], "Paris");
    /// let error = output.parse(r#"{"town": "Paris"}"#).unwrap_err();
    /// assert_eq!(error.to_string(), "the answer: the required property `city` is missing");
    /// ```
    pub fn new(name: impl Into<String>, schema: Value) -> Result<Self, OutputSchemaError> {
        let name = name.into();
        let unsupported = |pointer: &str, message: String| OutputSchemaError::Unsupported {
            name: name.clone(),
            pointer: pointer.to_owned(),
            message,
        };
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(unsupported(
                "",
                "the name must be 1 to 64 letters, digits, `_` or `-`".into(),
            ));
        }
        let is_object = schema.get("type") == Some(&Value::String("object".into()))
            || (schema.get("type").is_none() && schema.get("properties").is_some());
        if !is_object {
            return Err(unsupported(
                "",
                "the root must be an object schema (`\"type\": \"object\"` with `properties`), as \
                 OpenAI's structured outputs require"
                    .into(),
            ));
        }
        check_keywords(&schema, "").map_err(|(pointer, message)| unsupported(&pointer, message))?;
        Ok(Self { name, schema })
    }

    /// The schema in the JSON file at `path`, named after the file's stem.
    pub fn from_file(path: &Path) -> Result<Self, OutputSchemaError> {
        let file_error = |message: String| OutputSchemaError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        let schema: Value =
            serde_json::from_str(&text).map_err(|e| file_error(format!("not JSON: {e}")))?;
        let name = schema
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "answer".into());
        Self::new(sanitize_name(&name), schema)
    }

    /// The schema of a registry prompt's `response_format`: OpenAI's
    /// `{"type": "json_schema", "json_schema": {"name", "schema"}}`, or a JSON Schema itself.
    /// `None` for `{"type": "text"}` and `{"type": "json_object"}`, which name no schema.
    pub fn from_response_format(format: &Value) -> Result<Option<Self>, OutputSchemaError> {
        match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => {
                let inner = &format["json_schema"];
                let name = inner["name"].as_str().unwrap_or("answer");
                Self::new(sanitize_name(name), inner["schema"].clone()).map(Some)
            }
            Some("text" | "json_object") => Ok(None),
            _ => Self::new("answer", format.clone()).map(Some),
        }
    }

    /// The schema of `T`, with nested types written out in place (no `$ref`).
    ///
    /// ```
    /// #[derive(schemars::JsonSchema, serde::Deserialize)]
    /// struct Invoice { number: String, lines: Vec<Line> }
    /// #[derive(schemars::JsonSchema, serde::Deserialize)]
    /// struct Line { item: String, quantity: u32 }
    ///
    /// let schema = sextant_agent::OutputSchema::of::<Invoice>();
    /// assert_eq!(schema.name, "Invoice");
    /// assert_eq!(schema.schema["properties"]["lines"]["items"]["properties"]["quantity"]["type"], "integer");
    /// ```
    pub fn of<T: JsonSchema>() -> Self {
        let schema = schemars::generate::SchemaSettings::draft2020_12()
            .with(|settings| settings.inline_subschemas = true)
            .into_generator()
            .into_root_schema_for::<T>();
        let mut schema = schema.to_value();
        if let Some(object) = schema.as_object_mut() {
            // A recursive type keeps its definitions; the rest need none.
            if object
                .get("$defs")
                .is_none_or(|defs| defs.as_object().is_none_or(|d| d.is_empty()))
            {
                object.remove("$defs");
            }
        }
        Self {
            name: sanitize_name(&T::schema_name()),
            schema,
        }
    }

    /// Whether the schema is small enough to take from an untrusted request: at most 32 KiB
    /// written out, 200 subschemas, 64 properties per object and 100 values per `enum`. Decoding
    /// on the local model weighs every option against the vocabulary at each token, so a huge
    /// enum would hold the model for everyone.
    pub fn check_request_limits(&self) -> Result<(), String> {
        const MAX_BYTES: usize = 32 * 1024;
        const MAX_NODES: usize = 200;
        const MAX_PROPERTIES: usize = 64;
        const MAX_ENUM: usize = 100;
        let bytes = self.schema.to_string().len();
        if bytes > MAX_BYTES {
            return Err(format!(
                "the schema is {bytes} bytes; at most {MAX_BYTES} are taken"
            ));
        }
        let mut nodes = 0;
        let mut stack = vec![&self.schema];
        while let Some(schema) = stack.pop() {
            let Some(object) = schema.as_object() else {
                continue;
            };
            nodes += 1;
            if nodes > MAX_NODES {
                return Err(format!("the schema has more than {MAX_NODES} subschemas"));
            }
            if let Some(properties) = object.get("properties").and_then(Value::as_object) {
                if properties.len() > MAX_PROPERTIES {
                    return Err(format!(
                        "an object has {} properties; at most {MAX_PROPERTIES} are taken",
                        properties.len()
                    ));
                }
                stack.extend(properties.values());
            }
            if let Some(values) = object.get("enum").and_then(Value::as_array)
                && values.len() > MAX_ENUM
            {
                return Err(format!(
                    "an `enum` has {} values; at most {MAX_ENUM} are taken",
                    values.len()
                ));
            }
            if let Some(items) = object.get("items") {
                stack.push(items);
            }
            for keyword in ["anyOf", "oneOf"] {
                if let Some(variants) = object.get(keyword).and_then(Value::as_array) {
                    stack.extend(variants);
                }
            }
        }
        Ok(())
    }

    /// Whether OpenAI's strict mode can take the schema: every object lists all its properties
    /// in `required` and sets `additionalProperties: false`.
    pub fn is_strict(&self) -> bool {
        fn strict(schema: &Value) -> bool {
            let Some(object) = schema.as_object() else {
                return true;
            };
            if let Some(properties) = object.get("properties").and_then(Value::as_object) {
                let required: Vec<&str> = object
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                if object.get("additionalProperties") != Some(&Value::Bool(false))
                    || properties
                        .keys()
                        .any(|name| !required.contains(&name.as_str()))
                    || !properties.values().all(strict)
                {
                    return false;
                }
            }
            object.get("items").is_none_or(strict)
                && ["anyOf", "oneOf"].iter().all(|keyword| {
                    object
                        .get(*keyword)
                        .and_then(Value::as_array)
                        .is_none_or(|variants| variants.iter().all(strict))
                })
        }
        strict(&self.schema)
    }

    /// The value `answer` holds, checked against the schema. A fenced block (```` ```json ````)
    /// around the JSON is allowed, as models write one.
    pub fn parse(&self, answer: &str) -> Result<Value, OutputViolation> {
        let text = unfenced(answer);
        let value: Value = serde_json::from_str(text).map_err(|e| OutputViolation {
            message: format!("the answer is not JSON ({e})"),
        })?;
        sextant_tools::validate_arguments(&self.schema, &value).map_err(|violation| {
            let place = if violation.path.is_empty() {
                "the answer".to_owned()
            } else {
                format!("the answer's {}", violation.path)
            };
            OutputViolation {
                message: format!("{place}: {}", violation.message),
            }
        })?;
        Ok(value)
    }
}

/// `name` as OpenAI takes a schema name, `answer` if nothing is left of it.
pub(crate) fn sanitize_name(name: &str) -> String {
    let cleaned = sextant_tools::wire_name(name);
    if cleaned.is_empty() {
        "answer".into()
    } else {
        cleaned
    }
}

/// The JSON inside a Markdown code fence, or the trimmed text.
fn unfenced(answer: &str) -> &str {
    let trimmed = answer.trim();
    let Some(rest) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

/// The first keyword outside the supported subset: (pointer, message).
fn check_keywords(schema: &Value, pointer: &str) -> Result<(), (String, String)> {
    let Some(object) = schema.as_object() else {
        return match schema {
            Value::Bool(true) => Ok(()),
            _ => Err((pointer.to_owned(), "a schema must be an object".into())),
        };
    };
    for (keyword, value) in object {
        let here = format!(
            "{pointer}/{}",
            keyword.replace('~', "~0").replace('/', "~1")
        );
        if ANNOTATIONS.contains(&keyword.as_str()) {
            continue;
        }
        if !CONSTRAINTS.contains(&keyword.as_str()) {
            return Err((
                here,
                format!(
                    "`{keyword}` is not supported in an output schema; use {}",
                    CONSTRAINTS.join(", ")
                ),
            ));
        }
        match keyword.as_str() {
            "properties" => {
                for (name, property) in value.as_object().into_iter().flatten() {
                    check_keywords(property, &format!("{here}/{name}"))?;
                }
            }
            "items" => check_keywords(value, &here)?,
            "anyOf" | "oneOf" => {
                for (index, variant) in value.as_array().into_iter().flatten().enumerate() {
                    check_keywords(variant, &format!("{here}/{index}"))?;
                }
            }
            "additionalProperties" if !value.is_boolean() => {
                return Err((
                    here,
                    "only `true` or `false` (a schema for extra properties is not supported)"
                        .into(),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invoice() -> Value {
        json!({
            "type": "object",
            "properties": {
                "customer": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "tier": {"type": "string", "enum": ["free", "pro"]}
                }, "required": ["name", "tier"], "additionalProperties": false},
                "lines": {"type": "array", "items": {"type": "object", "properties": {
                    "item": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}
                }, "required": ["item", "quantity"]}, "minItems": 1}
            },
            "required": ["customer", "lines"],
            "additionalProperties": false
        })
    }

    #[test]
    fn answers_are_checked_and_errors_say_where() {
        let schema = OutputSchema::new("invoice", invoice()).unwrap();
        let good = r#"{"customer": {"name": "Ada", "tier": "pro"}, "lines": [{"item": "tea", "quantity": 2}]}"#;
        assert_eq!(schema.parse(good).unwrap()["lines"][0]["quantity"], 2);
        // Fenced, as models write it.
        assert!(schema.parse(&format!("```json\n{good}\n```")).is_ok());
        let cases = [
            ("Sure! Here it is.", "the answer is not JSON"),
            (
                r#"{"customer": {"name": "Ada", "tier": "gold"}, "lines": [{"item": "tea", "quantity": 2}]}"#,
                "the answer's /customer/tier: must be one of \"free\", \"pro\", got the string \"gold\"",
            ),
            (
                r#"{"customer": {"name": "Ada", "tier": "pro"}, "lines": []}"#,
                "the answer's /lines: must have at least 1 items, got 0",
            ),
            (
                r#"{"customer": {"name": "Ada", "tier": "pro"}, "lines": [{"item": "tea", "quantity": 0}]}"#,
                "the answer's /lines/0/quantity: must be at least 1, got 0",
            ),
        ];
        for (answer, expected) in cases {
            let error = schema.parse(answer).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{answer}: {error}");
        }
    }

    #[test]
    fn strictness_is_what_openai_accepts() {
        let schema = OutputSchema::new("invoice", invoice()).unwrap();
        assert!(
            !schema.is_strict(),
            "the lines' objects allow more properties"
        );
        let mut strict = invoice();
        strict["properties"]["lines"]["items"]["additionalProperties"] = json!(false);
        assert!(
            OutputSchema::new("invoice", strict.clone())
                .unwrap()
                .is_strict()
        );
        strict["required"] = json!(["customer"]);
        assert!(!OutputSchema::new("invoice", strict).unwrap().is_strict());
    }

    #[test]
    fn schemas_outside_the_subset_are_refused_where_they_break_it() {
        let mut with_pattern = invoice();
        with_pattern["properties"]["customer"]["properties"]["name"]["pattern"] = json!("^[A-Z]");
        let error = OutputSchema::new("invoice", with_pattern).unwrap_err();
        let OutputSchemaError::Unsupported {
            pointer, message, ..
        } = &error
        else {
            panic!("{error}");
        };
        assert_eq!(pointer, "/properties/customer/properties/name/pattern");
        assert!(
            message.starts_with("`pattern` is not supported"),
            "{message}"
        );

        let error = OutputSchema::new("x", json!({"type": "array", "items": {}})).unwrap_err();
        assert!(
            error.to_string().contains("the root must be an object"),
            "{error}"
        );
        let error = OutputSchema::new("has space", invoice()).unwrap_err();
        assert!(error.to_string().contains("the name must be"), "{error}");
        let with_ref = json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}});
        assert!(OutputSchema::new("x", with_ref).is_err());
    }

    #[test]
    fn response_formats_name_a_schema_or_none() {
        let openai = json!({"type": "json_schema", "json_schema": {"name": "invoice v2", "schema": invoice()}});
        let schema = OutputSchema::from_response_format(&openai)
            .unwrap()
            .unwrap();
        assert_eq!(schema.name, "invoice_v2");
        assert_eq!(
            OutputSchema::from_response_format(&json!({"type": "json_object"})),
            Ok(None)
        );
        let bare = OutputSchema::from_response_format(&invoice())
            .unwrap()
            .unwrap();
        assert_eq!(bare.schema, invoice());
    }

    #[test]
    fn rust_types_give_inlined_schemas_that_check_their_own_values() {
        #[derive(JsonSchema, Serialize)]
        #[allow(dead_code)]
        enum Priority {
            Low,
            High,
        }
        #[derive(JsonSchema, Serialize)]
        struct Ticket {
            title: String,
            priority: Priority,
            labels: Vec<String>,
            due: Option<String>,
        }
        let schema = OutputSchema::of::<Ticket>();
        OutputSchema::new(schema.name.clone(), schema.schema.clone())
            .expect("schemars' output is in the subset");
        let ticket = Ticket {
            title: "Fix".into(),
            priority: Priority::High,
            labels: vec!["bug".into()],
            due: None,
        };
        let text = serde_json::to_string(&ticket).unwrap();
        assert!(
            schema.parse(&text).is_ok(),
            "{text} against {}",
            schema.schema
        );
        assert!(
            schema
                .parse(r#"{"title": "Fix", "priority": "Urgent", "labels": []}"#)
                .is_err()
        );
    }
}

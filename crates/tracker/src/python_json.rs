//! JSON as Python's `json.dumps` writes it, for values MLflow's Python client reads back byte for
//! byte (prompt tags, linked-prompt lists).

use serde_json::Value;

/// JSON as Python's `json.dumps` writes it: `", "` and `": "` separators and non-ASCII characters
/// as `\uXXXX` escapes, so a value written here is byte-identical to one the Python client wrote.
pub fn python_json(value: &Value) -> String {
    let mut out = String::new();
    write_python_json(value, &mut out);
    out
}

fn write_python_json(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_string(key, out);
                out.push_str(": ");
                write_python_json(item, out);
            }
            out.push('}');
        }
        Value::String(text) => write_python_string(text, out),
        other => out.push_str(&other.to_string()),
    }
}

/// `text` as a JSON string literal the way Python writes one: non-ASCII as `\uXXXX` escapes.
pub(crate) fn write_python_string(text: &str, out: &mut String) {
    let escaped = Value::String(text.to_owned()).to_string();
    for c in escaped.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_written_the_way_python_json_dumps_writes_it() {
        assert_eq!(
            python_json(&json!({ "a": 1, "b": [true, null], "é": "🎉" })),
            r#"{"a": 1, "b": [true, null], "\u00e9": "\ud83c\udf89"}"#
        );
    }
}

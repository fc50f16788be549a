//! Tool calls and typed answers written under constraints: the JSON structure is forced, and every
//! value is sampled from the tokens its schema allows, so the arguments (or the answer) are always
//! valid JSON of the right shape.
//!
//! Supported schema keywords: `type` (one type, or a list whose first non-`null` member is used),
//! `properties`, `required`, `items`, `enum`, `const`, `anyOf`/`oneOf` (first variant),
//! `minLength`/`maxLength`, `minItems`/`maxItems`, `minimum` (only to forbid a sign). Required
//! properties come first, in the order of `required`; each optional one is offered as a choice
//! against closing the object. A schema without a type is an object when it has `properties`, an
//! array when it has `items`, else a string.

use serde_json::{Map, Value};

use super::Session;
use super::chatml::TOOL_CALL_OPEN;
use crate::chat::ToolDefinition;
use crate::error::ChatError;

/// Longest string value, in characters, when the schema sets no `maxLength`.
const MAX_STRING_CHARS: usize = 200;
/// Longest number, in characters.
const MAX_NUMBER_CHARS: usize = 16;
/// Most items of an array when the schema sets no `maxItems`.
const MAX_ARRAY_ITEMS: usize = 8;
/// Deepest nesting of objects and arrays generated.
const MAX_DEPTH: usize = 6;

/// Writes `<tool_call>[\n{"name": "…", "arguments": {…}` with the model and returns the tool's name
/// and its arguments: the tool at index `tool` when it is given, else the one the model picks.
pub(crate) fn generate_tool_call(
    session: &mut Session<'_>,
    tools: &[ToolDefinition],
    tool: Option<usize>,
) -> Result<(String, Value), ChatError> {
    session.force(TOOL_CALL_OPEN);
    // The closing quote belongs to each option, so no name is a prefix of another.
    let names: Vec<String> = tools
        .iter()
        .map(|tool| format!("{}\"", json_string_body(&tool.name)))
        .collect();
    let index = match tool.filter(|index| *index < tools.len()) {
        Some(index) => {
            session.force(&names[index]);
            index
        }
        None => choose(session, &names)?,
    };
    let tool = &tools[index];
    session.force(", \"arguments\":");
    let arguments = object(session, &tool.parameters, " ", 0)?;
    Ok((tool.name.clone(), arguments))
}

/// Writes a JSON value of `schema` with the model (a typed answer) and returns it: the structure
/// is forced and every value sampled from what its schema allows, so it is always valid.
pub(crate) fn generate_value(
    session: &mut Session<'_>,
    schema: &Value,
) -> Result<Value, ChatError> {
    value(session, schema, "", 0)
}

/// `name` as it appears between the quotes of a JSON string.
fn json_string_body(name: &str) -> String {
    let quoted = Value::String(name.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

fn value(
    session: &mut Session<'_>,
    schema: &Value,
    lead: &str,
    depth: usize,
) -> Result<Value, ChatError> {
    if let Some(constant) = schema.get("const") {
        session.force(&format!("{lead}{constant}"));
        return Ok(constant.clone());
    }
    if let Some(choices) = schema
        .get("enum")
        .and_then(Value::as_array)
        .filter(|choices| !choices.is_empty())
    {
        let options: Vec<String> = choices
            .iter()
            .map(|choice| format!("{lead}{choice}"))
            .collect();
        return Ok(choices[choose(session, &options)?].clone());
    }
    for combinator in ["anyOf", "oneOf"] {
        if let Some(variant) = schema
            .get(combinator)
            .and_then(Value::as_array)
            .and_then(|variants| variants.iter().find(|variant| type_of(variant) != "null"))
        {
            return value(session, variant, lead, depth);
        }
    }
    match type_of(schema) {
        "object" => object(session, schema, lead, depth),
        "array" => array(session, schema, lead, depth),
        "integer" => number(session, schema, lead, true),
        "number" => number(session, schema, lead, false),
        "boolean" => {
            let options = [format!("{lead}true"), format!("{lead}false")];
            Ok(Value::Bool(choose(session, &options)? == 0))
        }
        "null" => {
            session.force(&format!("{lead}null"));
            Ok(Value::Null)
        }
        _ => string(session, schema, lead),
    }
}

fn type_of(schema: &Value) -> &str {
    match schema.get("type") {
        Some(Value::String(kind)) => kind,
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ if schema.get("items").is_some() => "array",
        _ => "string",
    }
}

fn limit(schema: &Value, key: &str) -> Option<usize> {
    schema
        .get(key)
        .and_then(Value::as_u64)
        .map(|value| value as usize)
}

fn object(
    session: &mut Session<'_>,
    schema: &Value,
    lead: &str,
    depth: usize,
) -> Result<Value, ChatError> {
    session.force(&format!("{lead}{{"));
    let mut out = Map::new();
    let empty = Map::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if depth >= MAX_DEPTH || properties.is_empty() {
        session.force("}");
        return Ok(Value::Object(out));
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|name| properties.contains_key(*name))
        .collect();
    for name in &required {
        if out.contains_key(*name) {
            continue;
        }
        let separator = if out.is_empty() { "" } else { ", " };
        session.force(&format!("{separator}{}:", Value::String(name.to_string())));
        let item = value(session, &properties[*name], " ", depth + 1)?;
        out.insert(name.to_string(), item);
    }

    // Each optional property is the model's choice against closing the object.
    let mut optional: Vec<&String> = properties
        .keys()
        .filter(|name| !out.contains_key(*name))
        .collect();
    while !optional.is_empty() && !session.exhausted() {
        let separator = if out.is_empty() { "" } else { ", " };
        let mut options: Vec<String> = optional
            .iter()
            .map(|name| format!("{separator}{}:", Value::String(name.to_string())))
            .collect();
        options.push("}".to_string());
        let choice = choose(session, &options)?;
        if choice == optional.len() {
            return Ok(Value::Object(out));
        }
        let name = optional.remove(choice);
        let item = value(session, &properties[name], " ", depth + 1)?;
        out.insert(name.clone(), item);
    }
    session.force("}");
    Ok(Value::Object(out))
}

fn array(
    session: &mut Session<'_>,
    schema: &Value,
    lead: &str,
    depth: usize,
) -> Result<Value, ChatError> {
    session.force(&format!("{lead}["));
    let max = limit(schema, "maxItems")
        .unwrap_or(MAX_ARRAY_ITEMS)
        .min(MAX_ARRAY_ITEMS);
    let min = limit(schema, "minItems").unwrap_or(1).min(max);
    let mut out = Vec::new();
    if max == 0 || depth >= MAX_DEPTH {
        session.force("]");
        return Ok(Value::Array(out));
    }
    let items = schema
        .get("items")
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    loop {
        let lead = if out.is_empty() { "" } else { " " };
        out.push(value(session, &items, lead, depth + 1)?);
        if out.len() >= max || (session.exhausted() && out.len() >= min) {
            break;
        }
        if out.len() < min {
            session.force(",");
            continue;
        }
        if choose(session, &[",".to_string(), "]".to_string()])? == 1 {
            return Ok(Value::Array(out));
        }
    }
    session.force("]");
    Ok(Value::Array(out))
}

/// A string value: any tokens without a backslash or control character; a token with a quote ends
/// the string (the text before the quote is kept).
fn string(session: &mut Session<'_>, schema: &Value, lead: &str) -> Result<Value, ChatError> {
    session.force(&format!("{lead}\""));
    let max = limit(schema, "maxLength")
        .unwrap_or(MAX_STRING_CHARS)
        .clamp(1, MAX_STRING_CHARS);
    // An empty string is valid JSON but useless as an argument: ask for at least one character.
    let min = limit(schema, "minLength").unwrap_or(1).clamp(1, max);
    let tokenizer = session.tokenizer();
    let mut bytes: Vec<u8> = Vec::new();
    loop {
        let chars = String::from_utf8_lossy(&bytes).chars().count();
        if chars >= max || (chars >= min && session.exhausted()) {
            break;
        }
        let may_end = chars >= min;
        let allowed = |id: u32| {
            if tokenizer.is_special(id) {
                return false;
            }
            let token = tokenizer.token_bytes(id);
            let quote = token.iter().position(|byte| *byte == b'"');
            let head = &token[..quote.unwrap_or(token.len())];
            if head
                .iter()
                .any(|byte| *byte == b'\\' || *byte < 0x20 || *byte == 0x7F)
            {
                return false;
            }
            // A token may not carry the string past `maxLength` (characters are counted as the
            // bytes that start one, so a token holding part of a character counts it once).
            let head_chars = head.iter().filter(|byte| (**byte & 0xC0) != 0x80).count();
            if chars + head_chars > max {
                return false;
            }
            match quote {
                Some(_) => may_end || (!head.is_empty() && chars + head_chars >= min),
                None => !head.is_empty(),
            }
        };
        let Some(token) = session.sample(&allowed)? else {
            break;
        };
        let token_bytes = tokenizer.token_bytes(token);
        if let Some(quote) = token_bytes.iter().position(|byte| *byte == b'"') {
            // What followed the quote in that token is not ours to say: the structure is forced.
            let head = &token_bytes[..quote];
            bytes.extend_from_slice(head);
            session.force(&String::from_utf8_lossy(head));
            break;
        }
        bytes.extend_from_slice(token_bytes);
        session.accept(token)?;
    }
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if text.is_empty() && min > 0 {
        // Only when the budget ran out before the model wrote anything.
        text.push('?');
        session.force("?");
    }
    session.force("\"");
    Ok(Value::String(text))
}

/// A number: digits, `-` and `.` in JSON's grammar; it ends when the model's favourite next token
/// would not continue it.
fn number(
    session: &mut Session<'_>,
    schema: &Value,
    lead: &str,
    integer: bool,
) -> Result<Value, ChatError> {
    session.force(lead);
    let signed = !schema
        .get("minimum")
        .and_then(Value::as_f64)
        .is_some_and(|minimum| minimum >= 0.0);
    let grammar = NumberGrammar { integer, signed };
    let tokenizer = session.tokenizer();
    let token_text = |id: u32| {
        std::str::from_utf8(tokenizer.token_bytes(id))
            .ok()
            .filter(|_| !tokenizer.is_special(id))
    };
    let mut text = String::new();
    while text.len() < MAX_NUMBER_CHARS && !session.exhausted() {
        if grammar.is_complete(&text) {
            let preferred = session.preferred()?;
            let continues = preferred
                .and_then(token_text)
                .is_some_and(|next| grammar.accepts(&text, next));
            if !continues {
                break;
            }
        }
        let allowed = |id: u32| {
            token_text(id).is_some_and(|next| !next.is_empty() && grammar.accepts(&text, next))
        };
        let Some(token) = session.sample(&allowed)? else {
            break;
        };
        text.push_str(token_text(token).unwrap_or_default());
        session.accept(token)?;
    }
    if !grammar.is_complete(&text) {
        text.push('0');
        session.force("0");
    }
    serde_json::from_str::<serde_json::Number>(&text)
        .map(Value::Number)
        .map_err(|err| {
            ChatError::Local(format!(
                "constrained decoding produced the bad number {text:?}: {err}"
            ))
        })
}

/// JSON's number grammar without exponents: `-?(0|[1-9][0-9]*)(\.[0-9]+)?`.
#[derive(Clone, Copy)]
struct NumberGrammar {
    integer: bool,
    signed: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum NumberState {
    Start,
    Sign,
    Zero,
    Whole,
    Point,
    Fraction,
}

impl NumberGrammar {
    fn run(&self, text: &str) -> Option<NumberState> {
        use NumberState::*;
        text.chars().try_fold(Start, |state, c| match (state, c) {
            (Start, '-') if self.signed => Some(Sign),
            (Start | Sign, '0') => Some(Zero),
            (Start | Sign, '1'..='9') | (Whole, '0'..='9') => Some(Whole),
            (Zero | Whole, '.') if !self.integer => Some(Point),
            (Point | Fraction, '0'..='9') => Some(Fraction),
            _ => None,
        })
    }

    fn accepts(&self, text: &str, next: &str) -> bool {
        self.run(&format!("{text}{next}")).is_some()
    }

    fn is_complete(&self, text: &str) -> bool {
        matches!(
            self.run(text),
            Some(NumberState::Zero | NumberState::Whole | NumberState::Fraction)
        )
    }
}

/// Picks one of `options` token by token: only tokens that keep the text written so far a prefix
/// of some option are allowed. Options must be prefix-free (none the start of another).
fn choose(session: &mut Session<'_>, options: &[String]) -> Result<usize, ChatError> {
    let tokenizer = session.tokenizer();
    let mut written: Vec<u8> = Vec::new();
    loop {
        if let Some(index) = options
            .iter()
            .position(|option| option.as_bytes() == written.as_slice())
        {
            return Ok(index);
        }
        let consistent = |option: &&String| option.as_bytes().starts_with(&written);
        if session.exhausted() {
            break;
        }
        let allowed = |id: u32| {
            if tokenizer.is_special(id) {
                return false;
            }
            let token = tokenizer.token_bytes(id);
            !token.is_empty()
                && options
                    .iter()
                    .filter(consistent)
                    .any(|option| option.as_bytes()[written.len()..].starts_with(token))
        };
        let Some(token) = session.sample(&allowed)? else {
            break;
        };
        written.extend_from_slice(tokenizer.token_bytes(token));
        session.accept(token)?;
    }
    // Out of budget: finish the first option still consistent with what was written.
    let index = options
        .iter()
        .position(|option| option.as_bytes().starts_with(&written))
        .ok_or_else(|| ChatError::Local("constrained decoding lost track of its choice".into()))?;
    let rest = &options[index].as_bytes()[written.len()..];
    session.force(&String::from_utf8_lossy(rest));
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_grammar_follows_json() {
        let number = NumberGrammar {
            integer: false,
            signed: true,
        };
        assert!(number.accepts("", "-"));
        assert!(number.accepts("-1", "2.5"));
        assert!(!number.accepts("0", "1"));
        assert!(!number.accepts("1.", "."));
        assert!(number.is_complete("-0.25"));
        assert!(!number.is_complete("3."));
        let integer = NumberGrammar {
            integer: true,
            signed: false,
        };
        assert!(!integer.accepts("1", "."));
        assert!(!integer.accepts("", "-"));
    }

    #[test]
    fn untyped_schemas_get_a_sensible_type() {
        assert_eq!(type_of(&serde_json::json!({"properties": {}})), "object");
        assert_eq!(
            type_of(&serde_json::json!({"type": ["null", "integer"]})),
            "integer"
        );
        assert_eq!(type_of(&serde_json::json!({})), "string");
    }
}

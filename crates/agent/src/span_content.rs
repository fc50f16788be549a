//! Message content as the GenAI semantic conventions record it on spans: JSON strings of
//! `gen_ai.input.messages`, `gen_ai.output.messages`, `gen_ai.system_instructions` and
//! `gen_ai.tool.definitions`, each message a role with typed `parts`.
//!
//! Only called when content capture is on.

use serde_json::{Value, json};

use crate::chat::{ChatResponse, FinishReason, Message, Role, ToolDefinition};

fn parts(message: &Message) -> Vec<Value> {
    let mut parts = Vec::new();
    match message.role {
        Role::Tool => parts.push(json!({
            "type": "tool_call_response",
            "id": message.tool_call_id,
            "response": message.content,
        })),
        _ if !message.content.is_empty() => {
            parts.push(json!({"type": "text", "content": message.content}))
        }
        _ => {}
    }
    for call in &message.tool_calls {
        let arguments: Value = serde_json::from_str(&call.arguments)
            .unwrap_or_else(|_| Value::String(call.arguments.clone()));
        parts.push(
            json!({"type": "tool_call", "id": call.id, "name": call.name, "arguments": arguments}),
        );
    }
    parts
}

/// `gen_ai.input.messages` for `messages`.
pub(crate) fn input_messages(messages: &[Message]) -> String {
    let list: Vec<Value> = messages
        .iter()
        .map(|m| json!({"role": m.role.as_str(), "parts": parts(m)}))
        .collect();
    Value::Array(list).to_string()
}

/// `gen_ai.output.messages` for a model response.
pub(crate) fn output_messages(response: &ChatResponse) -> String {
    let message = response.to_message();
    json!([{
        "role": "assistant",
        "parts": parts(&message),
        "finish_reason": response.finish_reason.as_str(),
    }])
    .to_string()
}

/// `gen_ai.output.messages` for an agent's final answer.
pub(crate) fn output_text(answer: &str) -> String {
    json!([{"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"}]).to_string()
}

/// `gen_ai.system_instructions`.
pub(crate) fn system_instructions(text: &str) -> String {
    json!([{"type": "text", "content": text}]).to_string()
}

/// `gen_ai.tool.definitions`.
pub(crate) fn tool_definitions(tools: &[ToolDefinition]) -> String {
    let list: Vec<Value> = tools
        .iter()
        .map(|t| json!({"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}))
        .collect();
    Value::Array(list).to_string()
}

/// `gen_ai.response.finish_reasons`, a string array carried as JSON text (tracing fields are
/// scalars; the tracker turns it back into an array attribute).
pub(crate) fn finish_reasons(reason: &FinishReason) -> String {
    json!([reason.as_str()]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ToolCall;

    #[test]
    fn tool_calls_and_results_become_typed_parts() {
        let call = ToolCall {
            id: "c1".into(),
            name: "calculator".into(),
            arguments: r#"{"expression":"1+1"}"#.into(),
        };
        let messages = vec![
            Message::user("q"),
            Message::assistant("", vec![call.clone()]),
            Message::tool_result(&call, "2"),
        ];
        let value: Value = serde_json::from_str(&input_messages(&messages)).unwrap();
        assert_eq!(value[0]["parts"][0]["type"], "text");
        assert_eq!(value[1]["parts"][0]["type"], "tool_call");
        assert_eq!(value[1]["parts"][0]["arguments"]["expression"], "1+1");
        assert_eq!(value[2]["role"], "tool");
        assert_eq!(value[2]["parts"][0]["type"], "tool_call_response");
        assert_eq!(value[2]["parts"][0]["id"], "c1");
    }
}

//! The ChatML prompt SmolLM2 was tuned on, with tools in the Hermes/Qwen convention: schemas inside
//! `<tools></tools>` in the system message, calls as `<tool_call>` JSON, results as
//! `<tool_response>` in a user turn.

use crate::chat::{Message, Role, ToolCall, ToolDefinition};

/// SmolLM2's own default system message, used when the conversation brings none.
pub(crate) const DEFAULT_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// What the assistant turn starts with when a tool call is forced.
pub(crate) const TOOL_CALL_OPEN: &str = "<tool_call>\n{\"name\": \"";

/// The prompt for `messages`, ending with an open assistant turn.
pub(crate) fn render(messages: &[Message], tools: &[ToolDefinition]) -> String {
    let mut prompt = String::new();
    let mut rest = messages;
    let system = match messages.first() {
        Some(first) if first.role == Role::System => {
            rest = &messages[1..];
            first.content.as_str()
        }
        _ => DEFAULT_SYSTEM,
    };
    turn(
        &mut prompt,
        "system",
        &(system.to_string() + &tools_section(tools)),
    );

    let mut index = 0;
    while index < rest.len() {
        let message = &rest[index];
        match message.role {
            Role::System => turn(&mut prompt, "system", &message.content),
            Role::User => turn(&mut prompt, "user", &message.content),
            Role::Assistant => {
                let mut content = message.content.clone();
                for call in &message.tool_calls {
                    if !content.is_empty() {
                        content.push('\n');
                    }
                    content.push_str(&tool_call_text(call));
                }
                turn(&mut prompt, "assistant", &content);
            }
            Role::Tool => {
                // Consecutive tool results answer one assistant turn: one user turn holds them all.
                let mut content = String::new();
                while let Some(result) =
                    rest.get(index).filter(|message| message.role == Role::Tool)
                {
                    if !content.is_empty() {
                        content.push('\n');
                    }
                    content.push_str("<tool_response>\n");
                    content.push_str(&result.content);
                    content.push_str("\n</tool_response>");
                    index += 1;
                }
                turn(&mut prompt, "user", &content);
                continue;
            }
        }
        index += 1;
    }
    prompt.push_str("<|im_start|>assistant\n");
    prompt
}

fn turn(prompt: &mut String, role: &str, content: &str) {
    prompt.push_str("<|im_start|>");
    prompt.push_str(role);
    prompt.push('\n');
    prompt.push_str(content);
    prompt.push_str("<|im_end|>\n");
}

/// A call as the model is shown to write it.
pub(crate) fn tool_call_text(call: &ToolCall) -> String {
    let arguments = serde_json::from_str::<serde_json::Value>(&call.arguments)
        .map(|value| value.to_string())
        .unwrap_or_else(|_| call.arguments.clone());
    format!(
        "<tool_call>\n{{\"name\": {}, \"arguments\": {arguments}}}\n</tool_call>",
        serde_json::Value::String(call.name.clone())
    )
}

fn tools_section(tools: &[ToolDefinition]) -> String {
    if tools.is_empty() {
        return String::new();
    }
    let mut section = String::from(
        "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    );
    for tool in tools {
        let signature = serde_json::json!({
            "type": "function",
            "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
        });
        section.push('\n');
        section.push_str(&signature.to_string());
    }
    section.push_str(
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments \
         within <tool_call></tool_call> XML tags:\n<tool_call>\n\
         {\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
    );
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_tool_round_trip() {
        let call = ToolCall {
            id: "call_0".into(),
            name: "calculator".into(),
            arguments: r#"{"expression":"1+1"}"#.into(),
        };
        let messages = vec![
            Message::user("What is 1+1?"),
            Message::assistant("", vec![call.clone()]),
            Message::tool_result(&call, "2"),
        ];
        let tools = vec![ToolDefinition {
            name: "calculator".into(),
            description: "evaluates arithmetic".into(),
            parameters: serde_json::json!({"type": "object"}),
        }];
        let prompt = render(&messages, &tools);
        assert!(prompt.starts_with(&format!("<|im_start|>system\n{DEFAULT_SYSTEM}\n\n# Tools")));
        assert!(prompt.contains("\"name\":\"calculator\""));
        assert!(prompt.contains(
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\":\"1+1\"}}\n</tool_call><|im_end|>\n"
        ));
        assert!(
            prompt.contains("<|im_start|>user\n<tool_response>\n2\n</tool_response><|im_end|>\n")
        );
        assert!(prompt.ends_with("<|im_start|>assistant\n"));
    }
}

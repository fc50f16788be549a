//! The ChatML prompt SmolLM2 was tuned on, with tools in SmolLM2's own function-calling convention
//! (the one of its APIGen training data): the function signatures as a JSON list inside
//! `<tools></tools>` in the system message, calls as a JSON list inside `<tool_call>[…]</tool_call>`,
//! and results as `<tool_response>` blocks in a `tool` turn.

use serde_json::{Value, json};

use crate::chat::{Message, Role, ToolCall, ToolDefinition};

/// SmolLM2's own default system message, used when the conversation brings none.
pub(crate) const DEFAULT_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// What the assistant turn starts with when a tool call is forced.
pub(crate) const TOOL_CALL_OPEN: &str = "<tool_call>[\n{\"name\": \"";

/// The system message SmolLM2 saw with tools in training, used when the conversation brings none.
const TOOLS_SYSTEM: &str = "You are an expert in composing functions. You are given a question and a set of possible \
functions.\nBased on the question, you will need to make one or more function/tool calls to achieve the purpose.\n\
If none of the functions can be used, point it out and refuse to answer.\n\
If the given question lacks the parameters required by the function, also point it out.";

/// The prompt for `messages`, ending with an open assistant turn.
pub(crate) fn render(messages: &[Message], tools: &[ToolDefinition]) -> String {
    let mut prompt = String::new();
    let mut rest = messages;
    let system = match messages.first() {
        Some(first) if first.role == Role::System => {
            rest = &messages[1..];
            first.content.as_str()
        }
        _ if tools.is_empty() => DEFAULT_SYSTEM,
        _ => TOOLS_SYSTEM,
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
                // Consecutive tool results answer one assistant turn: one `tool` turn holds them all (with the
                // `user` role the model tends to echo the block instead of answering).
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
                turn(&mut prompt, "tool", &content);
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
    let arguments = serde_json::from_str::<Value>(&call.arguments)
        .map(|value| python_json(&value))
        .unwrap_or_else(|_| call.arguments.clone());
    format!(
        "<tool_call>[\n{{\"name\": {}, \"arguments\": {arguments}}}\n]</tool_call>",
        Value::String(call.name.clone())
    )
}

fn tools_section(tools: &[ToolDefinition]) -> String {
    if tools.is_empty() {
        return String::new();
    }
    let signatures: Vec<Value> = tools
        .iter()
        .map(|tool| json!({"name": tool.name, "description": tool.description, "parameters": tool.parameters}))
        .collect();
    format!(
        "\n\nYou have access to the following tools:\n<tools>{}</tools>\n\n\
         The output MUST strictly adhere to the following format, and NO other text MUST be included.\n\
         The example format is as follows. Please make sure the parameter type is correct. If no function call \
         is needed, please make the tool calls an empty list '[]'.\n<tool_call>[\n\
         {{\"name\": \"func_name1\", \"arguments\": {{\"argument1\": \"value1\", \"argument2\": \"value2\"}}}},\n\
         ... (more tool calls as required)\n]</tool_call>",
        python_json(&Value::Array(signatures))
    )
}

/// JSON with the separators of Python's `json.dumps` (`", "`, `": "`), the spelling the model saw.
pub(crate) fn python_json(value: &Value) -> String {
    match value {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_json).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(members) => format!(
            "{{{}}}",
            members
                .iter()
                .map(|(key, item)| format!("{}: {}", Value::String(key.clone()), python_json(item)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        scalar => scalar.to_string(),
    }
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
        assert!(prompt.starts_with(&format!(
            "<|im_start|>system\n{TOOLS_SYSTEM}\n\nYou have access"
        )));
        assert!(prompt.contains("\"name\": \"calculator\""));
        assert!(prompt.contains(
            "<|im_start|>assistant\n<tool_call>[\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"1+1\"}}\n]</tool_call><|im_end|>\n"
        ));
        assert!(
            prompt.contains("<|im_start|>tool\n<tool_response>\n2\n</tool_response><|im_end|>\n")
        );
        assert!(prompt.ends_with("<|im_start|>assistant\n"));
    }
}

//! MCP resources and prompts in an agent's turn, from the reference
//! `@modelcontextprotocol/server-everything` over stdio: a resource an agent file lists is read
//! every turn and given to the model as a numbered source; an MCP prompt is the turn's template,
//! rendered by the server with the arguments it declares. The model is scripted, so the test sees
//! exactly what the model was sent.

use std::sync::Arc;

use sextant_agent::Agent;
use sextant_agent::chat::Role;
use sextant_agent::mcp_context::{McpPromptTemplate, McpResourceRef, McpResources};
use sextant_agent::testing::ScriptedChatModel;
use sextant_tools::mcp::{McpConfig, McpServerConfig, McpServers};

fn everything() -> McpServers {
    let mut config = McpConfig::default();
    config.servers.insert(
        "everything".into(),
        McpServerConfig {
            command: Some(sextant_testkit::mcp_everything().display().to_string()),
            args: vec!["stdio".into()],
            ..McpServerConfig::default()
        },
    );
    McpServers::new(config)
}

#[tokio::test]
#[ignore = "needs the reference MCP servers: cargo xtask test"]
async fn a_listed_resource_is_a_source_and_an_mcp_prompt_is_the_template() {
    let servers = everything();
    let model = ScriptedChatModel::new().then_text("It is modular [1].");
    let requests = model.requests();
    let resource =
        McpResourceRef::parse("mcp:everything/demo://resource/static/document/architecture.md")
            .unwrap();
    let mut variables = serde_json::Map::new();
    variables.insert("city".into(), serde_json::Value::String("Lisbon".into()));
    let agent = Agent::builder("reader", Arc::new(model))
        .context_source(Arc::new(McpResources::new(servers.clone(), vec![resource])))
        .message_template(
            Arc::new(McpPromptTemplate::new(
                servers.clone(),
                "everything",
                "args-prompt",
            )),
            variables,
        )
        .build();
    let outcome = agent.run("How is the server built?").await.unwrap();
    assert_eq!(outcome.answer.trim_start().get(..11), Some("It is modul"));

    let sent = requests.lock().unwrap();
    let user = sent[0]
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .expect("a user message");
    // The server rendered its prompt with the argument it declares (`city`, from the variables).
    assert!(
        user.content.contains("What's weather in Lisbon?"),
        "{}",
        user.content
    );
    // The resource's text is a delimited, citable source.
    assert!(
        user.content.contains("Everything Server"),
        "{}",
        user.content
    );
    assert!(
        user.content.contains("<source id=\"1\""),
        "{}",
        user.content
    );
    assert_eq!(outcome.citations.len(), 1, "{:?}", outcome.citations);
    assert!(
        outcome.citations[0]
            .source
            .starts_with("mcp:everything/demo://"),
        "{:?}",
        outcome.citations
    );
}

#[tokio::test]
#[ignore = "needs the reference MCP servers: cargo xtask test"]
async fn an_unknown_prompt_or_resource_fails_the_turn_with_its_name() {
    let servers = everything();
    let agent = Agent::builder("reader", Arc::new(ScriptedChatModel::new().then_text("x")))
        .message_template(
            Arc::new(McpPromptTemplate::new(
                servers.clone(),
                "everything",
                "no-such-prompt",
            )),
            serde_json::Map::new(),
        )
        .build();
    let error = agent.run("hi").await.unwrap_err().to_string();
    assert!(
        error.contains("no-such-prompt") && error.contains("simple-prompt"),
        "{error}"
    );

    let missing = McpResourceRef::parse("mcp:everything/demo://nowhere").unwrap();
    let agent = Agent::builder("reader", Arc::new(ScriptedChatModel::new().then_text("x")))
        .context_source(Arc::new(McpResources::new(servers, vec![missing])))
        .build();
    let error = agent.run("hi").await.unwrap_err().to_string();
    assert!(
        error.contains("reading context failed") && error.contains("everything"),
        "{error}"
    );
}

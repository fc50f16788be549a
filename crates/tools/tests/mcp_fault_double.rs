//! The MCP client's failure paths, against `xtask/servers/mcp_fault_double.py`: a fault-injection
//! double of an MCP server (a real one cannot be made to hang, crash mid-call or send malformed
//! JSON-RPC on demand). Each failure must reach the model as a tool error, never a panic, and the
//! next call must work again.

use std::path::PathBuf;
use std::time::Duration;

use sextant_tools::mcp::{McpConfig, McpSelector, McpServerConfig, McpServers, mcp_tools};
use sextant_tools::{ToolError, ToolLimits, ToolSet};

fn double() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../xtask/servers/mcp_fault_double.py")
}

fn servers(args: &[&str]) -> McpServers {
    let mut config = McpConfig::default();
    let mut server_args = vec![double().display().to_string()];
    server_args.extend(args.iter().map(|a| (*a).to_owned()));
    config.servers.insert(
        "double".into(),
        McpServerConfig {
            command: Some("python3".into()),
            args: server_args,
            ..McpServerConfig::default()
        },
    );
    config.connect_timeout_secs = 20.0;
    McpServers::new(config)
}

async fn tool_set(servers: &McpServers, timeout: Duration) -> ToolSet {
    let selector = McpSelector::parse("mcp:double/*").unwrap().unwrap();
    let mut set = ToolSet::new().with_default_limits(ToolLimits {
        timeout,
        max_result_chars: 1000,
    });
    for tool in mcp_tools(servers, &[selector])
        .await
        .expect("the double lists its tools")
    {
        set.insert(tool);
    }
    set
}

#[tokio::test]
async fn a_remote_tool_is_listed_schema_checked_and_called() {
    let servers = servers(&[]);
    let set = tool_set(&servers, Duration::from_secs(10)).await;
    assert!(
        set.get("ok").is_some() && set.get("hang").is_some(),
        "{set:?}"
    );
    let output = set.invoke("ok", r#"{"text": "hi"}"#).await.unwrap();
    assert_eq!(output.text, "ok: hi");
    // The server's schema is checked before the call: the double never sees this one.
    let error = set.invoke("ok", r#"{"text": 5}"#).await.unwrap_err();
    assert_eq!(error.error_type(), "invalid_arguments", "{error}");
    // A result with isError is a tool error whose text the model reads.
    let error = set.invoke("fail", "{}").await.unwrap_err();
    assert_eq!(
        error,
        ToolError::Failed("the double failed on purpose".into())
    );
    assert_eq!(error.error_type(), "tool_error");
}

#[tokio::test]
async fn a_hanging_call_times_out_and_the_connection_still_serves() {
    let servers = servers(&[]);
    let set = tool_set(&servers, Duration::from_millis(800)).await;
    let error = set.invoke("hang", "{}").await.unwrap_err();
    assert_eq!(error, ToolError::Timeout(Duration::from_millis(800)));
    assert_eq!(
        set.invoke("ok", r#"{"text": "after"}"#).await.unwrap().text,
        "ok: after"
    );
}

#[tokio::test]
async fn a_server_that_crashes_mid_call_is_an_error_then_restarted() {
    let servers = servers(&[]);
    let set = tool_set(&servers, Duration::from_secs(10)).await;
    let error = set.invoke("crash", "{}").await.unwrap_err();
    assert!(
        matches!(error, ToolError::Upstream(_)) && error.to_string().contains("double"),
        "{error:?}"
    );
    // The next call spawns the server again.
    assert_eq!(
        set.invoke("ok", r#"{"text": "again"}"#).await.unwrap().text,
        "ok: again"
    );
}

#[tokio::test]
async fn malformed_json_rpc_is_an_error_not_a_panic() {
    let servers = servers(&[]);
    let set = tool_set(&servers, Duration::from_secs(3)).await;
    let error = set.invoke("garbage", "{}").await.unwrap_err();
    assert!(
        matches!(error, ToolError::Upstream(_) | ToolError::Timeout(_)),
        "{error:?}"
    );
    assert_eq!(
        set.invoke("ok", r#"{"text": "still"}"#).await.unwrap().text,
        "ok: still"
    );
}

#[tokio::test]
async fn a_changed_tool_list_is_listed_again() {
    let servers = servers(&[]);
    let set = tool_set(&servers, Duration::from_secs(10)).await;
    assert!(set.get("extra").is_none());
    set.invoke("grow", "{}").await.unwrap();
    // The notification arrives on its own; the next listing sees the new tool.
    let mut names = Vec::new();
    for _ in 0..50 {
        names = servers
            .tools("double")
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect::<Vec<_>>();
        if names.iter().any(|n| n == "extra") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(names.iter().any(|n| n == "extra"), "{names:?}");
}

#[tokio::test]
async fn unknown_servers_tools_and_commands_are_named() {
    let servers = servers(&[]);
    let missing = McpSelector::parse("mcp:nowhere/*").unwrap().unwrap();
    let error = mcp_tools(&servers, &[missing])
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("no MCP server `nowhere`") && error.contains("double"),
        "{error}"
    );

    let absent = McpSelector::parse("mcp:double/teleport").unwrap().unwrap();
    let error = mcp_tools(&servers, &[absent])
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("no tool `teleport`") && error.contains("ok"),
        "{error}"
    );

    let mut config = McpConfig::default();
    config.servers.insert(
        "ghost".into(),
        McpServerConfig {
            command: Some("/nonexistent/mcp-server".into()),
            ..McpServerConfig::default()
        },
    );
    let ghost = McpSelector::parse("mcp:ghost/*").unwrap().unwrap();
    let error = mcp_tools(&McpServers::new(config), &[ghost])
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("`ghost`") && error.contains("/nonexistent/mcp-server"),
        "{error}"
    );
}

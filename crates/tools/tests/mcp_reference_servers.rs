//! The MCP client against the reference servers, as a user would configure them: `mcp-server-time`
//! and `mcp-server-fetch` from PyPI over stdio, and `@modelcontextprotocol/server-everything` from
//! npm over stdio and Streamable HTTP. `cargo xtask test` installs them (`SEXTANT_TEST_MCP_BIN`,
//! `SEXTANT_TEST_MCP_EVERYTHING`).

use std::time::Duration;

use sextant_tools::mcp::{McpConfig, McpSelector, McpServerConfig, McpServers, mcp_tools};
use sextant_tools::{ToolError, ToolSet};

fn one_server(name: &str, server: McpServerConfig) -> McpServers {
    let mut config = McpConfig::default();
    config.servers.insert(name.into(), server);
    config.connect_timeout_secs = 60.0;
    McpServers::new(config)
}

fn stdio(command: std::path::PathBuf, args: &[&str]) -> McpServerConfig {
    McpServerConfig {
        command: Some(command.display().to_string()),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        ..McpServerConfig::default()
    }
}

async fn tools(servers: &McpServers, selector: &str) -> ToolSet {
    let selector = McpSelector::parse(selector).unwrap().unwrap();
    let mut set = ToolSet::new();
    for tool in mcp_tools(servers, &[selector])
        .await
        .expect("the server lists its tools")
    {
        set.insert(tool);
    }
    set
}

#[tokio::test]
#[ignore = "needs the reference MCP servers: cargo xtask test"]
async fn the_time_server_answers_over_stdio() {
    let bin = sextant_testkit::mcp_bin();
    let servers = one_server(
        "time",
        stdio(bin.join("mcp-server-time"), &["--local-timezone", "UTC"]),
    );
    let set = tools(&servers, "mcp:time/*").await;
    let names: Vec<&str> = set.names().collect();
    assert!(
        names.contains(&"get_current_time") && names.contains(&"convert_time"),
        "{names:?}"
    );
    let output = set
        .invoke("get_current_time", r#"{"timezone": "Asia/Tokyo"}"#)
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&output.text).unwrap();
    assert_eq!(answer["timezone"], "Asia/Tokyo", "{answer}");
    assert!(
        answer["datetime"]
            .as_str()
            .is_some_and(|d| d.ends_with("+09:00")),
        "{answer}"
    );
    // The server's own refusal reaches the model as a tool error.
    let error = set
        .invoke("get_current_time", r#"{"timezone": "Mars/Olympus_Mons"}"#)
        .await
        .unwrap_err();
    assert!(matches!(error, ToolError::Failed(_)), "{error:?}");
    assert!(error.to_string().contains("Mars/Olympus_Mons"), "{error}");
}

#[tokio::test]
#[ignore = "needs the reference MCP servers: cargo xtask test"]
async fn the_fetch_server_reads_a_local_page_over_stdio() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            let body = "<html><body><h1>Lighthouse</h1><p>The lamp is green.</p></body></html>";
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    let bin = sextant_testkit::mcp_bin();
    let servers = one_server(
        "fetch",
        stdio(
            bin.join("mcp-server-fetch"),
            &["--ignore-robots-txt", "--allow-private-ips"],
        ),
    );
    let set = tools(&servers, "mcp:fetch/fetch").await;
    assert_eq!(set.names().collect::<Vec<_>>(), ["fetch"]);
    let url = format!("http://127.0.0.1:{port}/page");
    let output = set
        .invoke("fetch", &serde_json::json!({ "url": url }).to_string())
        .await
        .unwrap();
    assert!(
        output.text.contains("The lamp is green."),
        "{}",
        output.text
    );
}

#[tokio::test]
#[ignore = "needs the reference MCP servers: cargo xtask test"]
async fn the_everything_server_answers_over_stdio() {
    let servers = one_server(
        "everything",
        stdio(sextant_testkit::mcp_everything(), &["stdio"]),
    );
    let set = tools(&servers, "mcp:everything/get-sum").await;
    let output = set.invoke("get-sum", r#"{"a": 2, "b": 40}"#).await.unwrap();
    assert!(output.text.contains("42"), "{}", output.text);
}

/// `mcp-server-everything streamableHttp` on a free port, killed when dropped.
struct EverythingOverHttp {
    child: tokio::process::Child,
    url: String,
}

impl EverythingOverHttp {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(sextant_testkit::mcp_everything())
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mcp-server-everything starts");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self {
                    child,
                    url: format!("http://127.0.0.1:{port}/mcp"),
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("mcp-server-everything did not listen on {port}");
    }
}

impl Drop for EverythingOverHttp {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
#[ignore = "needs the reference MCP servers: cargo xtask test"]
async fn the_everything_server_answers_over_streamable_http() {
    let server = EverythingOverHttp::start().await;
    // SAFETY: set before any thread of this test reads the environment for it.
    unsafe { std::env::set_var("SEXTANT_TEST_MCP_HEADER", "from-the-environment") };
    let servers = one_server(
        "everything",
        McpServerConfig {
            url: Some(server.url.clone()),
            headers: [(
                "X-Sextant-Test".to_owned(),
                "SEXTANT_TEST_MCP_HEADER".to_owned(),
            )]
            .into(),
            ..McpServerConfig::default()
        },
    );
    let set = tools(&servers, "mcp:everything/*").await;
    assert!(set.get("echo").is_some(), "{set:?}");
    let output = set
        .invoke("get-sum", r#"{"a": 1.5, "b": 2}"#)
        .await
        .unwrap();
    assert!(output.text.contains("3.5"), "{}", output.text);
    let output = set
        .invoke("echo", r#"{"message": "over http"}"#)
        .await
        .unwrap();
    assert!(output.text.contains("over http"), "{}", output.text);

    // A header whose variable is unset is named, with the variable, not sent empty.
    let missing = one_server(
        "everything",
        McpServerConfig {
            url: Some(server.url.clone()),
            bearer_token_env: Some("SEXTANT_TEST_MCP_TOKEN_THAT_IS_NOT_SET".into()),
            ..McpServerConfig::default()
        },
    );
    let selector = McpSelector::parse("mcp:everything/*").unwrap().unwrap();
    let error = mcp_tools(&missing, &[selector])
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("SEXTANT_TEST_MCP_TOKEN_THAT_IS_NOT_SET") && error.contains("is not set"),
        "{error}"
    );
}

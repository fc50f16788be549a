//! MCP across processes, as users connect them: `sextant mcp` spawned over stdio by the official
//! Python SDK, a Sextant agent calling another Sextant process's agent over MCP (one trace, stored
//! on both sides with correct parent links), and `sextant run` with tools from the reference time
//! server.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use sextant_agent::Agent;
use sextant_agent::testing::ScriptedChatModel;
use sextant_runtime::{Runtime, SextantConfig};
use sextant_tools::ToolSet;
use sextant_tools::mcp::{McpSelector, mcp_tools};
use sextant_tracker::{LocalTraceStore, StoredSpan};

mod support;
use support::{json_of, repo, sextant};

/// `sextant.toml` for a child `sextant mcp` over `data`: the `tiny` agent (16 tokens) in its
/// agents dir, one thread.
fn child_setup(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("child-data");
    let agents = data.join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    sextant_testkit::local_agent_file(&agents, "tiny", 16);
    (data, agents)
}

/// The spans of `trace_id` in the store at `path`, once one named `name` is among them.
fn stored(path: &Path, trace_id: &str, name: &str) -> Vec<StoredSpan> {
    for _ in 0..150 {
        if let Ok(store) = LocalTraceStore::open(path)
            && let Ok(spans) = store.spans(trace_id)
            && spans.iter().any(|s| s.name == name)
        {
            return spans;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("no `{name}` span of trace {trace_id} in {}", path.display());
}

#[test]
#[ignore = "needs the Python MCP SDK: cargo xtask test"]
fn the_python_sdk_spawns_sextant_mcp_and_its_trace_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (data, agents) = child_setup(dir.path());
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace_id}-b7ad6b7169203331-01");
    let envs = [
        format!("SEXTANT_DATA_DIR={}", data.display()),
        format!("SEXTANT_SERVE__AGENTS_DIR={}", agents.display()),
        "SEXTANT_THREADS=1".to_owned(),
        format!("PATH={}", std::env::var("PATH").unwrap_or_default()),
        format!("HOME={}", std::env::var("HOME").unwrap_or_default()),
    ];
    let mut args = vec![
        "--command".to_owned(),
        env!("CARGO_BIN_EXE_sextant").to_owned(),
        "--arg".to_owned(),
        "mcp".to_owned(),
        "--cwd".to_owned(),
        repo().display().to_string(),
        "--tool".to_owned(),
        "tiny".to_owned(),
        "--question".to_owned(),
        "Say hello.".to_owned(),
        "--traceparent".to_owned(),
        traceparent,
    ];
    for env in &envs {
        args.push("--env".to_owned());
        args.push(env.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sextant_testkit::mcp_sdk_client(&args);
    assert_eq!(out["initialize"]["serverInfo"]["name"], "sextant", "{out}");
    let call = &out["call"];
    assert_ne!(call["isError"], true, "{call}");
    assert!(
        call["structuredContent"]["answer"]
            .as_str()
            .is_some_and(|a| !a.trim().is_empty()),
        "{call}"
    );
    // Over stdio the caller started the process: its trace context is continued.
    assert_eq!(call["structuredContent"]["trace_id"], trace_id, "{call}");

    let spans = stored(&data.join("traces.db"), trace_id, "invoke_agent tiny");
    let server = spans
        .iter()
        .find(|s| s.name == "tools/call tiny")
        .expect("the server span");
    assert_eq!(server.kind, "server");
    assert_eq!(server.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
    assert_eq!(server.attributes["network.transport"], "pipe");
    assert_eq!(server.attributes["mcp.method.name"], "tools/call");
}

#[test]
fn a_sextant_agent_calls_another_sextant_process_over_mcp_in_one_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (child_data, child_agents) = child_setup(dir.path());
    let parent_data = dir.path().join("parent-data");
    let config_file = dir.path().join("sextant.toml");
    std::fs::write(
        &config_file,
        format!(
            "[mcp.servers.peer]\ncommand = {:?}\nargs = [\"mcp\"]\ncwd = {:?}\npass_env = [\"SEXTANT_HOME\"]\n\
             env = {{ SEXTANT_DATA_DIR = {:?}, SEXTANT_SERVE__AGENTS_DIR = {:?}, SEXTANT_THREADS = \"1\" }}\n",
            env!("CARGO_BIN_EXE_sextant"),
            repo().display().to_string(),
            child_data.display().to_string(),
            child_agents.display().to_string(),
        ),
    )
    .unwrap();
    let config = SextantConfig::load_with_vars(
        Some(&config_file),
        vec![("SEXTANT_DATA_DIR".into(), parent_data.display().to_string())],
    )
    .unwrap();

    let tokio = tokio::runtime::Runtime::new().unwrap();
    let (trace_id, parent_spans) = tokio.block_on(async {
        let runtime = Runtime::start(config)
            .await
            .expect("the parent runtime starts");
        let selector = McpSelector::parse("mcp:peer/tiny").unwrap().unwrap();
        let mut tools = ToolSet::new();
        for tool in mcp_tools(&runtime.build_context().mcp, &[selector])
            .await
            .unwrap()
        {
            tools.insert(tool);
        }
        // The parent's model is scripted so that it surely calls the remote agent; the child
        // answers on the real local model.
        let model = ScriptedChatModel::new()
            .then_tool_calls(&[("tiny", r#"{"question": "Say hello."}"#)])
            .then_text("The other agent answered.");
        let agent = Agent::builder("parent", Arc::new(model))
            .tools(tools)
            .build();
        let outcome = agent
            .run("Ask the other agent to say hello.")
            .await
            .unwrap();
        assert!(!outcome.tool_calls[0].is_error, "{:?}", outcome.tool_calls);
        let trace_id = outcome.trace_id.clone().expect("a trace id");
        let spans = runtime.trace_spans(&trace_id).unwrap();
        runtime.shutdown().await.unwrap();
        (trace_id, spans)
    });

    let execute = parent_spans
        .iter()
        .find(|s| s.name == "execute_tool tiny")
        .expect("execute_tool");
    let client = parent_spans
        .iter()
        .find(|s| s.name == "tools/call tiny")
        .expect("the MCP client span");
    assert_eq!(client.kind, "client");
    assert_eq!(
        client.parent_span_id.as_deref(),
        Some(execute.span_id.as_str())
    );
    assert_eq!(client.attributes["mcp.method.name"], "tools/call");
    assert_eq!(client.attributes["network.transport"], "pipe");
    assert!(
        client.attributes.contains_key("jsonrpc.request.id"),
        "{:?}",
        client.attributes
    );
    assert!(
        client.attributes.contains_key("mcp.protocol.version"),
        "{:?}",
        client.attributes
    );

    // The child process stored its side of the same trace, under the client's span.
    let child_spans = stored(
        &child_data.join("traces.db"),
        &trace_id,
        "invoke_agent tiny",
    );
    let server = child_spans
        .iter()
        .find(|s| s.name == "tools/call tiny")
        .expect("the MCP server span");
    assert_eq!(server.kind, "server");
    assert_eq!(server.trace_id, trace_id);
    assert_eq!(
        server.parent_span_id.as_deref(),
        Some(client.span_id.as_str())
    );
    let agent = child_spans
        .iter()
        .find(|s| s.name == "invoke_agent tiny")
        .unwrap();
    assert_eq!(
        agent.parent_span_id.as_deref(),
        Some(server.span_id.as_str())
    );
}

#[test]
#[ignore = "needs the reference MCP servers: cargo xtask test"]
fn sextant_run_uses_the_reference_time_server_and_traces_the_call() {
    let data = tempfile::tempdir().unwrap();
    let time = sextant_testkit::mcp_bin().join("mcp-server-time");
    let time = time.display().to_string();
    let envs = [
        ("SEXTANT_MCP__SERVERS__TIME__COMMAND", time.as_str()),
        (
            "SEXTANT_MCP__SERVERS__TIME__ARGS",
            r#"["--local-timezone", "UTC"]"#,
        ),
    ];
    let run = json_of(sextant(
        data.path(),
        &envs,
        &[
            "run",
            "--json",
            "--agent",
            "configs/agents/mcp-time.toml",
            "What time is it now in the Asia/Tokyo timezone?",
        ],
    ));
    let calls = run["tool_calls"].as_array().expect("tool_calls");
    assert!(!calls.is_empty(), "the agent called no tool: {run}");
    let name = calls[0]["name"].as_str().unwrap().to_owned();
    assert!(
        name == "get_current_time" || name == "convert_time",
        "{run}"
    );
    let trace_id = run["trace_id"].as_str().unwrap();
    let spans = json_of(sextant(
        data.path(),
        &envs,
        &["traces", "show", trace_id, "--json"],
    ));
    let spans = spans.as_array().unwrap();
    let find = |wanted: &str| -> &Value {
        spans
            .iter()
            .find(|s| s["name"] == wanted)
            .unwrap_or_else(|| panic!("no `{wanted}` span: {spans:#?}"))
    };
    let execute = find(&format!("execute_tool {name}"));
    let client = find(&format!("tools/call {name}"));
    assert_eq!(client["parent_span_id"], execute["span_id"]);
    assert_eq!(client["kind"], "client");
    assert_eq!(client["attributes"]["mcp.method.name"], "tools/call");
    assert_eq!(client["attributes"]["network.transport"], "pipe");
    assert_eq!(client["attributes"]["sextant.mcp.server"], "time");
    assert!(
        client["attributes"]["mcp.protocol.version"].is_string(),
        "{client}"
    );
}

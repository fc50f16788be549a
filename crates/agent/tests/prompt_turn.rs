//! An agent whose prompt comes from the registry: each turn resolves `prompts:/qa@production`
//! through the cache (a `prompt qa` span under the agent, recording name, version and alias),
//! renders the chat template into the model's messages, and reports the version it used; moving
//! the alias reaches the running agent after the cache's TTL; a template that needs a variable
//! nobody gives fails the turn with an error naming it. Driven by the scripted model through the
//! real telemetry pipeline into the real local trace store.
//!
//! One test in its own binary: tracing caches per-callsite interest process-wide, and scoped
//! subscribers in parallel tests would hide each other's spans.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sextant_agent::prompt::AgentPrompts;
use sextant_agent::testing::ScriptedChatModel;
use sextant_agent::{Agent, AgentError, Role};
use sextant_tracker::local::LocalPromptRegistry;
use sextant_tracker::prompts::{
    CachedPromptRegistry, ChatMessageTemplate, NewPromptVersion, PromptRegistry, PromptTemplate,
    PromptVersionRef,
};
use sextant_tracker::{StoredSpan, Telemetry, TelemetryConfig};

fn attribute<'a>(span: &'a StoredSpan, key: &str) -> &'a Value {
    span.attributes.get(key).unwrap_or(&Value::Null)
}

#[test]
fn registry_prompts_shape_the_turn_and_are_traced_by_version() {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Telemetry::builder(&TelemetryConfig {
        local_store: Some(dir.path().join("traces.db")),
        ..TelemetryConfig::default()
    })
    .build()
    .unwrap();
    let _subscriber = telemetry.set_thread_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let backend = Arc::new(LocalPromptRegistry::open(dir.path().join("registry.db")).unwrap());
    let chat = |system: &str| {
        NewPromptVersion::new(PromptTemplate::chat([
            ChatMessageTemplate::new("system", system),
            ChatMessageTemplate::new("user", "Q: {{ question }} ({{ audience }})"),
        ]))
    };
    runtime.block_on(async {
        backend
            .register("qa", chat("Answer concisely."))
            .await
            .unwrap();
        backend
            .register("qa", chat("Answer in one sentence."))
            .await
            .unwrap();
        backend.set_alias("qa", "production", 1).await.unwrap();
    });
    let ttl = Duration::from_millis(300);
    let registry = Arc::new(CachedPromptRegistry::with_alias_ttl(backend.clone(), ttl));
    let prompts = AgentPrompts {
        registry,
        system: None,
        template: Some("prompts:/qa@production".parse().unwrap()),
        variables: json!({ "audience": "beginners" })
            .as_object()
            .unwrap()
            .clone(),
    };
    let model = ScriptedChatModel::new()
        .then_text("Rust is a language.")
        .then_text("Rust is a systems language.")
        .then_text("unused");
    let requests = model.requests();
    let agent = Agent::builder("qa", Arc::new(model))
        .system_prompt("ignored: the template has a system message")
        .prompts(prompts.clone())
        .capture_content(true)
        .build();

    let first = runtime.block_on(agent.run("What is Rust?")).unwrap();
    assert_eq!(
        first.prompt_versions,
        [PromptVersionRef {
            name: "qa".into(),
            version: 1
        }]
    );
    {
        let requests = requests.lock().unwrap();
        let messages = &requests[0].messages;
        assert_eq!(messages[0].role, Role::System);
        assert_eq!(messages[0].content, "Answer concisely.");
        assert_eq!(messages[1].role, Role::User);
        assert_eq!(messages[1].content, "Q: What is Rust? (beginners)");
        assert_eq!(messages.len(), 2);
    }

    // Production moves to v2; after the TTL the running agent uses it.
    runtime
        .block_on(backend.set_alias("qa", "production", 2))
        .unwrap();
    std::thread::sleep(ttl + Duration::from_millis(50));
    let second = runtime.block_on(agent.run("What is Rust?")).unwrap();
    assert_eq!(second.prompt_versions[0].version, 2);
    assert_eq!(
        requests.lock().unwrap()[1].messages[0].content,
        "Answer in one sentence."
    );

    telemetry.force_flush().unwrap();
    let store = telemetry.trace_store().unwrap();
    for (outcome, version) in [(&first, 1), (&second, 2)] {
        let spans = store.spans(outcome.trace_id.as_deref().unwrap()).unwrap();
        let root = spans.iter().find(|s| s.parent_span_id.is_none()).unwrap();
        let prompt = spans
            .iter()
            .find(|s| s.name == "prompt qa")
            .unwrap_or_else(|| panic!("a prompt span: {spans:?}"));
        assert_eq!(
            prompt.parent_span_id.as_deref(),
            Some(root.span_id.as_str())
        );
        assert_eq!(attribute(prompt, "mlflow.spanType"), "PARSER");
        assert_eq!(attribute(prompt, "gen_ai.prompt.name"), "qa");
        assert_eq!(attribute(prompt, "sextant.prompt.version"), version);
        assert_eq!(attribute(prompt, "sextant.prompt.alias"), "production");
        assert_eq!(
            attribute(prompt, "sextant.prompt.uri"),
            format!("prompts:/qa/{version}").as_str()
        );
        assert!(
            attribute(prompt, "mlflow.spanOutputs")
                .as_str()
                .is_some_and(|o| o.contains("Q: What is Rust? (beginners)")),
            "{prompt:?}"
        );
        assert_eq!(attribute(root, "sextant.prompt.version"), version);
        let linked: Value = serde_json::from_str(
            attribute(root, "mlflow.traceTag.mlflow.linkedPrompts")
                .as_str()
                .expect("the linked-prompts trace tag"),
        )
        .unwrap();
        assert_eq!(
            linked,
            json!([{ "name": "qa", "version": version.to_string() }])
        );
        // The prompt was built before the model was called.
        let chat = spans.iter().find(|s| s.name.starts_with("chat ")).unwrap();
        assert!(prompt.end_time_unix_nano <= chat.start_time_unix_nano);
    }

    // A template variable nobody provides fails the turn, naming it, on the span too.
    let mut no_audience = prompts;
    no_audience.variables.clear();
    let agent = Agent::builder("qa", Arc::new(ScriptedChatModel::new().then_text("x")))
        .prompts(no_audience)
        .build();
    let err = runtime.block_on(agent.run("What is Rust?")).unwrap_err();
    assert!(matches!(err, AgentError::Prompt { .. }), "{err}");
    assert!(err.to_string().contains("audience"), "{err}");
    assert_eq!(err.error_type(), "template_error");
    telemetry.force_flush().unwrap();
    let latest = store.list_traces(1).unwrap();
    let spans = store.spans(&latest[0].trace_id).unwrap();
    let prompt = spans.iter().find(|s| s.name == "prompt qa").unwrap();
    assert_eq!(prompt.status.code, "error");
    assert_eq!(attribute(prompt, "error.type"), "template_error");
    assert!(
        spans.iter().all(|s| !s.name.starts_with("chat ")),
        "no model call after a failed prompt"
    );
}

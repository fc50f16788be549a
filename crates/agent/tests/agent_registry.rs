//! Agent configurations as registered models, on the embedded registries: registering pins the
//! agent's registry prompts to the versions they resolve to then; `models:/…@production` loads the
//! version the alias points at; a [`ServedAgent`] picks up a promotion within its TTL without being
//! rebuilt by hand, and keeps serving through a bad promotion target.

use std::path::Path;
use std::time::Duration;

use sextant_agent::BuildContext;
use sextant_agent::registry::{AGENT_CONFIG_ARTIFACT, AgentRegistry, ServedAgent};
use sextant_tracker::prompts::{PromptRegistry, load_prompt_files, push};

fn config(data: &Path) -> BuildContext {
    BuildContext::new(data)
}

/// An agent file on an OpenAI-compatible server that is never called here.
fn agent_file(dir: &Path, file: &str, max_steps: u32) -> std::path::PathBuf {
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            r#"# the qa agent, variant {file}
name = "qa"
description = "answers with the production QA prompt"
prompt = "prompts:/qa-prompt@production"
max_steps = {max_steps}

[model]
provider = "openai"
name = "never-called"
base_url = "http://127.0.0.1:9/v1"
"#
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn registered_agents_pin_prompts_and_serve_the_promoted_version() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir.path().join("data"));
    let prompts = config.prompt_registry().unwrap();
    let files =
        load_prompt_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/prompts"))
            .unwrap();
    push(prompts.as_ref(), &files, false).await.unwrap();
    assert_eq!(
        prompts
            .resolve_alias("qa-prompt", "production")
            .await
            .unwrap(),
        2
    );

    let registry = AgentRegistry::from_context(&config).unwrap();
    let v1 = registry
        .register(
            "qa-agent",
            &agent_file(dir.path(), "a.toml", 1),
            Some("first".into()),
        )
        .await
        .unwrap();
    let v2 = registry
        .register("qa-agent", &agent_file(dir.path(), "b.toml", 3), None)
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(v1.description.as_deref(), Some("first"));
    assert_eq!(
        v2.description.as_deref(),
        Some("answers with the production QA prompt")
    );

    // The prompt alias was pinned: moving it later does not change the registered agent.
    let loaded = registry.load(&v1).await.unwrap();
    assert_eq!(loaded.prompt.as_deref(), Some("prompts:/qa-prompt/2"));
    assert_eq!(loaded.max_steps, 1);
    prompts
        .set_alias("qa-prompt", "production", 1)
        .await
        .unwrap();
    assert_eq!(
        registry.load(&v1).await.unwrap().prompt.as_deref(),
        Some("prompts:/qa-prompt/2")
    );
    let tracking = config.tracking.tracking_store(&config.data_dir).unwrap();
    let source = tracking
        .read_artifact(v1.run_id.as_deref().unwrap(), "agent/source.toml")
        .await
        .unwrap();
    assert!(
        String::from_utf8(source)
            .unwrap()
            .contains("# the qa agent"),
        "the file as written is kept"
    );
    let run = tracking
        .get_run(v1.run_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(
        run.params.get("prompt.qa-prompt").map(String::as_str),
        Some("2")
    );
    assert!(v1.source.ends_with("/agent"), "{}", v1.source);
    assert_eq!(
        v1.tags.get("sextant.agent_config").map(String::as_str),
        Some(AGENT_CONFIG_ARTIFACT)
    );

    // Serving from the alias follows promotions after the TTL.
    registry
        .models()
        .set_alias("qa-agent", "production", 1)
        .await
        .unwrap();
    let ttl = Duration::from_millis(300);
    let served = ServedAgent::new(
        registry.clone(),
        config.clone(),
        "models:/qa-agent@production".parse().unwrap(),
        ttl,
    );
    let (agent, version) = served.current().await.unwrap();
    assert_eq!(version.version, 1);
    assert_eq!(agent.model_version(), Some("models:/qa-agent/1"));
    registry
        .models()
        .set_alias("qa-agent", "production", 2)
        .await
        .unwrap();
    assert_eq!(
        served.current().await.unwrap().1.version,
        1,
        "within the TTL"
    );
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let (agent, version) = served.current().await.unwrap();
    assert_eq!(version.version, 2);
    assert_eq!(agent.model_version(), Some("models:/qa-agent/2"));

    // A version that is not an agent configuration is refused with the reason.
    let foreign = registry
        .models()
        .create_version(
            "qa-agent",
            sextant_tracker::model_registry::NewModelVersion {
                source: "s3://elsewhere/model".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let err = registry.load(&foreign).await.unwrap_err().to_string();
    assert!(err.contains("not an agent configuration"), "{err}");
    let err = AgentRegistry::from_context(&config)
        .unwrap()
        .resolve(&"models:/nobody@production".parse().unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nobody"), "{err}");
}

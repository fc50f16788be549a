//! `sextant prompts …` and an agent run from `prompts:/qa-prompt@production`, as a user runs them:
//! on the embedded registry always, and on a real MLflow server in the `#[ignore]`d test
//! `cargo xtask test` runs, where the Python client must see the same versions and the trace
//! linked to the version used.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use sextant_testkit::{mlflow_url, python};

mod support;
use support::{json_of, ok, sextant};

/// Push, list, show, alias, diff and register against one registry (`envs` picks it).
fn prompt_commands(data: &Path, envs: &[(&str, &str)]) {
    let pushed = json_of(sextant(
        data,
        envs,
        &["prompts", "push", "configs/prompts/", "--json"],
    ));
    let registered = |report: &Value| {
        report["versions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["registered"] == true)
            .count()
    };
    let again = json_of(sextant(
        data,
        envs,
        &["prompts", "push", "configs/prompts/", "--json"],
    ));
    assert_eq!(
        registered(&again),
        0,
        "a second push changes nothing: {again}"
    );
    assert!(
        again["aliases_set"].as_array().unwrap().is_empty(),
        "{again}"
    );
    // A prompt new to the registry has every declared version registered by the first push; one
    // already there (a second run on the same server, or the judges' prompts, which `sextant eval`
    // registers on first use) keeps what it had.
    let mut per_prompt: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for version in pushed["versions"].as_array().unwrap() {
        let counts = per_prompt
            .entry(version["name"].as_str().unwrap())
            .or_default();
        counts.0 += 1;
        counts.1 += usize::from(version["registered"] == true);
    }
    for (name, (declared, registered)) in per_prompt {
        assert!(
            registered == declared || registered == 0,
            "{name}: {registered} of {declared} versions registered: {pushed}"
        );
    }

    let list = json_of(sextant(data, envs, &["prompts", "list", "--json"]));
    let qa = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "qa-prompt")
        .unwrap_or_else(|| panic!("qa-prompt listed: {list}"));
    assert_eq!(qa["aliases"]["production"], 2);
    assert_eq!(qa["tags"]["task"], "question-answering");

    let shown = json_of(sextant(
        data,
        envs,
        &["prompts", "show", "qa-prompt@production", "--json"],
    ));
    assert_eq!(shown["version"], 2);
    assert_eq!(shown["template"][1]["content"], "{{ question }}");
    let text = ok(sextant(data, envs, &["prompts", "show", "qa-prompt"]));
    assert!(
        text.contains("Initial QA prompt template") && text.contains("[production"),
        "{text}"
    );

    let diff = ok(sextant(
        data,
        envs,
        &["prompts", "diff", "qa-prompt", "1", "2"],
    ));
    assert!(
        diff.contains("--- prompts:/qa-prompt/1") && diff.contains("+++ prompts:/qa-prompt/2"),
        "{diff}"
    );
    assert!(
        diff.lines().any(|l| l
            .starts_with("-You are a helpful assistant. Answer the user's question concisely.")),
        "{diff}"
    );
    assert!(
        diff.lines().any(|l| l.starts_with(
            "+You are a helpful assistant. Answer the user's question in one plain sentence"
        )),
        "{diff}"
    );

    ok(sextant(
        data,
        envs,
        &["prompts", "alias", "qa-prompt", "staging", "1"],
    ));
    let staging = json_of(sextant(
        data,
        envs,
        &["prompts", "show", "prompts:/qa-prompt@staging", "--json"],
    ));
    assert_eq!(staging["version"], 1);
    ok(sextant(
        data,
        envs,
        &["prompts", "alias", "qa-prompt", "staging", "--delete"],
    ));
    let gone = sextant(data, envs, &["prompts", "show", "qa-prompt@staging"]);
    assert!(!gone.status.success());
    let err = String::from_utf8_lossy(&gone.stderr);
    assert!(
        err.contains("alias `staging` of prompt `qa-prompt` does not exist"),
        "{err}"
    );

    let missing = sextant(data, envs, &["prompts", "show", "qa-prompt/9"]);
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && err.contains("version 9"),
        "{err}"
    );
}

#[test]
fn prompt_commands_work_on_the_embedded_registry() {
    let data = tempfile::tempdir().unwrap();
    prompt_commands(data.path(), &[]);

    // A chat template from a JSON file, with an alias, and a text one.
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat.json");
    std::fs::write(&chat, r#"[{"role": "system", "content": "Be kind."}, {"role": "user", "content": "{{ question }}"}]"#).unwrap();
    let out = ok(sextant(
        data.path(),
        &[],
        &[
            "prompts",
            "register",
            "kind",
            "--file",
            chat.to_str().unwrap(),
            "-m",
            "first",
            "--tag",
            "team=a",
            "--alias",
            "production",
        ],
    ));
    assert!(
        out.contains("registered prompts:/kind/1") && out.contains("kind@production"),
        "{out}"
    );
    let shown = json_of(sextant(
        data.path(),
        &[],
        &["prompts", "show", "kind/1", "--json"],
    ));
    assert_eq!(shown["template"][0]["role"], "system");
    assert_eq!(shown["tags"]["team"], "a");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"role\": 1}").unwrap();
    let failed = sextant(
        data.path(),
        &[],
        &[
            "prompts",
            "register",
            "kind",
            "--file",
            bad.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success() && err.contains("bad.json"),
        "{err}"
    );
}

#[test]
fn processes_registering_at_once_get_distinct_consecutive_versions() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..6)
        .map(|i| {
            let file = dir.path().join(format!("t{i}.txt"));
            std::fs::write(&file, format!("template {i}: {{{{ question }}}}")).unwrap();
            Command::new(env!("CARGO_BIN_EXE_sextant"))
                .args(["prompts", "register", "contended", "--file"])
                .arg(&file)
                .env("SEXTANT_DATA_DIR", data.path())
                .env_remove("SEXTANT_TRACKING_URI")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        ok(child.wait_with_output().unwrap());
    }
    let shown = json_of(sextant(
        data.path(),
        &[],
        &["prompts", "show", "contended", "--json"],
    ));
    let mut versions: Vec<u64> = shown["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    let mut templates: Vec<String> = shown["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["template"].as_str().unwrap().to_owned())
        .collect();
    templates.sort();
    templates.dedup();
    assert_eq!(templates.len(), 6, "no write lost");
}

/// `sextant run --json` of the registry-prompted agent; returns the run's JSON.
fn run_qa_agent(data: &Path, envs: &[(&str, &str)]) -> Value {
    json_of(sextant(
        data,
        envs,
        &[
            "run",
            "--json",
            "--agent",
            "configs/agents/qa.toml",
            "What is Rust?",
        ],
    ))
}

#[test]
fn an_agent_runs_from_the_production_prompt_on_the_embedded_registry() {
    let data = tempfile::tempdir().unwrap();
    ok(sextant(
        data.path(),
        &[],
        &["prompts", "push", "configs/prompts/"],
    ));
    let run = run_qa_agent(data.path(), &[]);
    assert_eq!(
        run["prompt_versions"],
        json!([{ "name": "qa-prompt", "version": 2 }])
    );
    assert!(!run["answer"].as_str().unwrap().trim().is_empty());
    let trace = run["trace_id"].as_str().unwrap();
    let spans = json_of(sextant(
        data.path(),
        &[],
        &["traces", "show", trace, "--json"],
    ));
    let prompt = spans
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "prompt qa-prompt")
        .unwrap_or_else(|| panic!("a prompt span: {spans}"));
    assert_eq!(prompt["attributes"]["sextant.prompt.version"], 2);
    assert_eq!(prompt["attributes"]["sextant.prompt.alias"], "production");

    // Without the registry entry the run fails, naming the prompt.
    let empty = tempfile::tempdir().unwrap();
    let failed = sextant(
        empty.path(),
        &[],
        &["run", "--agent", "configs/agents/qa.toml", "hi"],
    );
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success() && err.contains("qa-prompt"),
        "{err}"
    );
}

const PY_SEE: &str = r#"
import json, sys, mlflow
p = mlflow.genai.load_prompt("prompts:/qa-prompt@production")
v1 = mlflow.genai.load_prompt("prompts:/qa-prompt/1")
trace = mlflow.get_trace(sys.argv[1])
print(json.dumps({"version": p.version, "template": p.template, "commit_message": p.commit_message,
                  "v1_commit": v1.commit_message,
                  "linked": json.loads(trace.info.tags.get("mlflow.linkedPrompts", "[]")),
                  "experiment": trace.info.experiment_id}))
"#;

#[test]
#[ignore = "needs a real MLflow server and its Python client: cargo xtask test"]
fn on_mlflow_python_sees_the_pushed_versions_and_the_linked_trace() {
    let url = mlflow_url();
    let data = tempfile::tempdir().unwrap();
    let experiment = format!("sextant-prompts-{}", std::process::id());
    let envs = [
        ("SEXTANT_TRACKING_URI", url.as_str()),
        ("SEXTANT_TRACKING__EXPERIMENT", experiment.as_str()),
    ];
    prompt_commands(data.path(), &envs);
    let run = run_qa_agent(data.path(), &envs);
    assert_eq!(
        run["prompt_versions"],
        json!([{ "name": "qa-prompt", "version": 2 }])
    );
    let trace = format!("tr-{}", run["trace_id"].as_str().unwrap());

    // The trace search MLflow offers by prompt version finds it (the link-prompts association).
    let client = reqwest::blocking::Client::new();
    let found: Value = client
        .get(format!("{url}/api/2.0/mlflow/experiments/get-by-name"))
        .query(&[("experiment_name", &experiment)])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let experiment_id = found["experiment"]["experiment_id"]
        .as_str()
        .expect("the experiment was created")
        .to_owned();
    let searched: Value = client
        .post(format!("{url}/api/3.0/mlflow/traces/search"))
        .json(&json!({
            "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}],
            "filter": "prompt = \"qa-prompt/2\"",
            "max_results": 10
        }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        searched["traces"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["trace_id"] == trace.as_str())),
        "{searched}"
    );

    let seen = python(&url, PY_SEE, &[&trace]);
    assert_eq!(seen["version"], 2);
    assert_eq!(seen["v1_commit"], "Initial QA prompt template");
    assert_eq!(
        seen["template"][1],
        json!({"role": "user", "content": "{{ question }}"})
    );
    assert_eq!(
        seen["linked"],
        json!([{"name": "qa-prompt", "version": "2"}])
    );
    assert_eq!(seen["experiment"], experiment_id.as_str());
}

//! `sextant run --agent configs/agents/extract.toml --json` on the embedded local model: the answer
//! is an object that follows `configs/schemas/contact.json`, checked here key by key; and an agent
//! file whose schema a provider could not honour is refused at load with the key and the place.

use serde_json::Value;

mod support;
use support::{json_of, sextant};

#[test]
fn the_extract_agent_answers_an_object_of_its_schema_on_the_local_model() {
    let data = tempfile::tempdir().unwrap();
    let outcome = json_of(sextant(
        data.path(),
        &[],
        &[
            "run",
            "--agent",
            "configs/agents/extract.toml",
            "--json",
            "Hi, I'm Ada Lovelace (ada@analytical.example) from Analytical Engines Ltd, a small \
             firm. We need help with our invoices urgently.",
        ],
    ));
    let output = &outcome["output"];
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(support::repo().join("configs/schemas/contact.json")).unwrap(),
    )
    .unwrap();
    let mut keys: Vec<&String> = output.as_object().expect("an object").keys().collect();
    keys.sort();
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    required.sort();
    assert_eq!(keys, required, "{output}");
    for key in ["name", "email"] {
        assert!(
            output[key].as_str().is_some_and(|s| !s.is_empty()),
            "{output}"
        );
    }
    let company = output["company"].as_object().expect("company");
    assert_eq!(company.len(), 2, "{output}");
    assert!(
        ["small", "medium", "large", "unknown"].contains(&company["size"].as_str().unwrap()),
        "{output}"
    );
    let topics = output["topics"].as_array().expect("topics");
    assert!((1..=3).contains(&topics.len()), "{output}");
    assert!(
        topics
            .iter()
            .all(|t| t.as_str().is_some_and(|t| t.chars().count() <= 40))
    );
    assert!(
        ["low", "normal", "high"].contains(&output["urgency"].as_str().unwrap()),
        "{output}"
    );
    // The trace says the answer was typed, and by which schema.
    let spans = json_of(sextant(
        data.path(),
        &[],
        &[
            "traces",
            "show",
            outcome["trace_id"].as_str().unwrap(),
            "--json",
        ],
    ));
    let spans = spans.as_array().unwrap();
    let attribute = |prefix: &str, key: &str| {
        spans
            .iter()
            .find(|s| s["name"].as_str().unwrap().starts_with(prefix))
            .map(|s| s["attributes"][key].clone())
    };
    assert_eq!(
        attribute("invoke_agent", "sextant.output.schema"),
        Some("contact".into())
    );
    assert_eq!(attribute("chat", "gen_ai.output.type"), Some("json".into()));
    // The answer is the value's JSON text.
    assert_eq!(
        serde_json::from_str::<Value>(outcome["answer"].as_str().unwrap()).unwrap(),
        *output
    );
}

#[test]
fn an_output_schema_outside_the_supported_subset_is_refused_at_load() {
    let data = tempfile::tempdir().unwrap();
    let agent = data.path().join("strict.toml");
    std::fs::write(
        &agent,
        "name = \"strict\"\n[model]\nprovider = \"local\"\nname = \"SmolLM2-135M-Instruct\"\n\
         [output]\nschema = { type = \"object\", properties = { id = { type = \"string\", pattern = \"^A\" } } }\n",
    )
    .unwrap();
    let output = sextant(
        data.path(),
        &[],
        &["run", "--agent", &agent.display().to_string(), "hello"],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("output.schema"), "{stderr}");
    assert!(stderr.contains("strict.toml"), "{stderr}");
    assert!(stderr.contains("/properties/id/pattern"), "{stderr}");
}

//! The production loop through the `sextant` binary: turns on two models, one of them slow, get
//! feedback from an operator (`sextant traces feedback`); `sextant traces search` with a filter on
//! duration, model and feedback returns exactly the matching traces; `sextant datasets create`
//! turns them into a versioned dataset linked to its traces, and `sextant eval --dataset
//! datasets:/NAME` runs it end to end. Chat spans of the priced model carry a cost, and the
//! trace's total is the sum of its spans'. The model is the scripted OpenAI-compatible server.

use std::path::Path;

use serde_json::Value;
use sextant_testkit::scripted_model::{Reply, ScriptedModelServer};

mod support;
use support::{json_of, ok, sextant};

/// An agent file answering with the scripted server under the model name `model`.
fn agent_file(dir: &Path, name: &str, url: &str, model: &str) -> String {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\nsystem_prompt = \"You are a helpful assistant.\"\ntools = []\n\n\
             [model]\nprovider = \"openai\"\nname = \"{model}\"\nbase_url = \"{url}\"\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn run_turn(data: &Path, envs: &[(&str, &str)], agent: &str, question: &str) -> String {
    let outcome = json_of(sextant(
        data,
        envs,
        &["run", "--agent", agent, "--json", question],
    ));
    outcome["trace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no trace id: {outcome}"))
        .to_owned()
}

fn search(data: &Path, envs: &[(&str, &str)], filter: &str) -> Vec<String> {
    let page = json_of(sextant(data, envs, &["traces", "search", filter, "--json"]));
    page["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn search_by_duration_model_and_feedback_makes_a_dataset_that_evaluates() {
    let data = tempfile::tempdir().unwrap();
    let prices = data.path().join("prices.toml");
    // Per million tokens; `scripted-slow` has no price.
    std::fs::write(
        &prices,
        "currency = \"USD\"\nas_of = \"2026-12-03\"\n[[models]]\nmodel = \"scripted\"\n\
         input = 1.0\ncached_input = 0.5\noutput = 2.0\n",
    )
    .unwrap();
    // Lives as long as the test (the blocking tasks below borrow it).
    let prices: &'static str = Box::leak(prices.display().to_string().into_boxed_str());
    let envs = [("SEXTANT_PRICES__FILE", prices)];
    let model = ScriptedModelServer::start(vec![
        Reply::text("Paris."),
        Reply::text("Berlin."),
        Reply::text("Madrid.").after_ms(700),
        Reply::text("Rome.").after_ms(700),
        // The evaluation's turns.
        Reply::text("Paris."),
        Reply::text("Madrid."),
    ])
    .await;
    let fast = agent_file(data.path(), "fast", &model.url, "scripted");
    let slow = agent_file(data.path(), "slow", &model.url, "scripted-slow");
    let d = data.path().to_owned();
    let (paris, berlin, madrid, rome) = tokio::task::spawn_blocking(move || {
        (
            run_turn(&d, &envs, &fast, "Capital of France?"),
            run_turn(&d, &envs, &fast, "Capital of Germany?"),
            run_turn(&d, &envs, &slow, "Capital of Spain?"),
            run_turn(&d, &envs, &slow, "Capital of Italy?"),
        )
    })
    .await
    .unwrap();

    let d = data.path().to_owned();
    let ids = [paris.clone(), berlin.clone(), madrid.clone(), rome.clone()];
    let outcome = tokio::task::spawn_blocking(move || {
        // Thumbs down on Paris and Madrid, up on Rome.
        for (id, value) in [(&ids[0], "false"), (&ids[2], "false"), (&ids[3], "true")] {
            let said = ok(sextant(
                &d,
                &envs,
                &[
                    "traces",
                    "feedback",
                    &id[..12],
                    "thumbs",
                    value,
                    "--by",
                    "reviewer",
                ],
            ));
            assert!(said.contains("HUMAN"), "{said}");
        }
        let bad = sextant(&d, &envs, &["traces", "feedback", &ids[0], " ", "true"]);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("`name` is empty"));

        let slow_and_down = search(
            &d,
            &envs,
            "duration_ms > 500 and attributes.gen_ai.request.model = 'scripted-slow' \
             and feedback.thumbs = false",
        );
        let fast_and_down = search(
            &d,
            &envs,
            "duration_ms < 500 and attributes.gen_ai.request.model = 'scripted' \
             and feedback.thumbs = false",
        );
        let all = search(&d, &envs, "");
        let refused = sextant(&d, &envs, &["traces", "search", "duration > 5"]);

        // Cost: the priced model's chat span and the trace total; the unpriced one has none.
        let spans = json_of(sextant(&d, &envs, &["traces", "show", &ids[0], "--json"]));
        let summary = json_of(sextant(
            &d,
            &envs,
            &[
                "traces",
                "search",
                &format!("trace_id = '{}'", ids[0]),
                "--json",
            ],
        ));
        let slow_summary = json_of(sextant(
            &d,
            &envs,
            &[
                "traces",
                "search",
                &format!("trace_id = '{}'", ids[2]),
                "--json",
            ],
        ));

        let created = ok(sextant(
            &d,
            &envs,
            &[
                "datasets",
                "create",
                "down",
                "--from-traces",
                "feedback.thumbs = false",
            ],
        ));
        let again = ok(sextant(
            &d,
            &envs,
            &[
                "datasets",
                "create",
                "down",
                "--from-traces",
                "feedback.thumbs = false",
            ],
        ));
        let rows = json_of(sextant(
            &d,
            &envs,
            &["datasets", "show", "down/1", "--json"],
        ));
        let eval = sextant(
            &d,
            &envs,
            &[
                "eval",
                "--dataset",
                "datasets:/down",
                "--agent",
                &d.join("fast.toml").display().to_string(),
                "--scorers",
                "is_concise:5",
                "--json",
            ],
        );
        (
            slow_and_down,
            fast_and_down,
            all,
            refused,
            spans,
            summary,
            slow_summary,
            created,
            again,
            rows,
            eval,
        )
    })
    .await
    .unwrap();
    let (
        slow_and_down,
        fast_and_down,
        all,
        refused,
        spans,
        summary,
        slow_summary,
        created,
        again,
        rows,
        eval,
    ) = outcome;

    assert_eq!(
        slow_and_down,
        std::slice::from_ref(&madrid),
        "slow, scripted-slow, thumbs down"
    );
    assert_eq!(
        fast_and_down,
        std::slice::from_ref(&paris),
        "fast, scripted, thumbs down"
    );
    assert_eq!(
        all,
        [rome, madrid.clone(), berlin, paris.clone()],
        "newest first"
    );
    assert!(!refused.status.success());
    let refusal = String::from_utf8_lossy(&refused.stderr);
    assert!(
        refusal.contains("`duration` is not a trace field"),
        "{refusal}"
    );

    let chats: Vec<&Value> = spans
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["attributes"]["gen_ai.operation.name"] == "chat")
        .collect();
    assert_eq!(chats.len(), 1);
    let chat = &chats[0]["attributes"];
    assert_eq!(chat["gen_ai.usage.cache_read.input_tokens"], 8);
    assert_eq!(chat["gen_ai.usage.reasoning.output_tokens"], 4);
    // 12 uncached input tokens at 1.0, 8 cached at 0.5, 10 output at 2.0, per million.
    let cost = chat["sextant.usage.cost"].as_f64().unwrap();
    assert!((cost - 36e-6).abs() < 1e-12, "{cost}");
    assert_eq!(chat["sextant.usage.cost.currency"], "USD");
    let mlflow_cost: Value =
        serde_json::from_str(chat["mlflow.llm.cost"].as_str().unwrap()).unwrap();
    assert!((mlflow_cost["total_cost"].as_f64().unwrap() - 36e-6).abs() < 1e-12);
    let span_sum: f64 = chats
        .iter()
        .filter_map(|s| s["attributes"]["sextant.usage.cost"].as_f64())
        .sum();
    let total = summary["traces"][0]["cost"].as_f64().unwrap();
    assert!((total - span_sum).abs() < 1e-12, "{total} vs {span_sum}");
    assert!(
        slow_summary["traces"][0].get("cost").is_none(),
        "no price is not 0: {slow_summary}"
    );

    assert!(created.contains("datasets:/down/1: 2 rows"), "{created}");
    assert!(
        again.contains("datasets:/down/1"),
        "same rows, same version: {again}"
    );
    let rows = rows["rows"].as_array().unwrap();
    let questions: Vec<&str> = rows
        .iter()
        .map(|r| r["inputs"]["question"].as_str().unwrap())
        .collect();
    assert_eq!(questions, ["Capital of Spain?", "Capital of France?"]);
    assert_eq!(rows[0]["source_trace"], madrid.as_str());
    assert_eq!(rows[1]["source_trace"], paris.as_str());

    let report = json_of(eval);
    assert_eq!(report["rows"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["scorers"]["is_concise"]["judged"], 2, "{report}");
    assert!(
        (report["cost"].as_f64().unwrap() - 2.0 * 36e-6).abs() < 1e-12,
        "{report}"
    );
}

const PY_DATASET: &str = r#"
import json, sys, mlflow
from mlflow.genai.datasets import get_dataset
ds = get_dataset(dataset_id=sys.argv[1])
print(json.dumps({
    "id": ds.dataset_id,
    "records": [
        {"inputs": r["inputs"], "expectations": r["expectations"],
         "source": r["source_type"], "trace": r["source_id"]}
        for r in ds.to_df().to_dict("records")
    ],
}))
"#;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real MLflow server and its Python client: cargo xtask test"]
async fn on_mlflow_a_dataset_from_traces_is_an_mlflow_evaluation_dataset() {
    let url = sextant_testkit::mlflow_url();
    let experiment = format!("sextant-datasets-{}", std::process::id());
    let data = tempfile::tempdir().unwrap();
    let model = ScriptedModelServer::start(vec![
        Reply::text("Paris."),
        Reply::text("Berlin."),
        // The evaluation of the dataset read back from MLflow.
        Reply::text("Paris."),
    ])
    .await;
    let agent = agent_file(data.path(), "fast", &model.url, "scripted");
    let d = data.path().to_owned();
    let (url2, experiment2) = (url.clone(), experiment.clone());
    // Names of MLflow datasets are looked up across experiments: one of this run's own.
    let name = format!("liked-{}", std::process::id());
    let name2 = name.clone();
    let (paris, created, evaluated) = tokio::task::spawn_blocking(move || {
        let envs = [
            ("SEXTANT_TRACKING_URI", url2.as_str()),
            ("SEXTANT_TRACKING__EXPERIMENT", experiment2.as_str()),
        ];
        let paris = run_turn(&d, &envs, &agent, "Capital of France?");
        run_turn(&d, &envs, &agent, "Capital of Germany?");
        ok(sextant(
            &d,
            &envs,
            &["traces", "feedback", &paris, "thumbs", "true"],
        ));
        let created = ok(sextant(
            &d,
            &envs,
            &[
                "datasets",
                "create",
                &name2,
                "--from-traces",
                "feedback.thumbs = true",
                "--expected",
                "answer",
            ],
        ));
        // Another machine, without the local copy, reads it from MLflow.
        let elsewhere = tempfile::tempdir().unwrap();
        let evaluated = json_of(sextant(
            elsewhere.path(),
            &envs,
            &[
                "eval",
                "--dataset",
                &format!("datasets:/{name2}"),
                "--agent",
                &agent,
                "--scorers",
                "exact_match",
                "--json",
            ],
        ));
        (paris, created, evaluated)
    })
    .await
    .unwrap();
    let dataset_id = created
        .split_whitespace()
        .find(|word| word.starts_with("d-"))
        .unwrap_or_else(|| panic!("no MLflow dataset id in: {created}"));
    let seen = sextant_testkit::python(&url, PY_DATASET, &[dataset_id]);
    assert!(seen["id"] == dataset_id, "{seen} (in {experiment}, {name})");
    let records = seen["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{seen}");
    assert_eq!(records[0]["inputs"]["question"], "Capital of France?");
    assert_eq!(records[0]["expectations"]["expected_response"], "Paris.");
    assert_eq!(records[0]["source"], "TRACE");
    assert_eq!(records[0]["trace"], format!("tr-{paris}"));
    assert_eq!(
        evaluated["rows"].as_array().unwrap().len(),
        1,
        "{evaluated}"
    );
    assert_eq!(
        evaluated["scorers"]["exact_match"]["pass_rate"], 1.0,
        "{evaluated}"
    );
}

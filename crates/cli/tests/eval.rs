//! `sextant eval` on the embedded model: a small dataset answered and scored by code scorers and
//! LLM judges (the local model judging through its schema-constrained verdict tool), logged as a
//! tracking run with every score an assessment of its row's trace; two runs compared with
//! `sextant eval compare`; on MLflow, the Python client reads the run and the assessments; bad
//! datasets, unknown scorers and unknown runs are named.

mod support;
use std::collections::BTreeSet;

use serde_json::Value;
use sextant_testkit::local_agent_file as agent_file;
use sextant_testkit::{mlflow_url, python};
use sextant_tracker::local::LocalTrackingStore;
use sextant_tracker::tracking::{
    JUDGE_INPUT_TOKENS_KEY, SCORER_TRACE_ID_KEY, SOURCE_RUN_ID_KEY, TrackingStore,
};
use support::{json_of, sextant};

const DATASET: &str = concat!(
    r#"{"inputs": {"question": "What is the capital of France?"}, "expectations": {"expected_response": "Paris is the capital of France."}}"#,
    "\n",
    r#"{"inputs": {"question": "What color is the sky on a clear day?"}, "expectations": {"expected_response": "Blue.", "guidelines": ["Answer in English."]}}"#,
    "\n",
);

#[test]
fn an_eval_scores_every_row_with_code_and_judges_and_logs_a_run() {
    let data = tempfile::tempdir().unwrap();
    agent_file(data.path(), "tiny", 24);
    let dataset = data.path().join("qa.jsonl");
    std::fs::write(&dataset, DATASET).unwrap();
    let agent = data.path().join("tiny.toml");
    let report = json_of(sextant(
        data.path(),
        &[],
        &[
            "eval",
            "--agent",
            agent.to_str().unwrap(),
            "--dataset",
            dataset.to_str().unwrap(),
            "--scorers",
            "is_concise:40,exact_match,correctness,guidelines",
            "--experiment",
            "evals",
            "--json",
        ],
    ));
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert!(!row["answer"].as_str().unwrap().trim().is_empty());
        assert_eq!(row["trace_id"].as_str().unwrap().len(), 32);
        for name in ["is_concise", "exact_match", "correctness"] {
            let score = &row["scores"][name];
            assert!(
                score["value"].is_boolean(),
                "{name} judged row {}: {score}",
                row["row"]
            );
        }
        // The judge's verdict came back through the verdict tool, with its reason.
        assert_eq!(row["scores"]["correctness"]["source"], "LLM_JUDGE");
        assert!(
            !row["scores"]["correctness"]["rationale"]
                .as_str()
                .unwrap_or("")
                .is_empty()
        );
        assert_eq!(row["scores"]["is_concise"]["source"], "CODE");
    }
    // Row 1 has no guidelines: an error on that row, not a pass.
    let missing = &rows[0]["scores"]["guidelines"];
    assert!(missing["value"].is_null());
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .contains("needs guidelines"),
        "{missing}"
    );
    assert!(rows[1]["scores"]["guidelines"]["value"].is_boolean());
    assert_eq!(report["scorers"]["guidelines"]["errors"], 1);
    assert_eq!(report["dataset_digest"].as_str().unwrap().len(), 16);

    // The run: parameters naming the dataset exactly, the aggregates, the results artifact.
    let run_id = report["run_id"].as_str().expect("a run was logged");
    let shown = json_of(sextant(
        data.path(),
        &[],
        &["runs", "show", run_id, "--json"],
    ));
    let run = &shown["run"];
    assert_eq!(run["params"]["dataset_digest"], report["dataset_digest"]);
    assert_eq!(run["tags"]["sextant.kind"], "evaluation");
    // The dataset is an input of the run: name, digest, the file, the row count.
    let input = &run["inputs"][0];
    assert_eq!(input["name"], "qa");
    assert_eq!(input["digest"], report["dataset_digest"]);
    assert_eq!(input["context"], "evaluation");
    assert!(
        input["source"].as_str().unwrap().contains("qa.jsonl"),
        "{input}"
    );
    assert!(
        input["profile"]
            .as_str()
            .unwrap()
            .contains("\"num_rows\":2"),
        "{input}"
    );
    assert!(
        run["metrics"]["correctness/pass_rate"]["value"].is_number(),
        "{run}"
    );
    assert_eq!(run["metrics"]["rows"]["value"], 2.0);
    let artifact = data
        .path()
        .join("artifacts")
        .read_dir()
        .unwrap()
        .flatten()
        .flat_map(|exp| {
            std::fs::read_dir(exp.path().join(run_id).join("artifacts"))
                .into_iter()
                .flatten()
        })
        .flatten()
        .find(|f| f.file_name() == "eval_results.json")
        .expect("the results artifact");
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(artifact.path()).unwrap()).unwrap();
    assert_eq!(results["rows"].as_array().unwrap().len(), 2);

    // The judges' prompts are in the registry: the exact versions that judged.
    let prompt = json_of(sextant(
        data.path(),
        &[],
        &["prompts", "show", "judge-correctness@production", "--json"],
    ));
    assert_eq!(prompt["version"], 1, "{prompt}");

    // Every score is an assessment of its row's trace, with its source and the run it came from.
    let store = LocalTrackingStore::open(data.path()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for row in rows {
        let trace = row["trace_id"].as_str().unwrap();
        let assessments = runtime.block_on(store.trace_assessments(trace)).unwrap();
        let names: BTreeSet<&str> = assessments.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            BTreeSet::from(["correctness", "exact_match", "guidelines", "is_concise"]),
            "row {}",
            row["row"]
        );
        for a in &assessments {
            let score = &row["scores"][&a.name];
            assert_eq!(a.value.as_ref().unwrap_or(&Value::Null), &score["value"]);
            assert_eq!(a.source.source_type.as_str(), score["source"]);
            assert_eq!(a.error.is_some(), score["error"].is_string(), "{a:?}");
            assert_eq!(
                a.rationale.as_ref(),
                score["rationale"].as_str().map(str::to_owned).as_ref()
            );
            assert_eq!(
                a.metadata.get(SOURCE_RUN_ID_KEY).map(String::as_str),
                Some(run_id)
            );
            let expected_source = if a.name == "correctness" || a.name == "guidelines" {
                "SmolLM2-135M-Instruct"
            } else {
                a.name.as_str()
            };
            assert_eq!(a.source.source_id, expected_source);
        }
        // The correctness judge's cost and its own trace ride on its assessment.
        let judged = assessments
            .iter()
            .find(|a| a.name == "correctness")
            .unwrap();
        let tokens: u64 = judged.metadata[JUDGE_INPUT_TOKENS_KEY].parse().unwrap();
        assert!(tokens > 0, "{judged:?}");
        let judge_trace = judged.metadata[SCORER_TRACE_ID_KEY].trim_start_matches("tr-");
        assert_ne!(judge_trace, trace, "the judge's call is a trace of its own");
        let judge_tree = support::ok(sextant(data.path(), &[], &["traces", "show", judge_trace]));
        assert!(
            judge_tree.contains("score correctness") && judge_tree.contains("chat SmolLM2"),
            "{judge_tree}"
        );
    }
    // `sextant traces show` lists them beneath the tree.
    let shown = support::ok(sextant(
        data.path(),
        &[],
        &["traces", "show", rows[1]["trace_id"].as_str().unwrap()],
    ));
    let after_tree = shown
        .split("assessments")
        .nth(1)
        .expect("an assessments section");
    assert!(
        after_tree.contains("correctness") && after_tree.contains("LLM_JUDGE"),
        "{shown}"
    );

    // A second evaluation with another system prompt, compared with the first.
    let second = json_of(sextant(
        data.path(),
        &[],
        &[
            "eval",
            "--agent",
            agent.to_str().unwrap(),
            "--dataset",
            dataset.to_str().unwrap(),
            "--system-prompt",
            "Reply with one word.",
            "--scorers",
            "is_concise:40,exact_match",
            "--experiment",
            "evals",
            "--json",
        ],
    ));
    let second_id = second["run_id"].as_str().unwrap();
    let chart = data.path().join("chart.html");
    let comparison = json_of(sextant(
        data.path(),
        &[],
        &[
            "eval",
            "compare",
            run_id,
            second_id,
            "--html",
            chart.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(comparison["same_dataset"], true);
    assert_eq!(comparison["matched_rows"], 2);
    let scorers: BTreeSet<&str> = comparison["scorers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        scorers,
        BTreeSet::from(["correctness", "exact_match", "guidelines", "is_concise"])
    );
    let concise = comparison["scorers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "is_concise")
        .unwrap();
    assert_eq!(
        concise["pass_rate_a"],
        report["scorers"]["is_concise"]["pass_rate"]
    );
    assert_eq!(
        concise["pass_rate_b"],
        second["scorers"]["is_concise"]["pass_rate"]
    );
    // The changed verdicts are exactly the rows whose pass/fail differs between the reports.
    let verdict = |row: &Value, name: &str| match row["scores"][name]["value"].as_bool() {
        Some(true) => "pass",
        Some(false) => "fail",
        None => "error",
    };
    let mut expected = BTreeSet::new();
    for (a, b) in rows.iter().zip(second["rows"].as_array().unwrap()) {
        for name in ["is_concise", "exact_match"] {
            if verdict(a, name) != verdict(b, name) {
                expected.insert((a["row"].as_u64().unwrap(), name.to_owned()));
            }
        }
    }
    let changed: BTreeSet<(u64, String)> = comparison["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["row"].as_u64().unwrap(),
                c["scorer"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(changed, expected);
    let html = std::fs::read_to_string(&chart).expect("the chart was written");
    assert!(html.contains("<svg") && html.contains(run_id) && html.contains(second_id));
    // The text form names the setting that differs.
    let text = support::ok(sextant(
        data.path(),
        &[],
        &["eval", "compare", run_id, second_id, "--no-html"],
    ));
    assert!(
        text.contains("system_prompt: - -> Reply with one word."),
        "{text}"
    );
    assert!(text.contains("is_concise"), "{text}");
}

const PY_ASSESSMENTS: &str = r#"
import json, sys, mlflow
from mlflow import MlflowClient
run_id, traces = sys.argv[1], sys.argv[2:]
c = MlflowClient()
run = c.get_run(run_id)
datasets = [{
    "name": d.dataset.name, "digest": d.dataset.digest, "source_type": d.dataset.source_type,
    "source": d.dataset.source, "context": {t.key: t.value for t in d.tags}.get("mlflow.data.context"),
} for d in run.inputs.dataset_inputs]
seen = {}
for t in traces:
    trace = mlflow.get_trace(t)
    seen[t] = [{
        "name": a.name, "source_type": a.source.source_type, "source_id": a.source.source_id,
        "value": a.value, "rationale": a.rationale,
        "error": a.error.error_code if a.error else None,
        "run": a.metadata.get("mlflow.assessment.sourceRunId"),
    } for a in trace.info.assessments]
linked = mlflow.search_traces(locations=[run.info.experiment_id], run_id=run_id, return_type="list")
print(json.dumps({
    "status": run.info.status, "params": run.data.params, "metrics": run.data.metrics,
    "assessments": seen, "linked": [t.info.trace_id for t in linked], "datasets": datasets,
}))
"#;

#[test]
#[ignore = "needs a real MLflow server and its Python client: cargo xtask test"]
fn on_mlflow_python_sees_the_eval_run_and_the_assessments_on_its_traces() {
    let url = mlflow_url();
    let data = tempfile::tempdir().unwrap();
    agent_file(data.path(), "tiny", 24);
    let dataset = data.path().join("qa.jsonl");
    std::fs::write(&dataset, DATASET).unwrap();
    let agent = data.path().join("tiny.toml");
    let experiment = format!("sextant-eval-{}", std::process::id());
    let report = json_of(sextant(
        data.path(),
        &[("SEXTANT_TRACKING_URI", url.as_str())],
        &[
            "eval",
            "--agent",
            agent.to_str().unwrap(),
            "--dataset",
            dataset.to_str().unwrap(),
            "--scorers",
            "is_concise:40,correctness,guidelines",
            "--experiment",
            &experiment,
            "--json",
        ],
    ));
    let run_id = report["run_id"].as_str().expect("a run on MLflow");
    let traces: Vec<String> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("tr-{}", r["trace_id"].as_str().unwrap()))
        .collect();
    let mut args = vec![run_id];
    args.extend(traces.iter().map(String::as_str));
    let seen = python(&url, PY_ASSESSMENTS, &args);
    assert_eq!(seen["status"], "FINISHED");
    assert_eq!(seen["params"]["dataset_digest"], report["dataset_digest"]);
    assert!(
        seen["metrics"]["is_concise/pass_rate"].is_number(),
        "{seen}"
    );
    for (trace, row) in traces.iter().zip(report["rows"].as_array().unwrap()) {
        assert!(
            seen["linked"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == trace.as_str()),
            "{trace} is linked to the run: {seen}"
        );
        let assessments = seen["assessments"][trace].as_array().unwrap();
        let names: BTreeSet<&str> = assessments
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["correctness", "guidelines", "is_concise"]),
            "{seen}"
        );
        for a in assessments {
            let name = a["name"].as_str().unwrap();
            let score = &row["scores"][name];
            assert_eq!(a["source_type"], score["source"], "{a}");
            assert_eq!(a["run"], run_id);
            assert_eq!(a["value"], score["value"], "{a}");
            assert_eq!(a["error"].is_string(), score["error"].is_string(), "{a}");
        }
    }
    // Row 1 has no guidelines: MLflow holds the error, not a verdict.
    let first = seen["assessments"][&traces[0]].as_array().unwrap();
    let guidelines = first.iter().find(|a| a["name"] == "guidelines").unwrap();
    assert_eq!(guidelines["error"], "SCORER_ERROR");
    assert!(guidelines["value"].is_null());

    // `sextant traces show` reads them back from MLflow beneath the local tree.
    let shown = support::ok(sextant(
        data.path(),
        &[("SEXTANT_TRACKING_URI", url.as_str())],
        &[
            "traces",
            "show",
            report["rows"][1]["trace_id"].as_str().unwrap(),
        ],
    ));
    let listed = shown
        .split("assessments")
        .nth(1)
        .expect("an assessments section");
    for name in ["correctness", "guidelines", "is_concise"] {
        assert!(listed.contains(name), "{shown}");
    }
}

#[test]
fn comparing_a_run_that_is_not_an_evaluation_is_named() {
    let data = tempfile::tempdir().unwrap();
    let output = sextant(
        data.path(),
        &[],
        &[
            "eval",
            "compare",
            "0123456789abcdef0123456789abcdef",
            "feedfacefeedfacefeedfacefeedface",
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("0123456789abcdef0123456789abcdef") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[test]
fn bad_datasets_and_unknown_scorers_are_named() {
    let data = tempfile::tempdir().unwrap();
    let dataset = data.path().join("bad.jsonl");
    std::fs::write(
        &dataset,
        "{\"inputs\": {\"question\": \"ok\"}}\n{\"inputs\": {}}\n",
    )
    .unwrap();
    let output = sextant(
        data.path(),
        &[],
        &["eval", "--dataset", dataset.to_str().unwrap(), "--no-log"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("bad.jsonl, row 2") && stderr.contains("names no question"),
        "{stderr}"
    );

    std::fs::write(&dataset, "{\"inputs\": {\"question\": \"ok\"}}\n").unwrap();
    let output = sextant(
        data.path(),
        &[],
        &[
            "eval",
            "--dataset",
            dataset.to_str().unwrap(),
            "--scorers",
            "is_concise,vibes",
            "--no-log",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("unknown scorer `vibes`") && stderr.contains("correctness"),
        "{stderr}"
    );
}

#[test]
fn with_the_tracking_server_down_the_run_and_its_assessments_wait_in_the_spool() {
    let data = tempfile::tempdir().unwrap();
    agent_file(data.path(), "tiny", 16);
    let dataset = data.path().join("qa.jsonl");
    std::fs::write(&dataset, DATASET.lines().next().unwrap()).unwrap();
    let agent = data.path().join("tiny.toml");
    // Nothing listens on the discard port: an outage from the first call.
    let output = sextant(
        data.path(),
        &[("SEXTANT_TRACKING_URI", "http://127.0.0.1:9")],
        &[
            "eval",
            "--agent",
            agent.to_str().unwrap(),
            "--dataset",
            dataset.to_str().unwrap(),
            "--scorers",
            "is_concise,exact_match",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("run spooled"), "{stderr}");
    // The spool holds the run's writes, the dataset input and one assessment per scorer.
    let spooled: String = std::fs::read_dir(data.path().join("spool"))
        .unwrap()
        .flatten()
        .filter(|f| f.path().extension().is_some_and(|e| e == "jsonl"))
        .map(|f| std::fs::read_to_string(f.path()).unwrap())
        .collect();
    let ops: Vec<Value> = spooled
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| line.get("op").cloned())
        .collect();
    let assessed: BTreeSet<&str> = ops
        .iter()
        .filter(|op| op["op"] == "assessment")
        .map(|op| op["assessment"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        assessed,
        BTreeSet::from(["exact_match", "is_concise"]),
        "{spooled}"
    );
    assert!(ops.iter().any(|op| op["op"] == "inputs"), "{spooled}");
    assert!(ops.iter().any(|op| op["op"] == "end"), "{spooled}");
}

//! `sextant eval` on the embedded model: a small dataset answered and scored by code scorers and
//! LLM judges (the local model judging through its schema-constrained verdict tool), logged as a
//! tracking run; bad datasets and unknown scorers are named.

mod support;
use support::service::agent_file;
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

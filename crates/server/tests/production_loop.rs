//! The production loop in the service, in-process: a monitor judges every finished turn in the
//! background and its score lands on the turn's trace (an assessment, a `gen_ai.evaluation.result`
//! event, `/metrics`); a turn's owner gives feedback on it and nobody else can; trace search is
//! scoped to the caller and finds turns by their feedback; the priced model's turns carry a cost.
//! The model is the scripted OpenAI-compatible server.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sextant_server::monitors::MonitorConfig;
use sextant_server::{Role, Server};
use sextant_testkit::scripted_model::{Reply, ScriptedModelServer};

mod support;
use support::{add_key, authorized as request, oneshot, prices_file, settings, shared_with};

/// `filter` as a query string value (percent-encoded).
fn query(filter: &str) -> String {
    filter
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn monitors_feedback_search_and_cost_in_the_service() {
    let prices = prices_file();
    let shared = shared_with(&[("SEXTANT_PRICES__FILE", prices.as_str())], |b| b);
    let model = ScriptedModelServer::start(vec![
        Reply::text("It is 42."),
        Reply::text("After a great deal of careful thought, the answer is forty-two."),
    ])
    .await;
    sextant_testkit::scripted_agent_file(&shared.agents, "answers", &model.url, &[], "");
    let mut settings = settings();
    let alice = add_key(&mut settings, "alice", &[Role::User]);
    let bob = add_key(&mut settings, "bob", &[Role::User]);
    settings.monitors = vec![MonitorConfig {
        scorer: "is_concise:5".into(),
        sample: 1.0,
        filter: "agent = 'answers'".into(),
        judge: None,
    }];
    let server = Server::with_settings(shared.runtime.clone(), settings).unwrap();

    let mut traces = Vec::new();
    for question in ["What is 6 * 7?", "And again?"] {
        let (status, answer) = oneshot(
            &server,
            request(
                "POST",
                "/v1/agents/answers/invoke",
                &alice,
                Some(json!({"input": question})),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        traces.push(answer["trace_id"].as_str().unwrap().to_owned());
    }
    let (short, long) = (&traces[0], &traces[1]);

    // Feedback: only the trace's owner may give it, and it must be well formed.
    let thumbs_down = json!({"name": "thumbs", "value": false, "rationale": "wrong unit"});
    let feedback = |trace: &str| format!("/v1/traces/{trace}/feedback");
    let (status, _) = oneshot(
        &server,
        request("POST", &feedback(short), &bob, Some(thumbs_down.clone())),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "bob does not own the turn");
    let (status, body) = oneshot(
        &server,
        request(
            "POST",
            &feedback(short),
            &alice,
            Some(json!({"name": "thumbs", "value": null})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("not null"), "{body}");
    let (status, body) = oneshot(
        &server,
        request("POST", &feedback(short), &alice, Some(thumbs_down)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["source"]["source_type"], "HUMAN");
    assert_eq!(body["source"]["source_id"], "alice");

    // The monitor's verdicts arrive on their own: the short answer passes, the long one fails.
    let search = |filter: &str, key: &str| {
        request(
            "GET",
            &format!("/v1/traces?filter={}", query(filter)),
            key,
            None,
        )
    };
    let started = Instant::now();
    loop {
        let (_, passed) = oneshot(&server, search("assessments.is_concise = true", &alice)).await;
        let (_, failed) = oneshot(&server, search("assessments.is_concise = false", &alice)).await;
        let ids = |page: &Value| -> Vec<String> {
            page["traces"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .map(|t| t["trace_id"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        if ids(&passed) == [short.clone()] && ids(&failed) == [long.clone()] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the monitor did not judge both turns: {passed} {failed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Search is scoped: alice finds her thumbs-down, bob finds nothing of hers.
    let (status, mine) = oneshot(&server, search("feedback.thumbs = false", &alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["traces"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine["traces"][0]["trace_id"], short.as_str());
    let (_, theirs) = oneshot(&server, search("", &bob)).await;
    assert_eq!(theirs["traces"].as_array().unwrap().len(), 0, "{theirs}");
    let (status, refused) = oneshot(&server, search("durationms > 1", &alice)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused
            .to_string()
            .contains("`durationms` is not a trace field")
    );

    // The priced model's turn costs what its chat span says, and the trace sums its spans.
    let cost = mine["traces"][0]["cost"]
        .as_f64()
        .expect("a priced turn has a cost");
    assert!((cost - 36e-6).abs() < 1e-12, "{cost}");

    // The score is a gen_ai.evaluation.result event in the turn's own trace.
    let started = Instant::now();
    let event = loop {
        let (_, trace) = oneshot(
            &server,
            request("GET", &format!("/v1/traces/{long}"), &alice, None),
        )
        .await;
        let found = trace["spans"].as_array().and_then(|spans| {
            spans
                .iter()
                .find(|s| s["name"] == "evaluation is_concise")
                .cloned()
        });
        if let Some(span) = found {
            break span;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{trace}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        event["events"][0]["name"], "gen_ai.evaluation.result",
        "{event}"
    );
    let attributes = &event["events"][0]["attributes"];
    assert_eq!(attributes["gen_ai.evaluation.name"], "is_concise");
    assert_eq!(attributes["gen_ai.evaluation.score.label"], "fail");
    assert_eq!(attributes["gen_ai.evaluation.score.value"], 0.0);

    let response = {
        use tower::ServiceExt;
        server
            .router()
            .oneshot(
                Request::builder()
                    .uri("/metrics")
                    .header("host", "127.0.0.1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
    };
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(text.contains("sextant_monitor_results"), "{text}");
    assert!(text.contains("sextant_monitor_pass_rate"), "{text}");
}

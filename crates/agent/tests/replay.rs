//! Deterministic replay of a recorded turn: an unchanged agent replays it without one model call
//! and matches; a changed system prompt or tool list is reported at the first model call it
//! changes, with a diff; a turn that is not a complete recording is refused with the reason.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sextant_agent::approval::{Approval, ToolPolicy};
use sextant_agent::replay::{Divergence, replay};
use sextant_agent::testing::ScriptedChatModel;
use sextant_agent::turn_state::TurnState;
use sextant_agent::turn_store::{Checkpoints, SqliteTurnStore, TurnStore};
use sextant_agent::{Agent, AgentBuilder};
use sextant_tools::ToolSet;
use sextant_tools::builtin::{Calculator, CurrentTime};

fn agent(model: ScriptedChatModel, prompt: &str, tools: ToolSet) -> AgentBuilder {
    Agent::builder("counter", Arc::new(model))
        .system_prompt(prompt)
        .tools(tools)
}

/// A completed turn, recorded in a fresh store: the calculator's 87, then the answer.
async fn recorded() -> (tempfile::TempDir, TurnState) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn TurnStore> =
        Arc::new(SqliteTurnStore::open(dir.path().join("sessions.db")).unwrap());
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[("calculator", r#"{"expression": "12 * 7 + 3"}"#)])
        .then_text("It is 87.");
    let recording = agent(model, "You count.", ToolSet::new().with(Calculator))
        .checkpoints(Checkpoints::new(store.clone()))
        .build();
    let outcome = recording.run("What is 12 * 7 + 3?").await.unwrap();
    assert_eq!(outcome.answer, "It is 87.");
    let state = store.load(&outcome.turn_id.unwrap()).await.unwrap();
    (dir, state)
}

/// A model that must not be called: a replay serves every response from the recording.
fn unused_model() -> ScriptedChatModel {
    ScriptedChatModel::new()
}

#[tokio::test]
async fn an_unchanged_agent_replays_its_turn_without_a_model_call() {
    let (_dir, state) = recorded().await;
    let model = unused_model();
    let calls = model.call_counter();
    let report = replay(
        agent(model, "You count.", ToolSet::new().with(Calculator)).build(),
        &state,
    )
    .await
    .unwrap();
    assert_eq!(report.divergence, None, "{report:?}");
    assert_eq!((report.model_calls, report.tool_calls), (2, 1));
    assert_eq!(report.answer.as_deref(), Some("It is 87."));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no model call");
}

#[tokio::test]
async fn a_changed_prompt_is_the_first_divergence_with_a_diff() {
    let (_dir, state) = recorded().await;
    let report = replay(
        agent(
            unused_model(),
            "You count carefully.",
            ToolSet::new().with(Calculator),
        )
        .build(),
        &state,
    )
    .await
    .unwrap();
    let Some(Divergence::Request {
        step,
        message,
        diff,
    }) = &report.divergence
    else {
        panic!("expected a request divergence: {report:?}");
    };
    assert_eq!(
        (*step, *message),
        (1, 0),
        "the system prompt, at the first call"
    );
    assert!(diff.contains("-You count."), "{diff}");
    assert!(diff.contains("+You count carefully."), "{diff}");
    assert_eq!(report.answer, None);
}

#[tokio::test]
async fn a_changed_tool_list_is_reported_by_name() {
    let (_dir, state) = recorded().await;
    let report = replay(
        agent(
            unused_model(),
            "You count.",
            ToolSet::new()
                .with(Calculator)
                .with(CurrentTime::from_config(&Default::default()).unwrap()),
        )
        .build(),
        &state,
    )
    .await
    .unwrap();
    assert_eq!(
        report.divergence,
        Some(Divergence::Tools {
            step: 1,
            added: vec!["current_time".into()],
            removed: Vec::new(),
        })
    );
    let report = replay(
        agent(unused_model(), "You count.", ToolSet::new()).build(),
        &state,
    )
    .await
    .unwrap();
    assert!(
        matches!(&report.divergence, Some(Divergence::Tools { removed, .. }) if removed == &["calculator"]),
        "{report:?}"
    );
}

#[tokio::test]
async fn only_a_completed_turn_is_a_recording() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn TurnStore> =
        Arc::new(SqliteTurnStore::open(dir.path().join("sessions.db")).unwrap());
    let model =
        ScriptedChatModel::new().then_tool_calls(&[("calculator", r#"{"expression": "1 + 1"}"#)]);
    let paused = agent(model, "You count.", ToolSet::new().with(Calculator))
        .tool_policies(
            [(
                "calculator".to_owned(),
                ToolPolicy {
                    approval: Approval::Always,
                    ..ToolPolicy::default()
                },
            )]
            .into(),
        )
        .checkpoints(Checkpoints::new(store.clone()))
        .build()
        .run("1 + 1?")
        .await
        .unwrap();
    let state = store.load(&paused.turn_id.unwrap()).await.unwrap();
    let error = replay(
        agent(
            unused_model(),
            "You count.",
            ToolSet::new().with(Calculator),
        )
        .build(),
        &state,
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("awaiting_approval"), "{error}");
}

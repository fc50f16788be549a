//! Durable turns: a call that needs approval pauses the turn in its turn store; a decision made
//! elsewhere (another task, another process's handle on the store) lets it go on, without repeating
//! a finished model or tool call; a turn whose process stopped mid-call resumes, re-running only
//! idempotent calls. Driven by the scripted test model so call counts are exact, through the real
//! SQLite turn store and the real telemetry pipeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use sextant_agent::approval::{
    Approval, ApprovalRule, Approver, Decision, ToolPolicies, ToolPolicy,
};
use sextant_agent::testing::ScriptedChatModel;
use sextant_agent::turn_state::{CallStatus, PendingApproval, TurnStatus};
use sextant_agent::turn_store::{Checkpoints, SqliteTurnStore, TurnStore};
use sextant_agent::{Agent, AgentError, Role, StopReason};
use sextant_tools::{ToolError, ToolSet, tool_fn};
use sextant_tracker::{Telemetry, TelemetryConfig};

/// Arguments of the test's payment tool.
#[derive(Deserialize, JsonSchema)]
struct Pay {
    /// To whom.
    to: String,
    /// How much.
    amount: f64,
}

/// A non-idempotent tool that counts its runs (and can be made to hang, to stop a process
/// mid-call).
fn pay_tool(runs: Arc<AtomicUsize>, hang: bool) -> ToolSet {
    ToolSet::new().with(tool_fn("pay", "Pays someone.", move |args: Pay| {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            if hang {
                std::future::pending::<()>().await;
            }
            Ok::<_, ToolError>(format!("paid {} {}", args.to, args.amount))
        }
    }))
}

fn policies(policy: ToolPolicy) -> ToolPolicies {
    [("pay".to_owned(), policy)].into_iter().collect()
}

fn always() -> ToolPolicy {
    ToolPolicy {
        approval: Approval::Always,
        ..ToolPolicy::default()
    }
}

fn store(dir: &std::path::Path) -> Arc<dyn TurnStore> {
    Arc::new(SqliteTurnStore::open(dir.join("sessions.db")).unwrap())
}

#[tokio::test]
async fn an_approved_call_runs_once_and_the_turn_finishes_without_repeating_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[("pay", r#"{"to": "ada", "amount": 20}"#)])
        .then_text("Paid.");
    let calls = model.call_counter();
    let requests = model.requests();
    let runs = Arc::new(AtomicUsize::new(0));
    let checkpoints = Checkpoints::new(store(dir.path()));
    let agent = Agent::builder("payer", Arc::new(model))
        .tools(pay_tool(runs.clone(), false))
        .tool_policies(policies(always()))
        .checkpoints(checkpoints.clone())
        .build();

    let paused = agent.run("Pay Ada 20.").await.unwrap();
    assert_eq!(paused.stop_reason, StopReason::AwaitingApproval);
    let turn_id = paused.turn_id.clone().expect("a persisted turn has an id");
    assert_eq!(paused.pending_approvals.len(), 1);
    let waiting = &paused.pending_approvals[0];
    assert_eq!(
        (waiting.tool.as_str(), waiting.call_id.as_str()),
        ("pay", "call_0_0")
    );
    assert!(paused.answer.contains(&turn_id), "{}", paused.answer);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "nothing runs before approval"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Resuming before a decision says what it waits for.
    let early = agent.resume(&turn_id, None, None).await.unwrap_err();
    assert!(
        early
            .to_string()
            .contains("waits for decisions on call_0_0"),
        "{early}"
    );

    // Another handle on the same file (another process) decides.
    let other = SqliteTurnStore::open(dir.path().join("sessions.db")).unwrap();
    let stored = other.load(&turn_id).await.unwrap();
    assert_eq!(stored.status, TurnStatus::AwaitingApproval);
    other
        .update(&turn_id, &mut |state| {
            state.decide("call_0_0", Decision::Approve, Some("ops".into()))
        })
        .await
        .unwrap();

    let done = agent.resume(&turn_id, None, None).await.unwrap();
    assert_eq!(done.stop_reason, StopReason::Answered);
    assert_eq!(done.answer, "Paid.");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the first model call is not repeated"
    );
    assert_eq!(done.steps, 2);
    assert_eq!(
        done.usage.input_tokens, 40,
        "usage counts both parts of the turn"
    );
    assert_eq!(done.tool_calls.len(), 1);
    let last_request = requests.lock().unwrap().last().cloned().unwrap();
    let tool_message = last_request
        .messages
        .iter()
        .find(|m| m.role == Role::Tool)
        .expect("the model sees the tool's result");
    assert_eq!(tool_message.content, "paid ada 20");
    let finished = other.load(&turn_id).await.unwrap();
    assert_eq!(finished.status, TurnStatus::Completed);
    assert_eq!(finished.answer.as_deref(), Some("Paid."));
    let again = agent.resume(&turn_id, None, None).await.unwrap_err();
    assert!(again.to_string().contains("already completed"), "{again}");
}

#[tokio::test]
async fn a_denied_call_is_not_run_and_the_model_is_told_why() {
    let dir = tempfile::tempdir().unwrap();
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[("pay", r#"{"to": "eve", "amount": 5000}"#)])
        .then_text("I could not pay.");
    let requests = model.requests();
    let runs = Arc::new(AtomicUsize::new(0));
    let rule = ToolPolicy {
        approval: Approval::When,
        when: Some(ApprovalRule {
            argument: "amount".into(),
            above: Some(100.0),
            ..ApprovalRule::default()
        }),
        idempotent: None,
    };
    let agent = Agent::builder("payer", Arc::new(model))
        .tools(pay_tool(runs.clone(), false))
        .tool_policies(policies(rule))
        .checkpoints(Checkpoints::new(store(dir.path())))
        .build();
    let paused = agent.run("Pay Eve 5000.").await.unwrap();
    let turn_id = paused.turn_id.unwrap();
    assert!(
        paused.pending_approvals[0].reason.contains("above 100"),
        "{:?}",
        paused.pending_approvals
    );
    let checkpoints = agent.checkpoints().unwrap();
    checkpoints
        .store
        .update(&turn_id, &mut |state| {
            state.decide(
                "call_0_0",
                Decision::Deny {
                    message: Some("too much".into()),
                },
                Some("ops".into()),
            )
        })
        .await
        .unwrap();
    let done = agent.resume(&turn_id, None, None).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(done.tool_calls[0].error_type.as_deref(), Some("denied"));
    let told = requests.lock().unwrap()[1]
        .messages
        .iter()
        .find(|m| m.role == Role::Tool)
        .unwrap()
        .content
        .clone();
    assert_eq!(told, "error: ops denied this call: too much");
}

#[tokio::test]
async fn edited_arguments_are_schema_checked_and_run_instead() {
    let dir = tempfile::tempdir().unwrap();
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[("pay", r#"{"to": "ada", "amount": 500}"#)])
        .then_text("Paid less.");
    let runs = Arc::new(AtomicUsize::new(0));
    let agent = Agent::builder("payer", Arc::new(model))
        .tools(pay_tool(runs.clone(), false))
        .tool_policies(policies(always()))
        .checkpoints(Checkpoints::new(store(dir.path())))
        .build();
    let paused = agent.run("Pay Ada 500.").await.unwrap();
    let waiting = paused.pending_approvals[0].clone();
    let bad = Decision::Edit {
        arguments: json!({"to": "ada", "amount": "fifty"}),
    };
    let error = agent.check_decision(&waiting, &bad).unwrap_err();
    assert!(error.contains("/amount"), "{error}");
    let edit = Decision::Edit {
        arguments: json!({"to": "ada", "amount": 50}),
    };
    agent.check_decision(&waiting, &edit).unwrap();
    let turn_id = paused.turn_id.unwrap();
    agent
        .checkpoints()
        .unwrap()
        .store
        .update(&turn_id, &mut |state| {
            state.decide("call_0_0", edit.clone(), None)
        })
        .await
        .unwrap();
    let done = agent.resume(&turn_id, None, None).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let record = &done.tool_calls[0];
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&record.arguments).unwrap(),
        json!({"to": "ada", "amount": 50}),
        "the record holds the arguments that ran"
    );
    assert!(
        record.result.contains("changed the arguments"),
        "{}",
        record.result
    );
    assert!(record.result.ends_with("paid ada 50"), "{}", record.result);
}

/// Approves every call it is asked about, and counts them.
struct ApproveAll(AtomicUsize);

#[async_trait::async_trait]
impl Approver for ApproveAll {
    async fn decide(&self, _agent: &str, _call: &PendingApproval) -> Option<Decision> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Some(Decision::Approve)
    }

    fn who(&self) -> Option<String> {
        Some("terminal".into())
    }
}

#[tokio::test]
async fn an_inline_approver_decides_without_a_pause_and_without_a_store_nothing_waits() {
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[("pay", r#"{"to": "ada", "amount": 1}"#)])
        .then_text("Done.");
    let runs = Arc::new(AtomicUsize::new(0));
    let agent = Agent::builder("payer", Arc::new(model))
        .tools(pay_tool(runs.clone(), false))
        .tool_policies(policies(always()))
        .build();
    let approver = Arc::new(ApproveAll(AtomicUsize::new(0)));
    let context = sextant_agent::TurnContext {
        approver: Some(approver.clone()),
        ..Default::default()
    };
    let outcome = agent
        .run_turn(&[], "Pay Ada 1.", &context, None)
        .await
        .unwrap();
    assert_eq!(outcome.stop_reason, StopReason::Answered);
    assert_eq!(outcome.turn_id, None, "no store, no persisted turn");
    assert_eq!(approver.0.load(Ordering::SeqCst), 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // No approver and no store: the call is refused, and the model told so.
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[("pay", r#"{"to": "ada", "amount": 1}"#)])
        .then_text("Cannot.");
    let agent = Agent::builder("payer", Arc::new(model))
        .tools(pay_tool(runs.clone(), false))
        .tool_policies(policies(always()))
        .build();
    let outcome = agent.run("Pay Ada 1.").await.unwrap();
    assert_eq!(outcome.stop_reason, StopReason::Answered);
    assert_eq!(
        outcome.tool_calls[0].error_type.as_deref(),
        Some("approval_unavailable")
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the refused call did not run"
    );
}

#[tokio::test]
async fn a_turn_stopped_mid_call_resumes_once_its_lease_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_millis(400);
    let runs = Arc::new(AtomicUsize::new(0));
    // The first process: the model asks for two calls, a lookup and a payment; the payment hangs
    // and the process "dies" (its turn future is dropped and its lease renewal with it).
    let first_model = ScriptedChatModel::new().then_tool_calls(&[
        ("calculator", r#"{"expression": "2 + 2"}"#),
        ("pay", r#"{"to": "ada", "amount": 4}"#),
    ]);
    let first_calls = first_model.call_counter();
    let first = Agent::builder("payer", Arc::new(first_model))
        .tools(pay_tool(runs.clone(), true).with(sextant_tools::builtin::Calculator))
        .checkpoints(Checkpoints::new(store(dir.path())).with_lease(lease))
        .build();
    let stopped = tokio::time::timeout(Duration::from_millis(300), first.run("Pay Ada 2+2.")).await;
    assert!(stopped.is_err(), "the payment hangs");
    drop(first);
    assert_eq!(first_calls.load(Ordering::SeqCst), 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    let turns = store(dir.path());
    let orphans = loop {
        let orphans = turns.orphaned().await.unwrap();
        if !orphans.is_empty() {
            break orphans;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let turn_id = orphans[0].clone();
    let stored = turns.load(&turn_id).await.unwrap();
    assert_eq!(stored.step, 1);
    assert!(
        matches!(stored.pending[0].status, CallStatus::Done { .. }),
        "the finished lookup was checkpointed: {:?}",
        stored.pending[0].status
    );
    assert_eq!(stored.pending[1].status, CallStatus::Running);

    // The second process: another holder on the same file, a model that only answers.
    let second_model = ScriptedChatModel::new().then_text("Paid 4.");
    let second_calls = second_model.call_counter();
    let second = Agent::builder("payer", Arc::new(second_model))
        .tools(pay_tool(runs.clone(), false).with(sextant_tools::builtin::Calculator))
        .checkpoints(Checkpoints::new(store(dir.path())).with_lease(lease))
        .build();
    // The payment was in flight and is not idempotent: it is not silently repeated.
    let paused = second.resume(&turn_id, None, None).await.unwrap();
    assert_eq!(paused.stop_reason, StopReason::AwaitingApproval);
    assert!(
        paused.pending_approvals[0]
            .reason
            .contains("not idempotent"),
        "{:?}",
        paused.pending_approvals
    );
    assert_eq!(second_calls.load(Ordering::SeqCst), 0);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    turns
        .update(&turn_id, &mut |state| {
            state.decide("call_0_1", Decision::Approve, None)
        })
        .await
        .unwrap();
    let done = second.resume(&turn_id, None, None).await.unwrap();
    assert_eq!(done.answer, "Paid 4.");
    assert_eq!(
        second_calls.load(Ordering::SeqCst),
        1,
        "one model call after the crash"
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the payment ran again only once approved"
    );
    assert_eq!(done.tool_calls.len(), 2);
    assert_eq!(done.tool_calls[0].result, "4");
}

#[tokio::test]
async fn a_running_turn_is_not_taken_over_while_its_lease_is_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_millis(300);
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[("pay", r#"{"to": "ada", "amount": 1}"#)])
        .then_text("Done.");
    let runs = Arc::new(AtomicUsize::new(0));
    let first = Agent::builder("payer", Arc::new(model))
        .tools(pay_tool(runs.clone(), true))
        .checkpoints(Checkpoints::new(store(dir.path())).with_lease(lease))
        .build();
    let running = tokio::spawn(async move { first.run("Pay.").await });
    // Well past one lease: the heartbeat keeps it.
    tokio::time::sleep(lease * 3).await;
    let turns = store(dir.path());
    assert!(turns.orphaned().await.unwrap().is_empty());
    let listed = turns
        .list(&sextant_agent::turn_store::TurnFilter::default())
        .await
        .unwrap();
    let second = Agent::builder("payer", Arc::new(ScriptedChatModel::new().then_text("x")))
        .checkpoints(Checkpoints::new(store(dir.path())).with_lease(lease))
        .build();
    let taken = second.resume(&listed[0].id, None, None).await.unwrap_err();
    assert!(
        matches!(&taken, AgentError::State { message, .. } if message.contains("is being run by")),
        "{taken}"
    );
    running.abort();
}

#[test]
fn the_pause_the_decision_and_the_rest_of_the_turn_are_one_trace() {
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
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[("pay", r#"{"to": "ada", "amount": 2}"#)])
        .then_text("Paid.");
    let agent = Agent::builder("payer", Arc::new(model))
        .tools(pay_tool(Arc::new(AtomicUsize::new(0)), false))
        .tool_policies(policies(always()))
        .checkpoints(Checkpoints::new(store(dir.path())))
        .build();
    let paused = runtime.block_on(agent.run("Pay Ada 2.")).unwrap();
    let turn_id = paused.turn_id.clone().unwrap();
    let trace_id = paused.trace_id.clone().unwrap();
    let turns = agent.checkpoints().unwrap().store.clone();
    let state = runtime
        .block_on(turns.update(&turn_id, &mut |state| {
            state.decide("call_0_0", Decision::Approve, Some("ops".into()))
        }))
        .unwrap();
    let decided_in = sextant_agent::approval::record_decision(
        state.traceparent.as_deref(),
        &turn_id,
        &paused.pending_approvals[0],
        &Decision::Approve,
        Some("ops"),
    );
    assert_eq!(decided_in.as_deref(), Some(trace_id.as_str()));
    let done = runtime
        .block_on(agent.resume(&turn_id, None, None))
        .unwrap();
    assert_eq!(done.trace_id.as_deref(), Some(trace_id.as_str()));
    telemetry.force_flush().unwrap();

    let spans = telemetry.trace_store().unwrap().spans(&trace_id).unwrap();
    let named = |name: &str| -> Vec<&sextant_tracker::StoredSpan> {
        spans.iter().filter(|s| s.name == name).collect()
    };
    let agents = named("invoke_agent payer");
    assert_eq!(
        agents.len(),
        2,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let first = agents
        .iter()
        .find(|s| s.parent_span_id.is_none())
        .expect("the turn's first part is the root");
    assert_eq!(first.attributes["sextant.turn.status"], "awaiting_approval");
    assert_eq!(first.attributes["sextant.turn.id"], turn_id.as_str());
    let resumed = agents.iter().find(|s| s.parent_span_id.is_some()).unwrap();
    assert_eq!(
        resumed.parent_span_id.as_deref(),
        Some(first.span_id.as_str())
    );
    assert_eq!(resumed.attributes["sextant.turn.resumed"], true);
    assert_eq!(resumed.attributes["sextant.turn.status"], "completed");
    let decision = named("approval pay");
    assert_eq!(decision.len(), 1);
    assert_eq!(
        decision[0].parent_span_id.as_deref(),
        Some(first.span_id.as_str())
    );
    assert_eq!(
        decision[0].attributes["sextant.approval.decision"],
        "approve"
    );
    assert_eq!(decision[0].attributes["sextant.approval.by"], "ops");
    let tool = named("execute_tool pay");
    assert_eq!(tool.len(), 1);
    assert_eq!(
        tool[0].parent_span_id.as_deref(),
        Some(resumed.span_id.as_str())
    );
    assert_eq!(named("chat scripted").len(), 2);
}

//! Approvals: a tool call that needs a person's approval pauses the turn in the turn store; a
//! second task — standing in for a reviewer in another process, or `sextant turns approve` —
//! finds the waiting call, approves it, and the turn goes on without repeating the model call it
//! had made. The trace holds the pause, the decision and the rest of the turn.
//!
//! Offline on the embedded model, with the built-in assistant and its calculator made to ask.
//!
//! ```sh
//! cargo run --release --example approval
//! ```

use sextant_agent::AgentConfig;
use sextant_agent::approval::{Approval, Decision, ToolPolicy, record_decision};
use sextant_agent::turn_state::TurnStatus;
use sextant_agent::turn_store::TurnFilter;
use sextant_runtime::{Runtime, SextantConfig};
use sextant_tracker::SpanTree;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = SextantConfig::load(None)?;
    config.telemetry.capture_content = true; // a demo: arguments and results on the spans
    let runtime = Runtime::start(config).await?;

    // The built-in assistant, with `[tool_policies.calculator] approval = "always"`.
    let mut assistant = AgentConfig::builtin_default();
    assistant.tool_policies.insert(
        "calculator".into(),
        ToolPolicy {
            approval: Approval::Always,
            ..ToolPolicy::default()
        },
    );
    let agent = runtime.build_agent(&assistant, None).await?;
    let store = runtime
        .checkpoints()
        .expect("[state] checkpoints is on by default")
        .store
        .clone();

    let paused = agent.run("What is 12 * 7 + 3?").await?;
    println!("{}\n", paused.answer);
    let Some(turn_id) = paused.turn_id.clone() else {
        println!("(the model answered without the calculator: nothing to approve)");
        return Ok(());
    };

    // The reviewer: another task that knows only the store.
    let reviewer = tokio::spawn(async move {
        let waiting = store
            .list(&TurnFilter {
                status: Some(TurnStatus::AwaitingApproval),
                ..TurnFilter::default()
            })
            .await?;
        let turn = store.load(&waiting[0].id).await?;
        for call in turn.pending_approvals() {
            println!("reviewer: approving {} {}", call.tool, call.arguments);
            let decided = store
                .update(&turn.id, &mut |state| {
                    state.decide(&call.call_id, Decision::Approve, Some("reviewer".into()))
                })
                .await?;
            record_decision(
                decided.traceparent.as_deref(),
                &turn.id,
                &call,
                &Decision::Approve,
                Some("reviewer"),
            );
        }
        anyhow::Ok(())
    });
    reviewer.await??;

    let done = agent.resume(&turn_id, None, None).await?;
    println!("\n{}\n", done.answer);
    runtime.flush()?;
    if let Some(trace) = &done.trace_id {
        println!("{}", SpanTree::build(&runtime.trace_spans(trace)?).render());
    }
    runtime.shutdown().await?;
    Ok(())
}

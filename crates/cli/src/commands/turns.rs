//! `sextant turns`: the durable turns in the turn store — list them, show one, decide the calls
//! that wait for approval, and resume a turn (after decisions, a crash or a failed step).

use std::time::Instant;

use anyhow::Context;
use sextant_agent::Agent;
use sextant_agent::approval::{Decision, decision_assessment, record_decision};
use sextant_agent::run_logging::log_turn;
use sextant_agent::session::record_turn;
use sextant_agent::turn_state::{CallStatus, TurnState, TurnStatus};
use sextant_agent::turn_store::{TurnFilter, TurnStore};
use sextant_runtime::{RunSpec, Runtime, SextantConfig};

use super::run::{Printing, finish, print_turn};
use crate::cli::{ResumeArgs, TurnsCommand};

pub async fn turns(config: SextantConfig, command: TurnsCommand) -> anyhow::Result<()> {
    match command {
        TurnsCommand::List {
            pending,
            status,
            limit,
            json,
        } => {
            let runtime = Runtime::builder(config).without_telemetry().start().await?;
            let store = store(&runtime)?;
            let filter = TurnFilter {
                status: if pending {
                    Some(TurnStatus::AwaitingApproval)
                } else {
                    status
                },
                owner: None,
                limit,
            };
            let turns = store.list(&filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&turns)?);
            } else if turns.is_empty() {
                println!(
                    "no turns{}",
                    if pending { " wait for approval" } else { "" }
                );
            } else {
                println!(
                    "{:<32}  {:<17}  {:>7}  {:<16} question",
                    "turn", "status", "waiting", "agent"
                );
                for turn in turns {
                    println!(
                        "{:<32}  {:<17}  {:>7}  {:<16} {}",
                        turn.id,
                        turn.status.as_str(),
                        turn.pending_approvals,
                        turn.agent,
                        one_line(&turn.question, 60)
                    );
                }
            }
            Ok(())
        }
        TurnsCommand::Show { id, json } => {
            let runtime = Runtime::builder(config).without_telemetry().start().await?;
            let state = store(&runtime)?.load(&id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&state)?);
            } else {
                show(&state);
            }
            Ok(())
        }
        TurnsCommand::Approve {
            id,
            call,
            edit,
            decide,
        } => {
            let decision = match edit {
                None => Decision::Approve,
                Some(text) => Decision::Edit {
                    arguments: serde_json::from_str(&text)
                        .with_context(|| format!("--edit is not JSON: {text}"))?,
                },
            };
            decide_and_resume(config, &id, &call, decision, decide).await
        }
        TurnsCommand::Deny {
            id,
            call,
            message,
            decide,
        } => decide_and_resume(config, &id, &call, Decision::Deny { message }, decide).await,
        TurnsCommand::Resume { id, run } => {
            let (runtime, agent, state) = start_for(config, &id, &run).await?;
            resume(runtime, &agent, &state, &run).await
        }
    }
}

fn store(runtime: &Runtime) -> anyhow::Result<std::sync::Arc<dyn TurnStore>> {
    runtime
        .checkpoints()
        .map(|c| c.store.clone())
        .context("turns are not checkpointed (`[state] checkpoints = false`)")
}

/// The runtime (with telemetry and a run named after the turn), the agent that ran turn `id`
/// (or `--agent`), and the turn as stored.
async fn start_for(
    config: SextantConfig,
    id: &str,
    args: &ResumeArgs,
) -> anyhow::Result<(Runtime, Agent, TurnState)> {
    let state = {
        let runtime = Runtime::builder(config.clone())
            .without_telemetry()
            .start()
            .await?;
        store(&runtime)?.load(id).await?
    };
    let builder = Runtime::builder(config);
    let named = args.agent.clone().or_else(|| state.agent_source.clone());
    let (agent_config, version) =
        builder
            .resolve_agent(named.as_deref())
            .await
            .with_context(|| {
                format!(
                    "rebuilding agent `{}` to resume turn {id} (give it with --agent)",
                    state.agent
                )
            })?;
    if agent_config.name != state.agent {
        anyhow::bail!(
            "turn {id} was run by agent `{}`, and {} is agent `{}`; name its file with --agent",
            state.agent,
            named.as_deref().unwrap_or("the default agent"),
            agent_config.name
        );
    }
    let run = RunSpec {
        experiment: builder.config().tracking.experiment.clone(),
        run_name: Some(format!("{} resume {}", state.agent, &id[..8.min(id.len())])),
        tags: [("sextant.turn_id".to_owned(), id.to_owned())].into(),
        ..RunSpec::default()
    };
    let runtime = builder.run_best_effort(run).start().await?;
    let agent = runtime.build_agent(&agent_config, version.as_ref()).await?;
    Ok((runtime, agent, state))
}

/// Records `decision` on call `call` of turn `id` (its span joins the turn's trace, its
/// assessment the run), then goes on with the turn when nothing else waits.
async fn decide_and_resume(
    config: SextantConfig,
    id: &str,
    call: &str,
    decision: Decision,
    args: crate::cli::DecideArgs,
) -> anyhow::Result<()> {
    let (runtime, agent, state) = start_for(config, id, &args.run).await?;
    let waiting = state
        .pending_approvals()
        .into_iter()
        .find(|w| w.call_id == call);
    if let Some(waiting) = &waiting {
        agent
            .check_decision(waiting, &decision)
            .map_err(anyhow::Error::msg)?;
    }
    let by = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    let store = store(&runtime)?;
    let decided = store
        .update(id, &mut |state| {
            state.decide(call, decision.clone(), Some(by.clone()))
        })
        .await?;
    // `decide` found the call, so it was waiting.
    if let Some(waiting) = waiting {
        let trace_id = record_decision(
            decided.traceparent.as_deref(),
            id,
            &waiting,
            &decision,
            Some(&by),
        );
        if let Some(trace_id) = trace_id.or(decided.trace_id.clone()) {
            runtime.with_run(|run| {
                run.log_assessment(decision_assessment(
                    &trace_id,
                    &waiting,
                    &decision,
                    Some(&by),
                ))
            });
        }
    }
    eprintln!("{} call {call} of turn {id}", decision.kind());
    if decided.status == TurnStatus::AwaitingApproval || args.no_resume {
        let left = decided.pending_approvals().len();
        if left > 0 {
            eprintln!("{left} more call(s) wait; the turn goes on when they are decided");
        }
        if let Err(error) = runtime.flush() {
            tracing::warn!("exporting the decision's span failed: {error}");
        }
        runtime
            .end_run(sextant_tracker::tracking::RunStatus::Finished)
            .await;
        return finish(runtime).await;
    }
    resume(runtime, &agent, &decided, &args.run).await
}

/// Resumes `state` with `agent`, logs the part as the run, adds a completed turn to its session,
/// and prints it as `sextant run` does.
async fn resume(
    runtime: Runtime,
    agent: &Agent,
    state: &TurnState,
    args: &ResumeArgs,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let result = agent.resume(&state.id, None, None).await;
    let latency = started.elapsed();
    if let Err(error) = runtime.flush() {
        tracing::warn!("exporting the turn's telemetry failed: {error}");
    }
    let status =
        runtime.with_run(|run| log_turn(run, agent, &state.question, result.as_ref(), latency));
    let report = match status {
        Some(status) => runtime.end_run(status).await,
        None => None,
    };
    let outcome = result?;
    if let Some(session_id) = &state.session_id {
        record_turn(
            &runtime.session_store()?,
            session_id,
            &state.question,
            &outcome,
        )
        .await?;
    }
    print_turn(
        &runtime,
        agent,
        &outcome,
        report.as_ref(),
        Printing {
            json: args.json,
            streamed: false,
            tree: !args.no_tree,
        },
    )
    .await?;
    finish(runtime).await
}

fn show(state: &TurnState) {
    println!(
        "turn {}  {}  agent {}  step {}  tokens {}/{}",
        state.id,
        state.status.as_str(),
        state.agent,
        state.step,
        state.usage.input_tokens,
        state.usage.output_tokens
    );
    if let Some(trace) = &state.trace_id {
        println!("trace {trace}");
    }
    if let Some(session) = &state.session_id {
        println!("session {session}");
    }
    println!("question: {}", one_line(&state.question, 200));
    for record in &state.records {
        println!(
            "  done     {:<12} {:<16} {}",
            record.id,
            record.name,
            one_line(&record.result, 60)
        );
    }
    for pending in &state.pending {
        let (what, detail) = match &pending.status {
            CallStatus::Ready => ("ready", String::new()),
            CallStatus::Running => ("running", "in flight when last written".into()),
            CallStatus::AwaitingApproval { reason } => ("WAITING", reason.clone()),
            CallStatus::Decided { decision, by } => (
                "decided",
                format!("{} by {}", decision.kind(), by.as_deref().unwrap_or("-")),
            ),
            CallStatus::Done { record } => ("done", one_line(&record.result, 60)),
        };
        println!(
            "  {what:<8} {:<12} {:<16} {}  {detail}",
            pending.call.id,
            pending.call.name,
            one_line(&pending.call.arguments, 60)
        );
    }
    if let Some(answer) = &state.answer {
        println!("answer: {}", answer.trim());
    }
    if let Some(error) = &state.error {
        println!("last error: {error}");
    }
    if state.status == TurnStatus::AwaitingApproval {
        println!(
            "decide with `sextant turns approve {0} CALL` or `sextant turns deny {0} CALL -m WHY`",
            state.id
        );
    }
}

fn one_line(text: &str, max: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line
    }
}

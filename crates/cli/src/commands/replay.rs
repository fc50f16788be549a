//! `sextant replay`: recorded turns re-run against the agent as it is now, with the model's
//! responses and the tools' results served from the recording; the first divergence of each.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use sextant_agent::AgentConfig;
use sextant_agent::replay::{ReplayReport, replay as replay_turn};
use sextant_agent::turn_state::{TurnState, TurnStatus};
use sextant_agent::turn_store::{TurnFilter, TurnStore, TurnStoreError};
use sextant_runtime::{Runtime, SextantConfig};
use sextant_tracker::model_registry::ModelVersion;

use crate::cli::ReplayArgs;

/// Replays (or, with `--record`, re-records) the turns `args` selects.
pub async fn replay(config: SextantConfig, args: ReplayArgs) -> anyhow::Result<()> {
    let runtime = Runtime::start(config).await?;
    let store = runtime
        .checkpoints()
        .map(|c| c.store.clone())
        .context("turns are not recorded (`[state] checkpoints = false`)")?;
    let recordings = recordings(&store, &args).await?;
    if recordings.is_empty() {
        anyhow::bail!("no completed turns to replay");
    }
    let recording = args.record;
    let mut agents: HashMap<String, (AgentConfig, Option<ModelVersion>)> = HashMap::new();
    let mut reports = Vec::new();
    let mut failures = 0;
    for state in &recordings {
        let source = args.agent.clone().or_else(|| state.agent_source.clone());
        let key = source.clone().unwrap_or_default();
        if !agents.contains_key(&key) {
            let resolved = runtime
                .agent_config(source.as_deref())
                .await
                .with_context(|| {
                    format!(
                        "rebuilding agent `{}` to replay turn {} (give it with --agent)",
                        state.agent, state.id
                    )
                })?;
            agents.insert(key.clone(), resolved);
        }
        let (agent_config, version) = &agents[&key];
        let agent = runtime.build_agent(agent_config, version.as_ref()).await?;
        if args.record {
            // A new recording of the same question after the same history, on the live model.
            let outcome = agent
                .run_turn(state.history(), &state.question, &Default::default(), None)
                .await?;
            println!(
                "recorded {}  {} (from {})",
                outcome.trace_id.as_deref().unwrap_or("-"),
                state.agent,
                state.trace_id.as_deref().unwrap_or(&state.id)
            );
            continue;
        }
        match replay_turn(agent, state).await {
            Ok(report) => {
                if report.divergence.is_some() {
                    failures += 1;
                }
                reports.push(Ok(report));
            }
            Err(error) => {
                failures += 1;
                reports.push(Err(error.to_string()));
            }
        }
    }
    if let Err(error) = runtime.flush() {
        tracing::warn!("exporting the replays' telemetry failed: {error}");
    }
    if recording {
        runtime.shutdown().await?;
        return Ok(());
    }
    if args.json {
        let value: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| match r {
                Ok(report) => serde_json::to_value(report).unwrap_or_default(),
                Err(error) => serde_json::json!({ "error": error }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        for report in &reports {
            match report {
                Ok(report) => print_report(report),
                Err(error) => println!("SKIP  {error}"),
            }
        }
        println!(
            "{} replayed, {} matched, {failures} diverged or could not be replayed",
            reports.len(),
            reports.len() - failures
        );
    }
    runtime.shutdown().await?;
    if failures > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// The turns `args` names: by trace or turn id, or the completed turns of an agent.
async fn recordings(
    store: &Arc<dyn TurnStore>,
    args: &ReplayArgs,
) -> anyhow::Result<Vec<TurnState>> {
    let Some(name) = &args.agent_name else {
        let mut found = Vec::new();
        for id in &args.ids {
            let state = match store.find_by_trace(id).await {
                Err(TurnStoreError::NotFound(_)) => store.load(id).await,
                other => other,
            }
            .with_context(|| format!("no recorded turn with trace or turn id `{id}`"))?;
            found.push(state);
        }
        return Ok(found);
    };
    let since = match &args.since {
        None => None,
        Some(text) => Some(parse_since(text)?),
    };
    let summaries = store
        .list(&TurnFilter {
            status: Some(TurnStatus::Completed),
            owner: None,
            limit: 10_000,
        })
        .await?;
    let mut found = Vec::new();
    for summary in summaries
        .into_iter()
        .filter(|s| &s.agent == name)
        .filter(|s| since.is_none_or(|since| s.updated_at_ms >= since))
        .take(args.limit)
    {
        found.push(store.load(&summary.id).await?);
    }
    Ok(found)
}

/// `2026-12-01` or an RFC 3339 timestamp, as milliseconds since the epoch.
fn parse_since(text: &str) -> anyhow::Result<i64> {
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        return Ok(timestamp.as_millisecond());
    }
    let date: jiff::civil::Date = text
        .parse()
        .with_context(|| format!("--since `{text}` is neither a date (2026-12-01) nor RFC 3339"))?;
    Ok(date
        .to_zoned(jiff::tz::TimeZone::UTC)?
        .timestamp()
        .as_millisecond())
}

fn print_report(report: &ReplayReport) {
    let recorded = report
        .recorded_trace_id
        .as_deref()
        .unwrap_or(&report.turn_id);
    match &report.divergence {
        None => println!(
            "OK    {recorded}  {}: {} model calls and {} tool calls from the recording, same answer",
            report.agent, report.model_calls, report.tool_calls
        ),
        Some(divergence) => {
            println!("DIFF  {recorded}  {}: {divergence}", report.agent);
        }
    }
    if let Some(trace) = &report.trace_id {
        println!("      replay traced as {trace}");
    }
}

//! `sextant traces`: read the local trace store.

use anyhow::Context;
use sextant_runtime::Runtime;
use sextant_tracker::tracking::Feedback;
use sextant_tracker::{SpanTree, TraceFilter, TraceOrder, TraceQuery, TraceSummary};

use crate::cli::TracesCommand;

pub async fn traces(runtime: &Runtime, command: TracesCommand) -> anyhow::Result<()> {
    let path = runtime.config().trace_store_path();
    if !path.exists() {
        anyhow::bail!(
            "no traces yet: the local trace store {} does not exist (run `sextant run \"…\"` first)",
            path.display()
        );
    }
    let store = runtime
        .trace_store()
        .with_context(|| format!("opening the trace store {}", path.display()))?;
    match command {
        TracesCommand::List { limit, json } => {
            let traces = store.list_traces(limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&traces)?);
                return Ok(());
            }
            if traces.is_empty() {
                println!("no traces in {}", path.display());
            }
            for t in &traces {
                print_summary(t);
            }
        }
        TracesCommand::Search {
            filter,
            order_by,
            limit,
            page_token,
            json,
        } => {
            let query = TraceQuery {
                filter: TraceFilter::parse(&filter)?,
                order: order_by
                    .as_deref()
                    .map(TraceOrder::parse)
                    .transpose()?
                    .unwrap_or_default(),
                limit,
                page_token,
                owner: None,
            };
            let started = std::time::Instant::now();
            let page = store.search(&query)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(());
            }
            for t in &page.traces {
                print_summary(t);
            }
            eprintln!(
                "{} trace{} in {:.1} ms",
                page.traces.len(),
                if page.traces.len() == 1 { "" } else { "s" },
                started.elapsed().as_secs_f64() * 1e3
            );
            if let Some(token) = page.next_page_token {
                eprintln!("more: --page-token {token}");
            }
        }
        TracesCommand::Feedback {
            id,
            name,
            value,
            rationale,
            by,
        } => {
            let trace_id = store.resolve_trace_id(&id)?;
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "operator".into());
            let feedback = Feedback {
                name,
                value: Feedback::parse_value(&value),
                rationale,
                user_id: None,
            };
            let assessment = feedback.into_assessment(
                &trace_id,
                &by,
                jiff::Timestamp::now().as_millisecond(),
            )?;
            let (name, verdict) = (assessment.name.clone(), assessment.value.clone());
            runtime
                .log_assessment(assessment)
                .await
                .context("recording the feedback")?;
            println!(
                "feedback {name} = {} on trace {trace_id} by {by} (HUMAN)",
                verdict.unwrap_or_default()
            );
        }
        TracesCommand::Show { id, json } => {
            let trace_id = match id {
                Some(prefix) => store.resolve_trace_id(&prefix)?,
                None => {
                    store
                        .latest_trace()?
                        .with_context(|| {
                            format!(
                                "no traces yet in {} (run `sextant run \"…\"` first)",
                                path.display()
                            )
                        })?
                        .trace_id
                }
            };
            let spans = store.spans(&trace_id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&spans)?);
            } else {
                println!("trace {trace_id}");
                println!("{}", SpanTree::build(&spans).render().trim_end());
                print_assessments(runtime, &trace_id).await;
            }
        }
    }
    Ok(())
}

/// One line per trace: id, root span, duration, spans, tokens, cost, status.
fn print_summary(t: &TraceSummary) {
    // OpenTelemetry leaves a successful span's status unset; say what it means.
    let status = if t.status == "unset" {
        "ok"
    } else {
        t.status.as_str()
    };
    let tokens = t
        .total_tokens
        .map(|n| format!("{n} tokens"))
        .unwrap_or_default();
    let cost = match (t.cost, t.currency.as_deref()) {
        (Some(cost), Some(currency)) => format!("{cost:.6} {currency}"),
        (Some(cost), None) => format!("{cost:.6}"),
        (None, _) => String::new(),
    };
    println!(
        "{}  {:<32} {:>9.1} ms  {:>3} spans  {:<12} {:<14} {}",
        t.trace_id, t.root_span_name, t.duration_ms, t.span_count, tokens, cost, status
    );
}

/// The trace's assessments (scores from `sextant eval`) from the tracking store, beneath its tree.
async fn print_assessments(runtime: &Runtime, trace_id: &str) {
    let assessments = match runtime.tracking_store() {
        Ok(store) => store.trace_assessments(trace_id).await,
        Err(error) => {
            eprintln!("(assessments not read: {error})");
            return;
        }
    };
    match assessments {
        Ok(list) if list.is_empty() => {}
        Ok(list) => {
            println!("assessments");
            for a in list {
                let verdict = match (&a.value, &a.error) {
                    (Some(value), _) => value.to_string(),
                    (None, Some(error)) => format!("error {}: {}", error.code, error.message),
                    (None, None) => "-".into(),
                };
                let rationale: String = a
                    .rationale
                    .as_deref()
                    .unwrap_or("")
                    .chars()
                    .take(80)
                    .collect();
                println!(
                    "  {:<22} {:<9} {:<10} {}  {rationale}",
                    a.name,
                    a.source.source_type.as_str(),
                    verdict,
                    a.source.source_id
                );
            }
        }
        // The trace is in the local store; the tracking backend may not know it (not an error).
        Err(sextant_tracker::tracking::TrackingError::NotFound { .. }) => {}
        Err(error) => eprintln!("(assessments not read: {error})"),
    }
}

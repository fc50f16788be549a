//! `sextant runs`: list, show and compare tracking runs.

use std::collections::BTreeSet;

use anyhow::Context;
use sextant_runtime::Runtime;
use sextant_tracker::tracking::{Metric, Run, TrackingStore};

use crate::cli::RunsCommand;

pub async fn runs(runtime: &Runtime, command: RunsCommand) -> anyhow::Result<()> {
    let store = runtime.tracking_store()?;
    match command {
        RunsCommand::List {
            experiment,
            filter,
            order_by,
            limit,
            json,
        } => {
            let name = experiment.unwrap_or_else(|| runtime.config().tracking.experiment.clone());
            let experiment = store
                .experiment_by_name(&name)
                .await?
                .with_context(|| format!("no experiment `{name}` in the {} tracking store (see `sextant experiments list`)", store.backend()))?;
            let runs = store
                .search_runs(&[experiment.experiment_id], &filter, &order_by, limit)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else if runs.is_empty() {
                println!("no runs in experiment `{name}` match");
            } else {
                println!(
                    "{:<32}  {:<9} {:<24} {:>11}  {:>8}  {:>10}",
                    "run", "status", "name", "latency_ms", "tokens", "cost"
                );
                for run in runs {
                    let metric = |key: &str| {
                        run.metrics
                            .get(key)
                            .map(|m| format!("{:.0}", m.value))
                            .unwrap_or_else(|| "-".into())
                    };
                    // A run without a cost metric had a model without a price.
                    let cost = match (run.metrics.get("cost"), run.metrics.get("total_tokens")) {
                        (Some(cost), _) => format!("{:.6}", cost.value),
                        (None, Some(_)) => "no price".to_owned(),
                        (None, None) => "-".to_owned(),
                    };
                    println!(
                        "{:<32}  {:<9} {:<24} {:>11}  {:>8}  {:>10}",
                        run.info.run_id,
                        run.info.status.as_str(),
                        run.info.run_name,
                        metric("latency_ms"),
                        metric("total_tokens"),
                        cost
                    );
                }
            }
        }
        RunsCommand::Show {
            run_id,
            metric,
            json,
        } => {
            let run = store.get_run(&run_id).await?;
            let history = match &metric {
                Some(key) => Some(store.metric_history(&run_id, key).await?),
                None => None,
            };
            if json {
                let value = serde_json::json!({ "run": run, "history": history });
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(());
            }
            print_run(store.as_ref(), &run).await?;
            if let (Some(key), Some(history)) = (metric, history) {
                println!();
                if history.is_empty() {
                    println!("run {run_id} has no metric `{key}`");
                } else {
                    println!("{key} ({} values)", history.len());
                    print!("{}", plot(&history, 60, 10));
                }
            }
        }
        RunsCommand::Compare { a, b } => {
            let (a, b) = (store.get_run(&a).await?, store.get_run(&b).await?);
            print!("{}", compare(&a, &b));
        }
    }
    Ok(())
}

async fn print_run(store: &dyn TrackingStore, run: &Run) -> anyhow::Result<()> {
    let info = &run.info;
    println!(
        "run {}  {}  ({})",
        info.run_id,
        info.run_name,
        info.status.as_str()
    );
    println!(
        "experiment {}  artifacts {}",
        info.experiment_id, info.artifact_uri
    );
    if let Some(parent) = run.parent_run_id() {
        println!("parent run {parent}");
    }
    if let Some(end) = info.end_time_ms {
        println!("duration {:.1} s", (end - info.start_time_ms) as f64 / 1e3);
    }
    for (title, pairs) in [
        (
            "params",
            run.params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>(),
        ),
        (
            "metrics",
            run.metrics
                .iter()
                .map(|(k, m)| (k.clone(), format_value(m.value)))
                .collect(),
        ),
        (
            "tags",
            run.tags
                .iter()
                .filter(|(k, _)| !k.starts_with("mlflow."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        (
            "datasets",
            run.inputs
                .iter()
                .map(|d| {
                    let used_for = d.context.as_deref().map(|c| format!(" for {c}"));
                    (
                        d.name.clone(),
                        format!(
                            "digest {}  {} {}{}",
                            d.digest,
                            d.source_type,
                            d.uri().unwrap_or_else(|| d.source.clone()),
                            used_for.unwrap_or_default()
                        ),
                    )
                })
                .collect(),
        ),
    ] {
        if !pairs.is_empty() {
            println!("{title}:");
            for (key, value) in pairs {
                println!("  {key:<28} {value}");
            }
        }
    }
    let artifacts = store
        .list_artifacts(&info.run_id, "")
        .await
        .unwrap_or_default();
    if !artifacts.is_empty() {
        println!("artifacts:");
        for file in artifacts {
            let size = file
                .size
                .map(|s| format!("{s} B"))
                .unwrap_or_else(|| "dir".into());
            println!("  {:<28} {size}", file.path);
        }
    }
    Ok(())
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.4}")
    }
}

/// Two runs' params and metrics side by side; differing rows are marked `*`.
fn compare(a: &Run, b: &Run) -> String {
    let mut out = format!(
        "  {:<28} {:<24} {:<24}\n",
        "",
        short(&a.info.run_name, &a.info.run_id),
        short(&b.info.run_name, &b.info.run_id)
    );
    let mut section = |title: &str, rows: Vec<(String, Option<String>, Option<String>)>| {
        out.push_str(&format!("{title}:\n"));
        for (key, x, y) in rows {
            let mark = if x != y { '*' } else { ' ' };
            out.push_str(&format!(
                "{mark} {key:<28} {:<24} {:<24}\n",
                x.as_deref().unwrap_or("-"),
                y.as_deref().unwrap_or("-")
            ));
        }
    };
    let keys: BTreeSet<&String> = a.params.keys().chain(b.params.keys()).collect();
    section(
        "params",
        keys.into_iter()
            .map(|k| {
                (
                    k.clone(),
                    a.params.get(k).cloned(),
                    b.params.get(k).cloned(),
                )
            })
            .collect(),
    );
    let keys: BTreeSet<&String> = a.metrics.keys().chain(b.metrics.keys()).collect();
    section(
        "metrics",
        keys.into_iter()
            .map(|k| {
                let value = |run: &Run| run.metrics.get(k).map(|m| format_value(m.value));
                (k.clone(), value(a), value(b))
            })
            .collect(),
    );
    out
}

fn short(name: &str, id: &str) -> String {
    format!("{name} ({})", &id[..8.min(id.len())])
}

/// A metric's history as a terminal chart: one column per value (the last `width`), `height`
/// rows, the y range on the left.
fn plot(history: &[Metric], width: usize, height: usize) -> String {
    let values: Vec<f64> = history
        .iter()
        .rev()
        .take(width)
        .rev()
        .map(|m| m.value)
        .collect();
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    let span = if max > min { max - min } else { 1.0 };
    let row_of = |v: f64| (((v - min) / span) * (height - 1) as f64).round() as usize;
    let mut out = String::new();
    for row in (0..height).rev() {
        let label = if row == height - 1 {
            format_value(max)
        } else if row == 0 {
            format_value(min)
        } else {
            String::new()
        };
        out.push_str(&format!("{label:>10} │"));
        for v in &values {
            out.push(if row_of(*v) == row { '●' } else { ' ' });
        }
        out.push('\n');
    }
    let first = history.len().saturating_sub(width);
    out.push_str(&format!(
        "{:>10} └{}\n{:>12}step {} … {}\n",
        "",
        "─".repeat(values.len()),
        "",
        history[first].step,
        history[history.len() - 1].step
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_puts_each_value_in_its_row() {
        let history: Vec<Metric> = (0..5)
            .map(|step| Metric {
                key: "loss".into(),
                value: (5 - step) as f64,
                timestamp_ms: 0,
                step,
            })
            .collect();
        let chart = plot(&history, 60, 5);
        let lines: Vec<&str> = chart.lines().collect();
        assert!(lines[0].starts_with("         5 │●"), "{chart}");
        assert!(lines[4].starts_with("         1 │    ●"), "{chart}");
        assert!(chart.contains("step 0 … 4"), "{chart}");
    }
}

//! `sextant telemetry`: the remote trace sinks' spools — what waits in them, and sending it now.

use std::time::{Duration, Instant};

use anyhow::Context;
use sextant_runtime::{Runtime, SextantConfig};
use sextant_tracker::export::{SinkSpoolStatus, spool_status};

use crate::cli::TelemetryCommand;

pub async fn telemetry(config: SextantConfig, command: TelemetryCommand) -> anyhow::Result<()> {
    match command {
        TelemetryCommand::Status { json } => status(&config, json),
        TelemetryCommand::Flush { timeout } => flush(config, timeout).await,
    }
}

fn status(config: &SextantConfig, json: bool) -> anyhow::Result<()> {
    let dir = config.span_spool_dir();
    let sinks = spool_status(&dir)
        .with_context(|| format!("reading the span spools under {}", dir.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&sinks)?);
        return Ok(());
    }
    if sinks.is_empty() {
        println!(
            "nothing spooled: no remote trace sink has used {} yet",
            dir.display()
        );
        return Ok(());
    }
    for sink in &sinks {
        print_sink(sink);
    }
    Ok(())
}

fn print_sink(sink: &SinkSpoolStatus) {
    let name = if sink.sink.is_empty() {
        sink.key.as_str()
    } else {
        sink.sink.as_str()
    };
    println!("{name}");
    println!(
        "  waiting  {} spans, {} on disk, in {} lane(s)",
        sink.spans(),
        human_bytes(sink.bytes()),
        sink.lanes.len()
    );
    if let Some(oldest) = sink.oldest_ms() {
        println!("  oldest   {} ({} ago)", timestamp(oldest), age(oldest));
    }
    match (&sink.last_error, sink.last_error_ms) {
        (Some(error), Some(at)) => println!("  failing  since {}: {error}", timestamp(at)),
        (Some(error), None) => println!("  failing  {error}"),
        _ => println!("  status   ok (no export error recorded)"),
    }
    for lane in &sink.lanes {
        let owner = if lane.live {
            "a running process"
        } else {
            "no process (the next one to start sends it)"
        };
        let torn = if lane.torn_bytes > 0 {
            format!(", {} torn (skipped)", human_bytes(lane.torn_bytes))
        } else {
            String::new()
        };
        println!(
            "  lane {}  {} spans, {}{torn}; held by {owner}",
            lane.name,
            lane.spans,
            human_bytes(lane.bytes)
        );
    }
}

async fn flush(config: SextantConfig, timeout: Duration) -> anyhow::Result<()> {
    let runtime = Runtime::builder(config).start().await?;
    let telemetry = runtime
        .telemetry()
        .context("telemetry is disabled (OTEL_SDK_DISABLED), so there is nothing to send")?
        .clone();
    let deadline = Instant::now() + timeout;
    let waiting = || -> u64 {
        telemetry
            .sink_reports()
            .iter()
            .map(|sink| sink.spool_spans)
            .sum()
    };
    let started = waiting();
    while waiting() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reports = telemetry.sink_reports();
    drop(telemetry);
    for sink in &reports {
        if sink.spooled == 0 && sink.resent == 0 && sink.spool_spans == 0 {
            continue;
        }
        let error = sink
            .last_error
            .as_deref()
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default();
        println!(
            "{}: sent {} spooled spans, {} still waiting{error}",
            sink.sink, sink.resent, sink.spool_spans
        );
    }
    let left = waiting_after(&reports);
    runtime.shutdown().await?;
    if started == 0 {
        println!("nothing was waiting in the spools");
    }
    if left > 0 {
        anyhow::bail!(
            "{left} spans are still waiting after {timeout:?}; they stay spooled (see `sextant \
             telemetry status`)"
        );
    }
    Ok(())
}

fn waiting_after(reports: &[sextant_tracker::export::SinkReport]) -> u64 {
    reports.iter().map(|sink| sink.spool_spans).sum()
}

fn timestamp(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

fn age(ms: i64) -> String {
    let seconds = (sextant_tracker::now_ms() - ms).max(0) / 1000;
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        _ => format!("{:.1} h", seconds as f64 / 3600.0),
    }
}

fn human_bytes(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).to_string()
}

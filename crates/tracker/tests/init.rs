//! `init` installs process-wide state; this file is its own test process.

use sextant_tracker::{TelemetryConfig, TelemetryError, current_trace_id, init};

#[test]
fn init_installs_globally_once_and_a_second_call_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let config = TelemetryConfig {
        local_store: Some(dir.path().join("traces.db")),
        ..TelemetryConfig::default()
    };
    let telemetry = init(&config).unwrap();
    let trace_id = {
        let span = tracing::info_span!("invoke_agent", otel.name = "invoke_agent assistant");
        let _entered = span.enter();
        current_trace_id(&span).expect("the global pipeline records spans")
    };
    // Debug-level spans of dependencies never become OpenTelemetry spans.
    drop(tracing::debug_span!(target: "hyper", "connect"));

    assert!(matches!(
        init(&config),
        Err(TelemetryError::AlreadyInitialized)
    ));

    let report = telemetry.shutdown().unwrap();
    assert_eq!(report.exported, 1);
    let store = sextant_tracker::LocalTraceStore::open(dir.path().join("traces.db")).unwrap();
    assert_eq!(
        store.spans(&trace_id).unwrap()[0].name,
        "invoke_agent assistant"
    );
}

#[test]
fn a_bad_log_filter_is_a_clear_error() {
    let config = TelemetryConfig {
        log_filter: "sextant=loud".into(),
        ..TelemetryConfig::default()
    };
    let error = init(&config).unwrap_err().to_string();
    assert!(error.contains("sextant=loud"), "{error}");
}

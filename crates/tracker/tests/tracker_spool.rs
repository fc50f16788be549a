//! The [`Tracker`] never loses a finished run: writes made while the backend is down wait in the
//! spool and arrive on replay — also when the process that made them was killed — and batches stay
//! within MLflow's log-batch limits (the embedded store refuses bigger ones, as MLflow does).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sextant_tracker::local::LocalTrackingStore;
use sextant_tracker::tracking::{
    ArtifactFile, Assessment, AssessmentSource, AssessmentSourceType, DatasetInput, Experiment,
    LogBatch, Metric, NewRun, Run, RunInfo, RunSpec, RunStatus, Tracker, TrackerOptions,
    TrackingError, TrackingStore,
};

/// Fault injection: the embedded store behind a switch that turns every call into an outage
/// while a flag file exists (so a child process and the test agree on it).
struct OutageTrackingStoreDouble {
    inner: LocalTrackingStore,
    flag: std::path::PathBuf,
}

impl OutageTrackingStoreDouble {
    fn open(dir: &Path) -> Arc<Self> {
        Arc::new(Self {
            inner: LocalTrackingStore::open(&dir.join("data")).unwrap(),
            flag: dir.join("down"),
        })
    }

    fn check(&self) -> Result<(), TrackingError> {
        if self.flag.exists() {
            return Err(TrackingError::Unavailable {
                backend: "mlflow",
                location: "http://127.0.0.1:9".into(),
                message: "cannot connect".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl TrackingStore for OutageTrackingStoreDouble {
    fn backend(&self) -> &'static str {
        "outage-double"
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn experiment_by_name(&self, name: &str) -> Result<Option<Experiment>, TrackingError> {
        self.check()?;
        self.inner.experiment_by_name(name).await
    }
    async fn create_experiment(
        &self,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, TrackingError> {
        self.check()?;
        self.inner.create_experiment(name, tags).await
    }
    async fn list_experiments(&self) -> Result<Vec<Experiment>, TrackingError> {
        self.check()?;
        self.inner.list_experiments().await
    }
    async fn create_run(&self, run: NewRun) -> Result<RunInfo, TrackingError> {
        self.check()?;
        self.inner.create_run(run).await
    }
    async fn update_run(
        &self,
        run_id: &str,
        status: RunStatus,
        end: Option<i64>,
    ) -> Result<(), TrackingError> {
        self.check()?;
        self.inner.update_run(run_id, status, end).await
    }
    async fn log_batch(&self, run_id: &str, batch: &LogBatch) -> Result<(), TrackingError> {
        self.check()?;
        self.inner.log_batch(run_id, batch).await
    }
    async fn get_run(&self, run_id: &str) -> Result<Run, TrackingError> {
        self.check()?;
        self.inner.get_run(run_id).await
    }
    async fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>, TrackingError> {
        self.check()?;
        self.inner.metric_history(run_id, key).await
    }
    async fn search_runs(
        &self,
        e: &[String],
        f: &str,
        o: &[String],
        n: usize,
    ) -> Result<Vec<Run>, TrackingError> {
        self.check()?;
        self.inner.search_runs(e, f, o, n).await
    }
    async fn log_artifact(
        &self,
        run_id: &str,
        path: &str,
        contents: Vec<u8>,
    ) -> Result<(), TrackingError> {
        self.check()?;
        self.inner.log_artifact(run_id, path, contents).await
    }
    async fn list_artifacts(
        &self,
        run_id: &str,
        path: &str,
    ) -> Result<Vec<ArtifactFile>, TrackingError> {
        self.check()?;
        self.inner.list_artifacts(run_id, path).await
    }
    async fn read_artifact(&self, run_id: &str, path: &str) -> Result<Vec<u8>, TrackingError> {
        self.check()?;
        self.inner.read_artifact(run_id, path).await
    }
    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
    ) -> Result<(), TrackingError> {
        self.check()?;
        self.inner.log_inputs(run_id, datasets).await
    }
    async fn log_assessment(&self, assessment: &Assessment) -> Result<String, TrackingError> {
        self.check()?;
        self.inner.log_assessment(assessment).await
    }
    async fn trace_assessments(&self, trace_id: &str) -> Result<Vec<Assessment>, TrackingError> {
        self.check()?;
        self.inner.trace_assessments(trace_id).await
    }
}

fn quick() -> TrackerOptions {
    TrackerOptions {
        flush_interval: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        end_timeout: Duration::from_millis(300),
    }
}

fn log_a_turn(run: &sextant_tracker::tracking::ActiveRun) {
    run.log_params([("agent", "qa"), ("model", "SmolLM2-135M-Instruct")]);
    for step in 0..3 {
        run.log_metric("latency_ms", 100.0 * (step + 1) as f64, step);
    }
    run.set_tags([("sextant.trace_id", "0123456789abcdef0123456789abcdef")]);
    run.log_artifact(
        "interaction.json",
        br#"{"input": "q", "output": "a"}"#.to_vec(),
    );
    run.log_dataset(DatasetInput {
        context: Some("evaluation".into()),
        ..DatasetInput::local_file("qa", "936fdd8dd61a0614", "/data/qa.jsonl".as_ref())
    });
    run.log_assessment(Assessment {
        assessment_id: None,
        name: "is_concise".into(),
        trace_id: "0123456789abcdef0123456789abcdef".into(),
        span_id: None,
        source: AssessmentSource {
            source_type: AssessmentSourceType::Code,
            source_id: "is_concise".into(),
        },
        create_time_ms: sextant_tracker::now_ms(),
        value: Some(serde_json::json!(true)),
        error: None,
        rationale: Some("12 words".into()),
        metadata: BTreeMap::new(),
    });
}

async fn the_only_run(store: &dyn TrackingStore) -> Run {
    let mut runs = store.search_runs(&["0".into()], "", &[], 10).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.remove(0)
}

async fn assert_turn_logged(store: &dyn TrackingStore, status: RunStatus) {
    let run = the_only_run(store).await;
    assert_eq!(run.info.status, status);
    assert_eq!(run.params.get("agent").map(String::as_str), Some("qa"));
    assert_eq!(run.tags.get("sextant.trace_id").map(String::len), Some(32));
    let datasets: Vec<(&str, &str, Option<&str>)> = run
        .inputs
        .iter()
        .map(|d| (d.name.as_str(), d.digest.as_str(), d.context.as_deref()))
        .collect();
    assert_eq!(datasets, [("qa", "936fdd8dd61a0614", Some("evaluation"))]);
    let history = store
        .metric_history(&run.info.run_id, "latency_ms")
        .await
        .unwrap();
    assert_eq!(
        history.iter().map(|m| m.value).collect::<Vec<_>>(),
        [100.0, 200.0, 300.0]
    );
    let artifact = store
        .read_artifact(&run.info.run_id, "interaction.json")
        .await
        .unwrap();
    assert!(artifact.starts_with(b"{\"input\""));
    // The assessment reached its trace, naming the run that produced it.
    let assessments = store
        .trace_assessments("tr-0123456789abcdef0123456789abcdef")
        .await
        .unwrap();
    assert_eq!(assessments.len(), 1, "{assessments:?}");
    assert_eq!(assessments[0].value, Some(serde_json::json!(true)));
    assert!(assessments[0].assessment_id.is_some());
    assert_eq!(
        assessments[0]
            .metadata
            .get(sextant_tracker::tracking::SOURCE_RUN_ID_KEY),
        Some(&run.info.run_id)
    );
}

#[tokio::test]
async fn writes_during_an_outage_wait_in_the_spool_and_arrive_on_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store = OutageTrackingStoreDouble::open(dir.path());
    let spool = dir.path().join("spool");
    let tracker = Tracker::new(store.clone(), &spool).with_options(quick());

    std::fs::write(&store.flag, "").unwrap();
    let run = tracker
        .start_run(RunSpec {
            experiment: "Default".into(),
            run_name: Some("offline".into()),
            ..RunSpec::default()
        })
        .unwrap();
    log_a_turn(&run);
    assert_eq!(
        run.run_id(Duration::from_millis(100)).await,
        None,
        "not created while down"
    );
    let report = run.end(RunStatus::Finished).await;
    assert!(!report.delivered && report.run_id.is_none(), "{report:?}");
    let left = report.spool.expect("a spool file");
    assert!(left.exists());

    // Still down: replay keeps the spool.
    let replay = tracker.replay().await.unwrap();
    assert_eq!((replay.delivered.len(), replay.waiting), (0, 1));
    assert!(left.exists());

    std::fs::remove_file(&store.flag).unwrap();
    let replay = tracker.replay().await.unwrap();
    assert_eq!(replay.delivered.len(), 1, "{replay:?}");
    assert!(replay.refused.is_empty(), "{replay:?}");
    assert!(!left.exists(), "a delivered spool is removed");
    assert_turn_logged(store.as_ref(), RunStatus::Finished).await;
    assert_eq!(
        tracker.replay().await.unwrap(),
        Default::default(),
        "nothing twice"
    );
}

#[tokio::test]
async fn a_run_on_a_healthy_backend_is_delivered_without_a_spool() {
    let dir = tempfile::tempdir().unwrap();
    let store = OutageTrackingStoreDouble::open(dir.path());
    let tracker = Tracker::new(store.clone(), dir.path().join("spool")).with_options(quick());
    let run = tracker
        .start_run(RunSpec {
            experiment: "Default".into(),
            ..RunSpec::default()
        })
        .unwrap();
    let id = run
        .run_id(Duration::from_secs(5))
        .await
        .expect("created at once");
    log_a_turn(&run);
    // A changed param is refused by the backend and reported, not retried forever.
    run.log_params([("agent", "other")]);
    let report = run.end(RunStatus::Finished).await;
    assert!(report.delivered && report.spool.is_none(), "{report:?}");
    assert_eq!(report.run_id.as_deref(), Some(id.as_str()));
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert!(report.refused[0].contains("agent"), "{report:?}");
    assert_turn_logged(store.as_ref(), RunStatus::Finished).await;
    assert!(
        std::fs::read_dir(dir.path().join("spool"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn big_logs_are_cut_into_batches_the_backend_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalTrackingStore::open(dir.path()).unwrap());
    let tracker = Tracker::new(store.clone(), dir.path().join("spool")).with_options(quick());
    let run = tracker
        .start_run(RunSpec {
            experiment: "Default".into(),
            ..RunSpec::default()
        })
        .unwrap();
    run.log_params((0..250).map(|i| (format!("p{i}"), i)));
    run.set_tags((0..150).map(|i| (format!("t{i}"), "x")));
    for step in 0..2500 {
        run.log_metric("loss", 1.0 / (step + 1) as f64, step);
    }
    let report = run.end(RunStatus::Finished).await;
    assert!(report.delivered && report.refused.is_empty(), "{report:?}");
    let id = report.run_id.unwrap();
    let logged = store.get_run(&id).await.unwrap();
    assert_eq!(logged.params.len(), 250);
    assert!(logged.tags.len() >= 150);
    assert_eq!(store.metric_history(&id, "loss").await.unwrap().len(), 2500);
}

/// Run by the test below in a child process: logs a turn to a backend that is down, ends the run
/// (so it is finished and spooled), says so, and waits to be killed. Skipped on its own.
#[tokio::test]
#[ignore = "the child half of a_finished_run_survives_a_killed_process_and_an_outage"]
async fn spool_child_process() {
    let Ok(dir) = std::env::var("SEXTANT_SPOOL_CHILD_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    let store = OutageTrackingStoreDouble::open(dir);
    let tracker = Tracker::new(store, dir.join("spool")).with_options(quick());
    let finished = tracker
        .start_run(RunSpec {
            experiment: "Default".into(),
            ..RunSpec::default()
        })
        .unwrap();
    log_a_turn(&finished);
    let report = finished.end(RunStatus::Finished).await;
    assert!(!report.delivered);
    // A second run, killed mid-way: what it logged still arrives, ended as KILLED.
    let cut = tracker
        .start_run(RunSpec {
            experiment: "Default".into(),
            run_name: Some("cut".into()),
            ..RunSpec::default()
        })
        .unwrap();
    cut.log_metric("partial", 1.0, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("SPOOLED");
    tokio::time::sleep(Duration::from_secs(600)).await;
    drop(cut);
}

#[tokio::test]
async fn a_finished_run_survives_a_killed_process_and_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("down"), "").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "spool_child_process", "--nocapture"])
        .env("SEXTANT_SPOOL_CHILD_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut spooled = false;
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().contains("SPOOLED") {
            spooled = true;
            break;
        }
    }
    assert!(spooled, "the child reported its spool");
    child.kill().unwrap();
    child.wait().unwrap();

    std::fs::remove_file(dir.path().join("down")).unwrap();
    let store = OutageTrackingStoreDouble::open(dir.path());
    let tracker = Tracker::new(store.clone(), dir.path().join("spool")).with_options(quick());
    let replay = tracker.replay().await.unwrap();
    assert_eq!(replay.delivered.len(), 2, "{replay:?}");
    let runs = store.search_runs(&["0".into()], "", &[], 10).await.unwrap();
    let finished = runs
        .iter()
        .find(|r| r.info.run_name != "cut")
        .expect("the finished run");
    assert_eq!(finished.info.status, RunStatus::Finished);
    assert_eq!(finished.params.get("agent").map(String::as_str), Some("qa"));
    let artifact = store
        .read_artifact(&finished.info.run_id, "interaction.json")
        .await
        .unwrap();
    assert!(!artifact.is_empty());
    let cut = runs
        .iter()
        .find(|r| r.info.run_name == "cut")
        .expect("the killed run");
    assert_eq!(cut.info.status, RunStatus::Killed);
    assert_eq!(cut.metrics.get("partial").map(|m| m.value), Some(1.0));
}

//! [`Tracker`] and [`ActiveRun`]: logging to a run without ever making the caller wait for the
//! backend. Each write goes to a background task that appends it to the run's spool file and sends
//! writes in batches (within MLflow's log-batch limits). While the backend is down, writes stay in
//! the spool and are retried with backoff; [`ActiveRun::end`] makes the spool durable, so a finished
//! run's data survives an outage or a killed process, and [`Tracker::replay`] (run at the start of
//! the next command) delivers what is left.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sextant_redaction::{Placeholders, Redactor};

use tokio::sync::{mpsc, watch};

use super::spool::{Op, Spool, spool_files};
use super::{
    Assessment, DatasetInput, LogBatch, Metric, NewRun, RunStatus, TrackingError, TrackingStore,
};
use crate::retry::{Backoff, Delays};

/// A run to start with a [`Tracker`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSpec {
    /// The experiment's name (created if missing when the run is created).
    pub experiment: String,
    /// A display name.
    pub run_name: Option<String>,
    /// Tags to start with.
    pub tags: std::collections::BTreeMap<String, String>,
    /// Nest it under this run (the backend's id).
    pub parent_run_id: Option<String>,
}

/// How a [`Tracker`] batches and retries.
#[derive(Debug, Clone)]
pub struct TrackerOptions {
    /// How often buffered writes are sent.
    pub flush_interval: Duration,
    /// The longest wait between retries while the backend is down.
    pub max_backoff: Duration,
    /// How long [`ActiveRun::end`] tries to deliver before leaving the rest to [`Tracker::replay`].
    pub end_timeout: Duration,
}

impl Default for TrackerOptions {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            end_timeout: Duration::from_secs(10),
        }
    }
}

/// Starts runs on a [`TrackingStore`], spooling their writes under `spool_dir`.
#[derive(Clone)]
pub struct Tracker {
    store: Arc<dyn TrackingStore>,
    spool_dir: PathBuf,
    options: TrackerOptions,
    redactor: Option<Arc<Redactor>>,
}

/// How a run's writes ended up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    /// The backend's run id, once the run was created there.
    pub run_id: Option<String>,
    /// Whether every write reached the backend.
    pub delivered: bool,
    /// Where the undelivered writes wait for [`Tracker::replay`].
    pub spool: Option<PathBuf>,
    /// Writes the backend refused (not retried), as messages.
    pub refused: Vec<String>,
    /// Writes the spool could not hold (a full or read-only disk), as messages. They were kept
    /// in memory and delivered if the backend took them; if not (`delivered` is false) they
    /// are lost with this process.
    pub spool_errors: Vec<String>,
}

/// What [`Tracker::replay`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayReport {
    /// Runs whose remaining writes were all delivered.
    pub delivered: Vec<String>,
    /// Spool files still waiting (the backend is still down).
    pub waiting: usize,
    /// Writes the backend refused, as messages.
    pub refused: Vec<String>,
    /// Spool lines cut by a crash and skipped (what they held is lost).
    pub skipped_lines: usize,
}

impl Tracker {
    /// A tracker writing to `store`, spooling under `spool_dir`.
    pub fn new(store: Arc<dyn TrackingStore>, spool_dir: impl Into<PathBuf>) -> Self {
        Self {
            store,
            spool_dir: spool_dir.into(),
            options: TrackerOptions::default(),
            redactor: None,
        }
    }

    /// Redacts what its runs log as content (artifacts, assessment rationales and text values)
    /// with `redactor` before it is spooled or sent (`[telemetry.redaction]`), numbering
    /// placeholders per run.
    pub fn with_redactor(mut self, redactor: Arc<Redactor>) -> Self {
        self.redactor = redactor.is_active().then_some(redactor);
        self
    }

    /// With other batching and retry settings.
    pub fn with_options(mut self, options: TrackerOptions) -> Self {
        self.options = options;
        self
    }

    /// The store behind the tracker.
    pub fn store(&self) -> &Arc<dyn TrackingStore> {
        &self.store
    }

    fn backend_id(&self) -> String {
        format!("{} {}", self.store.backend(), self.store.location())
    }

    /// Starts a run. Returns at once: the run is created in the background (and, while the backend
    /// is down, later). Fails only if the spool cannot be written (a full or read-only disk).
    pub fn start_run(&self, run: RunSpec) -> Result<ActiveRun, TrackingError> {
        let spool_error = |error: std::io::Error| TrackingError::Backend {
            backend: "spool",
            message: format!(
                "cannot write the run's spool under {}: {error}",
                self.spool_dir.display()
            ),
        };
        let mut spool = Spool::create(&self.spool_dir, &self.backend_id()).map_err(spool_error)?;
        // A run is often named after the question it answers.
        let run_name = match (&self.redactor, run.run_name) {
            (Some(redactor), Some(name)) => {
                Some(redactor.redact(&name, &mut Placeholders::default()).text)
            }
            (_, name) => name,
        };
        let create = Op::Create {
            experiment: run.experiment,
            run_name,
            start_time_ms: crate::now_ms(),
            tags: run.tags,
            parent_run_id: run.parent_run_id,
        };
        let seq = spool.append(&create, None).map_err(spool_error)?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let (run_id_sender, run_id) = watch::channel(None);
        let delivery = Delivery {
            store: self.store.clone(),
            spool,
            pending: vec![(seq, create)],
            run_id: None,
            refused: Vec::new(),
            retry: DeliveryRetry::new(self.options.max_backoff),
            run_id_sender: Some(run_id_sender),
            unspooled_artifacts: HashMap::new(),
            spool_errors: Vec::new(),
        };
        let worker = tokio::spawn(work(delivery, receiver, self.options.clone()));
        Ok(ActiveRun {
            sender,
            run_id,
            worker,
            redaction: self
                .redactor
                .clone()
                .map(|redactor| (redactor, Mutex::default())),
        })
    }

    /// Delivers the writes left in spool files by earlier processes for this backend (skipping
    /// runs still live in another process). Stops at the first outage.
    pub async fn replay(&self) -> Result<ReplayReport, TrackingError> {
        let mut report = ReplayReport::default();
        let backend = self.backend_id();
        for path in spool_files(&self.spool_dir) {
            let recovered = match Spool::recover(&path) {
                Ok(Some(recovered)) if recovered.backend == backend => recovered,
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!("skipping spool file {}: {error}", path.display());
                    continue;
                }
            };
            report.skipped_lines += recovered.skipped_lines;
            let mut pending = recovered.pending;
            let mut spool = recovered.spool;
            if !recovered.ended {
                // Its process died before ending it (the spool was not locked).
                let end = Op::End {
                    status: RunStatus::Killed,
                    end_time_ms: crate::now_ms(),
                };
                match spool.append(&end, None) {
                    Ok(seq) => pending.push((seq, end)),
                    Err(error) => {
                        tracing::error!(
                            "cannot spool a killed run's end ({error}); sending it now"
                        );
                        pending.push((spool.skip(), end));
                    }
                }
            }
            let mut delivery = Delivery {
                store: self.store.clone(),
                spool,
                pending,
                run_id: recovered.run_id,
                refused: Vec::new(),
                retry: DeliveryRetry::new(self.options.max_backoff),
                run_id_sender: None,
                unspooled_artifacts: HashMap::new(),
                spool_errors: Vec::new(),
            };
            let outage = delivery.deliver().await;
            report.refused.append(&mut delivery.refused);
            match outage {
                Err(error) => {
                    report.waiting += 1;
                    tracing::warn!("replaying {}: {error}", path.display());
                    return Ok(report);
                }
                Ok(()) => {
                    if let Some(id) = delivery.run_id.clone() {
                        report.delivered.push(id);
                    }
                    delivery.spool.remove();
                }
            }
        }
        Ok(report)
    }
}

enum Message {
    Op(Op, Option<Vec<u8>>),
}

/// A run being logged to; see the [module docs](self). Dropping it without [`ActiveRun::end`]
/// ends the run as `KILLED`.
pub struct ActiveRun {
    sender: mpsc::UnboundedSender<Message>,
    run_id: watch::Receiver<Option<String>>,
    worker: tokio::task::JoinHandle<RunReport>,
    /// The redactor and this run's placeholder numbering.
    redaction: Option<(Arc<Redactor>, Mutex<Placeholders>)>,
}

impl ActiveRun {
    fn send(&self, op: Op, artifact: Option<Vec<u8>>) {
        // The worker lives until `end`; a send can only fail after a panic there.
        let _ = self.sender.send(Message::Op(op, artifact));
    }

    /// Logs parameters (immutable: logging a key again with another value is refused).
    pub fn log_params<K: Into<String>, V: ToString>(
        &self,
        params: impl IntoIterator<Item = (K, V)>,
    ) {
        let batch = LogBatch {
            params: params
                .into_iter()
                .map(|(k, v)| (k.into(), v.to_string()))
                .collect(),
            ..LogBatch::default()
        };
        for part in batch.split() {
            self.send(Op::Log { batch: part }, None);
        }
    }

    /// Logs one metric value at `step`, timestamped now.
    pub fn log_metric(&self, key: impl Into<String>, value: f64, step: i64) {
        self.log_metrics([(key, value)], step);
    }

    /// Logs several metric values at `step`, timestamped now.
    pub fn log_metrics<K: Into<String>>(
        &self,
        metrics: impl IntoIterator<Item = (K, f64)>,
        step: i64,
    ) {
        let now = crate::now_ms();
        let batch = LogBatch {
            metrics: metrics
                .into_iter()
                .map(|(key, value)| Metric {
                    key: key.into(),
                    value,
                    timestamp_ms: now,
                    step,
                })
                .collect(),
            ..LogBatch::default()
        };
        for part in batch.split() {
            self.send(Op::Log { batch: part }, None);
        }
    }

    /// Sets tags.
    pub fn set_tags<K: Into<String>, V: Into<String>>(
        &self,
        tags: impl IntoIterator<Item = (K, V)>,
    ) {
        let batch = LogBatch {
            tags: tags
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            ..LogBatch::default()
        };
        for part in batch.split() {
            self.send(Op::Log { batch: part }, None);
        }
    }

    /// Stores `contents` as the artifact at `path` (relative, `/`-separated).
    pub fn log_artifact(&self, path: impl Into<String>, contents: Vec<u8>) {
        let contents = self.redact_artifact(contents);
        self.send(Op::Artifact { path: path.into() }, Some(contents));
    }

    /// `contents` with secrets and personal values replaced, when a redactor is set and the
    /// contents are text ([`Redactor::redact_json_or_text`]: a JSON document value by value and
    /// in its own layout, other text as text). Binary contents are logged as they are.
    fn redact_artifact(&self, contents: Vec<u8>) -> Vec<u8> {
        let Some((redactor, placeholders)) = &self.redaction else {
            return contents;
        };
        let Ok(text) = std::str::from_utf8(&contents) else {
            return contents;
        };
        let mut placeholders = placeholders.lock().unwrap_or_else(|e| e.into_inner());
        let redacted = redactor.redact_json_or_text(text, &mut placeholders);
        if redacted.count == 0 {
            return contents;
        }
        redacted.text.into_bytes()
    }

    /// Records that the run used `dataset` (its name, digest and source).
    pub fn log_dataset(&self, dataset: DatasetInput) {
        self.send(
            Op::Inputs {
                datasets: vec![dataset],
            },
            None,
        );
    }

    /// Attaches `assessment` to its trace, recording this run as its source
    /// ([`SOURCE_RUN_ID_KEY`](super::SOURCE_RUN_ID_KEY)); spooled like the run's other writes.
    pub fn log_assessment(&self, mut assessment: Assessment) {
        if let Some((redactor, placeholders)) = &self.redaction {
            let mut placeholders = placeholders.lock().unwrap_or_else(|e| e.into_inner());
            assessment.redact(redactor, &mut placeholders);
        }
        self.send(
            Op::Assessment {
                assessment: Box::new(assessment),
            },
            None,
        );
    }

    /// The backend's id of the run, waiting up to `timeout` for it to be created.
    pub async fn run_id(&self, timeout: Duration) -> Option<String> {
        let mut receiver = self.run_id.clone();
        let wait = receiver.wait_for(Option::is_some);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(id)) => id.clone(),
            _ => self.run_id.borrow().clone(),
        }
    }

    /// Ends the run with `status`: delivers what it can within the tracker's end timeout and
    /// leaves the rest, durably, for [`Tracker::replay`].
    pub async fn end(self, status: RunStatus) -> RunReport {
        self.send(
            Op::End {
                status,
                end_time_ms: crate::now_ms(),
            },
            None,
        );
        drop(self.sender);
        self.worker.await.unwrap_or_else(|error| RunReport {
            refused: vec![format!("the tracking task failed: {error}")],
            ..RunReport::default()
        })
    }
}

/// The writes of one run still to deliver, and where they stand.
struct Delivery {
    store: Arc<dyn TrackingStore>,
    spool: Spool,
    pending: Vec<(u64, Op)>,
    run_id: Option<String>,
    refused: Vec<String>,
    retry: DeliveryRetry,
    run_id_sender: Option<watch::Sender<Option<String>>>,
    /// Artifact bytes of writes the spool could not hold, by sequence number.
    unspooled_artifacts: HashMap<u64, Vec<u8>>,
    /// Why writes could not be spooled.
    spool_errors: Vec<String>,
}

impl Delivery {
    /// Spools `op` and queues it for delivery. A write the spool cannot hold (a full disk) is
    /// kept in memory and delivered all the same, and the error is reported with the run.
    fn spool_and_queue(&mut self, op: Op, artifact: Option<Vec<u8>>) {
        match self.spool.append(&op, artifact.as_deref()) {
            Ok(seq) => self.pending.push((seq, op)),
            Err(error) => {
                let seq = self.spool.skip();
                tracing::error!(
                    spool = %self.spool.path().display(),
                    "cannot spool a tracking write ({error}); it is kept in memory only and is \
                     lost if this process ends before the backend takes it"
                );
                self.spool_errors.push(format!(
                    "cannot write to the spool {}: {error}",
                    self.spool.path().display()
                ));
                if let Some(bytes) = artifact {
                    self.unspooled_artifacts.insert(seq, bytes);
                }
                self.pending.push((seq, op));
            }
        }
    }

    fn ack(&mut self, seq: u64) {
        if let Err(error) = self.spool.ack(seq, self.run_id.as_deref()) {
            tracing::warn!(
                "cannot write to the spool {}: {error}",
                self.spool.path().display()
            );
        }
    }

    /// Sends pending writes in order; stops at an outage (retried later).
    async fn deliver(&mut self) -> Result<(), TrackingError> {
        while !self.pending.is_empty() {
            let (seq, op) = self.pending[0].clone();
            let result = match &op {
                Op::Create {
                    experiment,
                    run_name,
                    start_time_ms,
                    tags,
                    parent_run_id,
                } if self.run_id.is_none() => {
                    match self.store.get_or_create_experiment(experiment).await {
                        Ok(experiment_id) => self
                            .store
                            .create_run(NewRun {
                                experiment_id,
                                run_name: run_name.clone(),
                                start_time_ms: Some(*start_time_ms),
                                tags: tags.clone(),
                                parent_run_id: parent_run_id.clone(),
                            })
                            .await
                            .map(|info| {
                                self.run_id = Some(info.run_id.clone());
                                if let Some(sender) = &self.run_id_sender {
                                    let _ = sender.send(Some(info.run_id));
                                }
                            }),
                        Err(error) => Err(error),
                    }
                }
                Op::Create { .. } => Ok(()),
                Op::Log { .. } => {
                    // Consecutive writes travel together while they fit one call.
                    let mut batch = LogBatch::default();
                    let mut last = seq;
                    let mut taken = 0;
                    for (s, op) in &self.pending {
                        let Op::Log { batch: next } = op else { break };
                        if batch.metrics.len() + next.metrics.len() > LogBatch::MAX_METRICS
                            || batch.params.len() + next.params.len() > LogBatch::MAX_PARAMS
                            || batch.tags.len() + next.tags.len() > LogBatch::MAX_TAGS
                        {
                            break;
                        }
                        batch.metrics.extend(next.metrics.iter().cloned());
                        batch.params.extend(next.params.iter().cloned());
                        batch.tags.extend(next.tags.iter().cloned());
                        last = *s;
                        taken += 1;
                    }
                    let run_id = self.run_id.clone().unwrap_or_default();
                    match self.store.log_batch(&run_id, &batch).await {
                        Ok(()) => {
                            for (s, _) in self.pending.drain(..taken).collect::<Vec<_>>() {
                                if s != last {
                                    self.ack(s);
                                }
                            }
                            self.ack(last);
                            self.retry.succeeded();
                            continue;
                        }
                        Err(error) => Err(error),
                    }
                }
                Op::Artifact { path } => {
                    let run_id = self.run_id.clone().unwrap_or_default();
                    let bytes = match self.unspooled_artifacts.get(&seq) {
                        Some(bytes) => Ok(bytes.clone()),
                        None => std::fs::read(self.spool.artifact_path(seq)),
                    };
                    match bytes {
                        Ok(bytes) => self.store.log_artifact(&run_id, path, bytes).await,
                        Err(error) => Err(TrackingError::Invalid {
                            what: format!("artifact `{path}`"),
                            message: format!("its spooled copy is gone: {error}"),
                        }),
                    }
                }
                Op::Inputs { datasets } => {
                    let run_id = self.run_id.clone().unwrap_or_default();
                    self.store.log_inputs(&run_id, datasets).await
                }
                Op::Assessment { assessment } => {
                    let mut assessment = (**assessment).clone();
                    if let Some(run_id) = &self.run_id {
                        assessment
                            .metadata
                            .entry(super::SOURCE_RUN_ID_KEY.to_owned())
                            .or_insert_with(|| run_id.clone());
                    }
                    self.store.log_assessment(&assessment).await.map(|_| ())
                }
                Op::End {
                    status,
                    end_time_ms,
                } => {
                    let run_id = self.run_id.clone().unwrap_or_default();
                    self.store
                        .update_run(&run_id, *status, Some(*end_time_ms))
                        .await
                }
            };
            match result {
                Ok(()) => {
                    self.pending.remove(0);
                    self.ack(seq);
                    self.retry.succeeded();
                }
                Err(error) if error.is_outage() => {
                    self.retry.failed();
                    return Err(error);
                }
                Err(error) => {
                    let create_failed = matches!(op, Op::Create { .. });
                    tracing::warn!("the tracking backend refused a write: {error}");
                    self.refused.push(error.to_string());
                    self.pending.remove(0);
                    self.ack(seq);
                    if create_failed {
                        // Nothing can be written to a run that was never created.
                        for (s, _) in std::mem::take(&mut self.pending) {
                            self.ack(s);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// When a run's delivery may try again after an outage: the shared [`Backoff`], 500 ms doubling
/// up to the tracker's `max_backoff`, taken one wait per failed attempt and started over once a
/// write gets through.
struct DeliveryRetry {
    policy: Backoff,
    delays: Delays,
    retry_at: Option<Instant>,
}

impl DeliveryRetry {
    fn new(max_backoff: Duration) -> Self {
        let policy = Backoff::new(Duration::from_millis(500), max_backoff);
        Self {
            delays: policy.delays(),
            policy,
            retry_at: None,
        }
    }

    fn failed(&mut self) {
        let wait = self.delays.next().unwrap_or(self.policy.max_backoff);
        self.retry_at = Some(Instant::now() + wait);
    }

    fn succeeded(&mut self) {
        if self.retry_at.take().is_some() {
            self.delays = self.policy.delays();
        }
    }

    fn may_retry(&self) -> bool {
        self.retry_at.is_none_or(|at| Instant::now() >= at)
    }

    /// How long until the next attempt may start.
    fn wait(&self) -> Duration {
        self.retry_at
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }
}

async fn work(
    mut delivery: Delivery,
    mut receiver: mpsc::UnboundedReceiver<Message>,
    options: TrackerOptions,
) -> RunReport {
    let mut ticker = tokio::time::interval(options.flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = receiver.recv() => {
                let (op, artifact) = match message {
                    Some(Message::Op(op, artifact)) => (op, artifact),
                    // Dropped without `end`: the run did not finish.
                    None => (Op::End { status: RunStatus::Killed, end_time_ms: crate::now_ms() }, None),
                };
                let is_end = matches!(op, Op::End { .. });
                delivery.spool_and_queue(op, artifact);
                if is_end {
                    break;
                }
            }
            _ = ticker.tick() => {
                if delivery.retry.may_retry() && !delivery.pending.is_empty() {
                    let _ = delivery.deliver().await;
                }
            }
        }
    }
    if let Err(error) = delivery.spool.sync() {
        tracing::error!("cannot sync the tracking spool: {error}");
        delivery.spool_errors.push(format!(
            "cannot sync the spool {}: {error}",
            delivery.spool.path().display()
        ));
    }
    // Final delivery, bounded: the rest waits in the spool.
    let deadline = Instant::now() + options.end_timeout;
    loop {
        match tokio::time::timeout_at(deadline.into(), delivery.deliver()).await {
            Ok(Ok(())) => break,
            Ok(Err(_)) if Instant::now() < deadline => {
                let wait = delivery.retry.wait();
                tokio::time::sleep(wait.min(deadline.saturating_duration_since(Instant::now())))
                    .await;
            }
            _ => break,
        }
    }
    let delivered = delivery.pending.is_empty();
    let spool = (!delivered).then(|| delivery.spool.path().to_owned());
    let report = RunReport {
        run_id: delivery.run_id.clone(),
        delivered,
        spool,
        refused: std::mem::take(&mut delivery.refused),
        spool_errors: std::mem::take(&mut delivery.spool_errors),
    };
    if delivered {
        delivery.spool.remove();
    } else if report.spool_errors.is_empty() {
        tracing::warn!(
            "the tracking backend is unavailable: the run's remaining writes wait in {} and are sent by the next command",
            delivery.spool.path().display()
        );
    } else {
        tracing::error!(
            "the tracking backend is unavailable and the spool {} could not hold every write: \
             the writes it did not hold are lost",
            delivery.spool.path().display()
        );
    }
    report
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::local::LocalTrackingStore;
    use crate::tracking::Metric;

    #[tokio::test]
    async fn a_full_disk_is_reported_and_the_writes_still_reach_a_live_backend() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn TrackingStore> = Arc::new(LocalTrackingStore::open(dir.path()).unwrap());
        let mut spool = Spool::create(&dir.path().join("spool"), "local").unwrap();
        let create = Op::Create {
            experiment: "Default".into(),
            run_name: None,
            start_time_ms: 1,
            tags: Default::default(),
            parent_run_id: None,
        };
        let seq = spool.append(&create, None).unwrap();
        // Fault injection: from here on the disk is full (Linux's /dev/full answers ENOSPC).
        spool.redirect_writes(Path::new("/dev/full"));
        let delivery = Delivery {
            store: store.clone(),
            spool,
            pending: vec![(seq, create)],
            run_id: None,
            refused: Vec::new(),
            retry: DeliveryRetry::new(Duration::from_secs(1)),
            run_id_sender: None,
            unspooled_artifacts: HashMap::new(),
            spool_errors: Vec::new(),
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        let metric = Metric {
            key: "accuracy".into(),
            value: 0.5,
            timestamp_ms: 2,
            step: 0,
        };
        let batch = LogBatch {
            metrics: vec![metric],
            ..LogBatch::default()
        };
        sender.send(Message::Op(Op::Log { batch }, None)).unwrap();
        let artifact = Op::Artifact {
            path: "notes.txt".into(),
        };
        sender
            .send(Message::Op(artifact, Some(b"kept in memory".to_vec())))
            .unwrap();
        let end = Op::End {
            status: RunStatus::Finished,
            end_time_ms: 3,
        };
        sender.send(Message::Op(end, None)).unwrap();

        let report = work(delivery, receiver, TrackerOptions::default()).await;
        assert!(
            report
                .spool_errors
                .iter()
                .any(|e| e.contains("No space left on device")),
            "the user is told: {report:?}"
        );
        assert!(
            report.delivered,
            "the live backend took every write: {report:?}"
        );
        let run_id = report.run_id.unwrap();
        let run = store.get_run(&run_id).await.unwrap();
        assert_eq!(run.metrics["accuracy"].value, 0.5);
        assert_eq!(run.info.status, RunStatus::Finished);
        assert_eq!(
            store.read_artifact(&run_id, "notes.txt").await.unwrap(),
            b"kept in memory"
        );
    }
}

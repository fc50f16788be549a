//! A remote sink (an OTLP collector, MLflow's `/v1/traces`) that loses nothing while its backend
//! is down or slow: every batch is encoded and appended to the sink's [`SpanSpool`] first, and a
//! sender thread sends the spool's records in order, deleting each once the backend
//! acknowledged it and waiting with backoff (or the backend's `Retry-After`) while it fails.
//!
//! The agent's threads only ever reach the sink's queue; the queue's thread only waits for the
//! disk; only the sender waits for the network.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::SpanData;
use prost::Message;

use super::counters::SinkCounters;
use super::otlp_traces::{Delivery, OtlpTraceClient};
use super::sink_queue::BatchDestination;
use super::spool::{SenderStatus, SpanSpool, SpooledBatch};
use crate::retry::Backoff;

/// Waits between attempts while the backend fails (unless it says how long); short enough that a
/// backend that is back gets the backlog within seconds.
const RETRY_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(250), Duration::from_secs(5)).with_jitter();

/// What the sender is told by the sink's queue thread.
#[derive(Default)]
struct Signal {
    /// New records were spooled.
    work: bool,
    /// Stop by this time: send what the backend takes until then, leave the rest spooled.
    stop_by: Option<Instant>,
    /// A flush waits: send what is spooled without waiting to fill a request.
    hurry: bool,
}

/// The sender's wake-up call, shared with the queue thread.
struct Wake {
    signal: Mutex<Signal>,
    condvar: Condvar,
    /// Aborts a request in flight when the stop deadline passes.
    deadline: tokio::sync::watch::Sender<Option<Instant>>,
}

impl Wake {
    fn notify(&self, change: impl FnOnce(&mut Signal)) {
        if let Ok(mut signal) = self.signal.lock() {
            change(&mut signal);
        }
        self.condvar.notify_all();
    }
}

/// The queue thread's end of a spooling sink: encodes each batch into the spool.
pub(crate) struct SpoolingSink {
    spool: Arc<SpanSpool>,
    resource: ResourceAttributesWithSchema,
    counters: Arc<SinkCounters>,
    wake: Arc<Wake>,
    sender: Option<JoinHandle<()>>,
}

impl SpoolingSink {
    /// Starts the sender thread for `client`, whose exports run on `runtime`. A request carries
    /// up to `batch_size` spans; while the backend keeps up, the sender waits up to `linger`
    /// for a request to fill.
    pub fn start(
        spool: SpanSpool,
        client: OtlpTraceClient,
        resource: &Resource,
        runtime: tokio::runtime::Handle,
        counters: Arc<SinkCounters>,
        (batch_size, linger): (usize, Duration),
    ) -> std::io::Result<Self> {
        let spool = Arc::new(spool);
        counters.attach_spool(spool.clone());
        let (deadline, _) = tokio::sync::watch::channel(None);
        let wake = Arc::new(Wake {
            signal: Mutex::new(Signal {
                work: true,
                stop_by: None,
                hurry: false,
            }),
            condvar: Condvar::new(),
            deadline,
        });
        let sender = Sender {
            spool: spool.clone(),
            client,
            runtime,
            counters: counters.clone(),
            wake: wake.clone(),
            batch_size: batch_size.max(1) as u64,
            linger,
        };
        let sender = std::thread::Builder::new()
            .name("sextant-span-sender".into())
            .spawn(move || sender.run())?;
        Ok(Self {
            spool,
            resource: resource.into(),
            counters,
            wake,
            sender: Some(sender),
        })
    }

    /// Waits until the spool is empty, the sink fails, or `deadline`.
    fn wait_for_delivery(&self, deadline: Instant) -> bool {
        self.wake.notify(|signal| signal.hurry = true);
        while self.spool.backlog().records > 0 && Instant::now() < deadline {
            if self.counters.is_failing() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.spool.backlog().records == 0
    }
}

impl BatchDestination for SpoolingSink {
    fn deliver(&mut self, batch: Vec<SpanData>) {
        let spans = batch.len() as u32;
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        match self.spool.append(spans, &request.encode_to_vec()) {
            Ok(true) => {
                SinkCounters::add(&self.counters.spooled, u64::from(spans));
                self.wake.notify(|signal| signal.work = true);
            }
            // Counted by the spool as over its quota.
            Ok(false) => {}
            Err(error) => {
                SinkCounters::add(&self.counters.dropped_export_failed, u64::from(spans));
                tracing::error!(
                    sink = %self.counters.name(),
                    spans,
                    "cannot write spans to the spool: {error}; they are lost for this sink"
                );
            }
        }
    }

    fn idle(&mut self) {
        if let Err(error) = self.spool.sync_if_due() {
            tracing::warn!(sink = %self.counters.name(), "cannot sync the span spool: {error}");
        }
    }

    fn flush(&mut self, deadline: Instant) -> OTelSdkResult {
        self.spool
            .sync()
            .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))?;
        // Spooled is safe. A backend that has taken spans in this process gets the chance to
        // take these now; one not heard from yet (perhaps hung until its request timeout) does
        // not hold up a caller that only wants the local store to be complete.
        let heard_from = self.counters.exported.load(Ordering::Relaxed) > 0;
        if heard_from && !self.counters.is_failing() {
            self.wait_for_delivery(deadline);
        } else {
            self.wake.notify(|signal| signal.hurry = true);
        }
        Ok(())
    }

    fn shutdown(&mut self, deadline: Instant) -> OTelSdkResult {
        let synced = self.spool.sync();
        self.wait_for_delivery(deadline);
        self.wake.notify(|signal| signal.stop_by = Some(deadline));
        let _ = self.wake.deadline.send(Some(deadline));
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
        let closed = self.spool.close();
        let left = self.spool.backlog().spans;
        if left > 0 {
            tracing::warn!(
                sink = %self.counters.name(),
                spans = left,
                "{left} spans are kept in the spool and will be sent by the next process \
                 (see `sextant telemetry status`)"
            );
        }
        synced
            .and(closed)
            .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))
    }
}

/// The sender thread: spool → backend, in order.
struct Sender {
    spool: Arc<SpanSpool>,
    client: OtlpTraceClient,
    runtime: tokio::runtime::Handle,
    counters: Arc<SinkCounters>,
    wake: Arc<Wake>,
    batch_size: u64,
    linger: Duration,
}

/// How one attempt at the front record ended.
enum Attempt {
    Settled,
    Failed(Option<Duration>),
    Stopped,
}

impl Sender {
    fn run(self) {
        let mut delays = RETRY_BACKOFF.delays();
        // When an attempt last failed: records written before it waited out an outage, and
        // their delivery is a re-send.
        let mut last_failure_ms: Option<i64> = None;
        // Whether `status.json` may still hold an error (from this or an earlier process).
        let mut status_may_hold_error = true;
        loop {
            if self.stopping_now() {
                return;
            }
            if let Some(wait) = self.time_to_fill() {
                self.wait_to_fill(wait);
                continue;
            }
            let batch = match self.spool.next_batch(self.batch_size) {
                Ok(Some(batch)) => batch,
                Ok(None) => {
                    if !self.wait_for_work() {
                        return;
                    }
                    continue;
                }
                Err(error) => {
                    self.failed(format!("cannot read the spool: {error}"));
                    if !self.pause(Duration::from_secs(5)) {
                        return;
                    }
                    continue;
                }
            };
            let waited_out_an_outage =
                last_failure_ms.is_some_and(|failed| batch.written_ms <= failed);
            match self.attempt(&batch, waited_out_an_outage) {
                Attempt::Settled => {
                    delays = RETRY_BACKOFF.delays();
                    if std::mem::take(&mut status_may_hold_error) {
                        self.write_status(None);
                    }
                }
                Attempt::Failed(after) => {
                    last_failure_ms = Some(crate::now_ms());
                    status_may_hold_error = true;
                    let wait = after
                        .or_else(|| delays.next())
                        .unwrap_or(RETRY_BACKOFF.max_backoff);
                    if !self.pause(wait) {
                        return;
                    }
                }
                Attempt::Stopped => return,
            }
        }
    }

    /// How long to wait for a request to fill: while the backend keeps up, less than a full
    /// request is spooled, and its oldest span is younger than `linger` (not when a flush or
    /// shutdown waits).
    fn time_to_fill(&self) -> Option<Duration> {
        {
            let signal = self.wake.signal.lock().unwrap_or_else(|p| p.into_inner());
            if signal.hurry || signal.stop_by.is_some() {
                return None;
            }
        }
        let backlog = self.spool.backlog();
        if backlog.records == 0 || backlog.spans >= self.batch_size || self.counters.is_failing() {
            return None;
        }
        let age = Duration::from_millis((crate::now_ms() - backlog.oldest_ms?).max(0) as u64);
        self.linger.checked_sub(age).filter(|wait| !wait.is_zero())
    }

    fn attempt(&self, batch: &SpooledBatch, waited_out_an_outage: bool) -> Attempt {
        if let Err(error) = self.spool.mark_in_flight(batch) {
            tracing::warn!(sink = %self.counters.name(), "cannot write the span spool cursor: {error}");
        }
        let mut deadline = self.wake.deadline.subscribe();
        let send = self
            .client
            .send(batch.payload.clone(), &batch.routing_headers);
        let outcome = self.runtime.block_on(async {
            tokio::select! {
                delivery = send => Some(delivery),
                () = stop_deadline(&mut deadline) => None,
            }
        });
        let Some(delivery) = outcome else {
            return Attempt::Stopped;
        };
        let spans = batch.spans;
        match delivery {
            Delivery::Delivered { rejected_spans } => {
                self.recovered();
                self.settle(batch);
                let rejected = rejected_spans.min(spans);
                SinkCounters::add(&self.counters.exported, spans - rejected);
                SinkCounters::add(&self.counters.rejected, rejected);
                if waited_out_an_outage || batch.recovered {
                    SinkCounters::add(&self.counters.resent, spans);
                }
                SinkCounters::add(&self.counters.possible_duplicates, batch.possibly_delivered);
                if rejected > 0 {
                    tracing::warn!(
                        sink = %self.counters.name(),
                        rejected,
                        "the backend accepted a batch but rejected {rejected} of its spans"
                    );
                }
                Attempt::Settled
            }
            Delivery::Rejected { reason } => {
                self.settle(batch);
                SinkCounters::add(&self.counters.rejected, spans);
                SinkCounters::add(&self.counters.export_errors, 1);
                tracing::warn!(
                    sink = %self.counters.name(),
                    spans,
                    "the backend refused a batch for good ({reason}); it is dropped"
                );
                Attempt::Settled
            }
            Delivery::Retry { after, reason } => {
                if let Err(error) = self.spool.release(batch) {
                    tracing::warn!(sink = %self.counters.name(), "cannot write the span spool cursor: {error}");
                }
                SinkCounters::add(&self.counters.export_errors, 1);
                self.failed(reason);
                Attempt::Failed(after)
            }
        }
    }

    fn settle(&self, batch: &SpooledBatch) {
        if let Err(error) = self.spool.ack(batch) {
            tracing::warn!(
                sink = %self.counters.name(),
                "cannot record a delivery in the span spool (the batch may be sent again): {error}"
            );
        }
    }

    /// Notes a failure: one warning when the sink starts failing, not one per batch.
    fn failed(&self, reason: String) {
        self.counters.set_last_error(Some(reason.clone()));
        if !self.counters.failing.swap(true, Ordering::Relaxed) {
            let backlog = self.spool.backlog();
            tracing::warn!(
                sink = %self.counters.name(),
                spooled = backlog.spans,
                "span export is failing ({reason}); spans are kept in the spool and sent when \
                 the backend is back"
            );
            self.write_status(Some(reason));
        }
    }

    fn recovered(&self) {
        if self.counters.failing.swap(false, Ordering::Relaxed) {
            self.counters.set_last_error(None);
            tracing::warn!(
                sink = %self.counters.name(),
                spooled = self.spool.backlog().spans,
                "span export works again; sending what was spooled"
            );
        }
    }

    fn write_status(&self, last_error: Option<String>) {
        let status = SenderStatus {
            last_error_ms: last_error.as_ref().map(|_| crate::now_ms()),
            last_error,
        };
        if let Err(error) = self.spool.write_sender_status(&status) {
            tracing::debug!("cannot write the span sink's status: {error}");
        }
    }

    /// Whether shutdown's deadline passed, or shutdown came and nothing is left to send.
    fn stopping_now(&self) -> bool {
        let signal = self.wake.signal.lock().unwrap_or_else(|p| p.into_inner());
        match signal.stop_by {
            Some(deadline) => {
                Instant::now() >= deadline
                    || self.spool.backlog().records == 0
                    || self.counters.is_failing()
            }
            None => false,
        }
    }

    /// Waits for new records; `false` when it is time to stop.
    fn wait_for_work(&self) -> bool {
        let mut signal = self.wake.signal.lock().unwrap_or_else(|p| p.into_inner());
        // Nothing is spooled: what a flush waited for is sent.
        signal.hurry = false;
        loop {
            if signal.stop_by.is_some() {
                return false;
            }
            if std::mem::take(&mut signal.work) {
                return true;
            }
            signal = self
                .wake
                .condvar
                .wait_timeout(signal, Duration::from_secs(1))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits up to `wait` for a request to fill, less if a flush or shutdown comes.
    fn wait_to_fill(&self, wait: Duration) {
        let signal = self.wake.signal.lock().unwrap_or_else(|p| p.into_inner());
        if signal.hurry || signal.stop_by.is_some() {
            return;
        }
        let _ = self
            .wake
            .condvar
            .wait_timeout_while(signal, wait, |signal| {
                !signal.hurry && signal.stop_by.is_none()
            });
    }

    /// Waits `wait` before the next attempt; `false` when shutdown came meanwhile.
    fn pause(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        let mut signal = self.wake.signal.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if signal.stop_by.is_some() {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            signal = self
                .wake
                .condvar
                .wait_timeout(signal, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Resolves when shutdown's deadline passes (never before shutdown).
async fn stop_deadline(deadline: &mut tokio::sync::watch::Receiver<Option<Instant>>) {
    loop {
        let current = *deadline.borrow_and_update();
        match current {
            Some(at) => {
                tokio::time::sleep_until(at.into()).await;
                return;
            }
            None => {
                if deadline.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

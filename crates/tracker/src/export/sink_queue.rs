//! One sink's bounded queue and the thread that empties it into batches.
//!
//! [`SinkQueue::offer`] never blocks: a full queue drops the span and counts it. The thread takes
//! whatever the queue holds (up to `batch_size` spans) and hands it to the sink's
//! [`BatchDestination`] at once — the local store or a remote sink's spool — so a span is on
//! disk moments after it ended and a `kill -9` finds next to nothing in memory. Under load,
//! batches grow by themselves while the previous one is written.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::SpanData;

use super::BatchConfig;
use super::counters::SinkCounters;

/// Where a sink's batches go.
pub(crate) trait BatchDestination: Send + 'static {
    /// Takes one batch; failures are counted and logged by the destination.
    fn deliver(&mut self, batch: Vec<SpanData>);
    /// Called when no span arrived for a while (a chance to sync).
    fn idle(&mut self) {}
    /// Everything delivered so far is exported, or safe on disk; waits until `deadline` at most.
    fn flush(&mut self, deadline: Instant) -> OTelSdkResult;
    /// Flushes what it can by `deadline` and stops.
    fn shutdown(&mut self, deadline: Instant) -> OTelSdkResult;
}

enum Message {
    Span(Box<SpanData>),
    /// Makes the thread look at its control channel now.
    Wake,
}

enum Control {
    Flush(Instant, Sender<OTelSdkResult>),
    Shutdown(Instant, Sender<OTelSdkResult>),
}

/// A sink's queue, thread and counters.
pub(crate) struct SinkQueue {
    sender: SyncSender<Message>,
    control: Mutex<Sender<Control>>,
    counters: Arc<SinkCounters>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// An answer to a flush or shutdown request, awaited after every sink was asked.
pub(crate) struct Pending(Option<mpsc::Receiver<OTelSdkResult>>);

impl Pending {
    /// The sink's answer, waiting until `deadline` at most.
    pub fn wait(self, deadline: Instant) -> OTelSdkResult {
        let Some(receiver) = self.0 else {
            return Err(OTelSdkError::AlreadyShutdown);
        };
        let timeout = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(OTelSdkError::AlreadyShutdown),
        }
    }
}

impl SinkQueue {
    /// Starts the sink's thread.
    pub fn start(
        config: &BatchConfig,
        counters: Arc<SinkCounters>,
        destination: impl BatchDestination,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::sync_channel(config.queue_size.max(1));
        let (control, control_receiver) = mpsc::channel();
        let batcher = Batcher {
            receiver,
            control: control_receiver,
            batch_size: config.batch_size.max(1),
            schedule_delay: config.schedule_delay,
            destination,
        };
        let thread = std::thread::Builder::new()
            .name("sextant-span-sink".into())
            .spawn(move || batcher.run())?;
        Ok(Self {
            sender,
            control: Mutex::new(control),
            counters,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The sink's counters.
    pub fn counters(&self) -> &Arc<SinkCounters> {
        &self.counters
    }

    /// Queues `span` without waiting; a full queue drops it and counts it.
    pub fn offer(&self, span: SpanData) {
        match self.sender.try_send(Message::Span(Box::new(span))) {
            Ok(()) => SinkCounters::add(&self.counters.queued, 1),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                SinkCounters::add(&self.counters.dropped_queue_full, 1)
            }
        }
    }

    /// Counts a span that arrived after shutdown.
    pub fn count_late(&self) {
        SinkCounters::add(&self.counters.dropped_queue_full, 1);
    }

    /// Asks the thread to flush by `deadline`.
    pub fn request_flush(&self, deadline: Instant) -> Pending {
        self.request(|ack| Control::Flush(deadline, ack))
    }

    /// Asks the thread to flush what it can by `deadline` and stop.
    pub fn request_shutdown(&self, deadline: Instant) -> Pending {
        self.request(|ack| Control::Shutdown(deadline, ack))
    }

    fn request(&self, make: impl FnOnce(Sender<OTelSdkResult>) -> Control) -> Pending {
        let (ack, receiver) = mpsc::channel();
        let sent = self
            .control
            .lock()
            .map(|control| control.send(make(ack)).is_ok())
            .unwrap_or(false);
        // A full queue means the thread is busy and looks at the control channel next.
        let _ = self.sender.try_send(Message::Wake);
        Pending(sent.then_some(receiver))
    }

    /// Waits for the thread to end after a shutdown it acknowledged.
    pub fn join(&self) {
        if let Ok(mut thread) = self.thread.lock()
            && let Some(handle) = thread.take()
        {
            let _ = handle.join();
        }
    }
}

struct Batcher<D> {
    receiver: Receiver<Message>,
    control: Receiver<Control>,
    batch_size: usize,
    schedule_delay: Duration,
    destination: D,
}

impl<D: BatchDestination> Batcher<D> {
    fn run(mut self) {
        let mut batch: Vec<SpanData> = Vec::with_capacity(self.batch_size);
        let mut deadline = Instant::now() + self.schedule_delay;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.receiver.recv_timeout(wait) {
                Ok(Message::Span(span)) => {
                    batch.push(*span);
                    self.take_available(&mut batch);
                    self.deliver(&mut batch);
                    deadline = Instant::now() + self.schedule_delay;
                }
                Ok(Message::Wake) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.deliver(&mut batch);
                    self.destination.idle();
                    deadline = Instant::now() + self.schedule_delay;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.drain(&mut batch);
                    let _ = self
                        .destination
                        .shutdown(Instant::now() + self.schedule_delay);
                    return;
                }
            }
            while let Ok(control) = self.control.try_recv() {
                match control {
                    Control::Flush(deadline, ack) => {
                        self.drain(&mut batch);
                        let _ = ack.send(self.destination.flush(deadline));
                    }
                    Control::Shutdown(deadline, ack) => {
                        self.drain(&mut batch);
                        let _ = ack.send(self.destination.shutdown(deadline));
                        return;
                    }
                }
            }
        }
    }

    /// Adds what the queue holds right now to `batch`, up to `batch_size` spans.
    fn take_available(&mut self, batch: &mut Vec<SpanData>) {
        while batch.len() < self.batch_size {
            match self.receiver.try_recv() {
                Ok(Message::Span(span)) => batch.push(*span),
                Ok(Message::Wake) => {}
                Err(_) => break,
            }
        }
    }

    /// Delivers everything queued so far.
    fn drain(&mut self, batch: &mut Vec<SpanData>) {
        while let Ok(message) = self.receiver.try_recv() {
            if let Message::Span(span) = message {
                batch.push(*span);
                if batch.len() >= self.batch_size {
                    self.deliver(batch);
                }
            }
        }
        self.deliver(batch);
    }

    fn deliver(&mut self, batch: &mut Vec<SpanData>) {
        if !batch.is_empty() {
            let spans = std::mem::replace(batch, Vec::with_capacity(self.batch_size));
            self.destination.deliver(spans);
        }
    }
}

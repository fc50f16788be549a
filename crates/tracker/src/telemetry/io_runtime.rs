//! The private Tokio runtime that OTLP exports run on.

use super::TelemetryError;

/// The runtime that OTLP exports run on: one worker thread, owned by the guard. It is shut down
/// without waiting, so the guard may be dropped inside another runtime.
pub(super) struct IoRuntime(Option<tokio::runtime::Runtime>);

impl IoRuntime {
    pub(super) fn start() -> Result<Self, TelemetryError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sextant-otlp-io")
            .enable_all()
            .build()
            .map(|runtime| Self(Some(runtime)))
            .map_err(TelemetryError::Threads)
    }

    pub(super) fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(runtime) => runtime.handle().clone(),
            None => unreachable!("the I/O runtime is only taken when it is dropped"),
        }
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

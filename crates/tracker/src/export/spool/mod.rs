//! The durable span spool of one remote sink: an append-only log of encoded export requests on
//! disk, read back in order by the sink's sender and deleted only once the backend acknowledged.
//!
//! ```text
//! <spool dir>/<sink key>/sink.json            which sink (its URL without credentials)
//!                       /status.json          the sender's last error, for `sextant telemetry status`
//!                       /<lane>/lock          held while the lane's process lives
//!                             /lane.json      the lane's routing headers (MLflow experiment and run)
//!                             /cursor         the next unacknowledged record, and whether it was in flight
//!                             /<n>.seg        segments (see `segment.rs`)
//! ```
//!
//! Each process writes its own lane; lanes left by processes that died (their lock is free) are
//! adopted at start-up and drained first, oldest first. The spool is bounded by `max_bytes` over
//! all lanes: past it the oldest segment is deleted and its unsent spans counted as dropped. The
//! in-memory index holds one small header per unsent record.

mod lane;
mod segment;

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use self::lane::{Lane, Position};
pub use self::lane::{LaneStatus, SinkSpoolStatus, spool_status};
use self::segment::ReadRecord;
use crate::durable_file::write_durably;
use crate::telemetry::{FsyncPolicy, SpoolConfig};

/// How often an `interval` fsync policy syncs.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Consecutive records of one segment read from the spool to be sent as one request.
#[derive(Debug)]
pub(crate) struct SpooledBatch {
    records: Vec<Position>,
    /// Where the batch ends: the in-flight mark a crash leaves in the cursor.
    end: (u64, u64),
    /// The records' encoded export requests, concatenated: protobuf merges them into one
    /// request whose `resource_spans` are all of theirs.
    pub payload: Vec<u8>,
    /// Spans in the batch.
    pub spans: u64,
    /// When its oldest record was written (ms since the epoch).
    pub written_ms: i64,
    /// Headers that route the spans (MLflow experiment and run) as the writing process had them.
    pub routing_headers: Arc<BTreeMap<String, String>>,
    /// Written by an earlier process.
    pub recovered: bool,
    /// Spans an earlier process had sent when it died, before the acknowledgement was recorded:
    /// the backend may have them already.
    pub possibly_delivered: u64,
}

/// What the spool did on its own (besides storing and handing out records).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SpoolLosses {
    /// Unsent spans deleted because the spool was over its quota.
    pub spans_over_quota: u64,
    /// Records whose checksum failed (skipped; their spans are unknown if the count was hit).
    pub corrupt_records: u64,
    /// Spans of corrupt records, as far as their headers tell.
    pub corrupt_spans: u64,
    /// Bytes of torn records found at the end of segments after a crash.
    pub torn_bytes: u64,
}

/// What is waiting in the spool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SpoolBacklog {
    pub records: u64,
    pub spans: u64,
    /// Segment bytes on disk.
    pub bytes: u64,
    /// When the oldest unsent record was written (ms since the epoch).
    pub oldest_ms: Option<i64>,
}

/// What `sink.json` records about a sink, for the status command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SinkDescription {
    pub sink: String,
}

/// What `status.json` records: the sender's last error while the sink failed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SenderStatus {
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
}

/// The spool of one sink (see the module documentation). Shared by the sink's intake (appends)
/// and sender (reads and acknowledgements).
pub(crate) struct SpanSpool {
    sink_dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    fsync: FsyncPolicy,
    state: Mutex<State>,
}

struct State {
    /// Adopted lanes, oldest first, then this process's own lane.
    lanes: VecDeque<Lane>,
    bytes: u64,
    pending_spans: u64,
    pending_records: u64,
    in_flight: Option<Position>,
    losses: SpoolLosses,
    last_sync: Instant,
    unsynced: bool,
}

impl std::fmt::Debug for SpanSpool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanSpool")
            .field("dir", &self.sink_dir)
            .field("backlog", &self.backlog())
            .finish_non_exhaustive()
    }
}

impl SpanSpool {
    /// Opens the spool of the sink `key` under `dir`: adopts the lanes of dead processes and
    /// starts this process's own lane. `description` names the sink for the status command;
    /// `routing_headers` are stored with this process's records.
    pub fn open(
        dir: &Path,
        key: &str,
        description: &str,
        config: &SpoolConfig,
        routing_headers: BTreeMap<String, String>,
    ) -> io::Result<Self> {
        let sink_dir = dir.join(key);
        std::fs::create_dir_all(&sink_dir)?;
        let sink_json = serde_json::to_vec_pretty(&SinkDescription {
            sink: description.to_owned(),
        })
        .map_err(io::Error::other)?;
        write_durably(&sink_dir.join("sink.json"), &sink_json)?;
        let mut losses = SpoolLosses::default();
        let mut lanes = VecDeque::new();
        for lane_dir in lane::lane_dirs(&sink_dir)? {
            match Lane::adopt(&lane_dir, &mut losses) {
                Ok(Some(lane)) if lane.is_empty() => lane.remove(),
                Ok(Some(lane)) => lanes.push_back(lane),
                Ok(None) => {}
                Err(error) => tracing::warn!(
                    lane = %lane_dir.display(),
                    "a span spool left by an earlier process cannot be read: {error}"
                ),
            }
        }
        let left: u64 = lanes.iter().map(Lane::pending_spans).sum();
        if left > 0 {
            tracing::warn!(
                sink = %description,
                spans = left,
                "{left} spans spooled by earlier processes are sent first"
            );
        }
        lanes.push_back(Lane::create(&sink_dir, routing_headers)?);
        let bytes = lanes.iter().map(Lane::bytes).sum();
        let pending_spans = lanes.iter().map(Lane::pending_spans).sum();
        let pending_records = lanes.iter().map(Lane::pending_records).sum();
        // A segment is the unit deleted past the quota: small enough that the quota holds
        // closely, large enough that files stay few.
        let segment_bytes = (config.max_bytes / 16).clamp(64 * 1024, 16 * 1024 * 1024);
        Ok(Self {
            sink_dir,
            max_bytes: config.max_bytes,
            segment_bytes,
            fsync: config.fsync,
            state: Mutex::new(State {
                lanes,
                bytes,
                pending_spans,
                pending_records,
                in_flight: None,
                losses,
                last_sync: Instant::now(),
                unsynced: false,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends an encoded export request of `spans` spans. Past the quota the oldest segments
    /// go first (their unsent spans are counted in [`SpoolLosses::spans_over_quota`]); a record
    /// that alone exceeds the quota is dropped and counted the same way. Returns whether it was
    /// stored.
    pub fn append(&self, spans: u32, payload: &[u8]) -> io::Result<bool> {
        let bytes = segment::encode(crate::now_ms(), spans, payload);
        let len = bytes.len() as u64;
        let mut guard = self.state();
        let state = &mut *guard;
        while state.bytes + len > self.max_bytes {
            if !state.drop_oldest_segment() {
                state.losses.spans_over_quota += u64::from(spans);
                return Ok(false);
            }
        }
        let Some(own) = state.lanes.back_mut().filter(|lane| lane.is_own()) else {
            return Err(io::Error::other("the span spool is closed"));
        };
        let added = own.append(&bytes, self.segment_bytes)?;
        state.bytes += added;
        state.pending_spans += u64::from(spans);
        state.pending_records += 1;
        match self.fsync {
            FsyncPolicy::Always => own.sync()?,
            FsyncPolicy::Interval => {
                state.unsynced = true;
                if state.last_sync.elapsed() >= SYNC_INTERVAL {
                    state.sync()?;
                }
            }
            FsyncPolicy::Never => {}
        }
        Ok(true)
    }

    /// Syncs appended records to disk if the fsync policy's interval has passed.
    pub fn sync_if_due(&self) -> io::Result<()> {
        let mut state = self.state();
        if state.unsynced && state.last_sync.elapsed() >= SYNC_INTERVAL {
            state.sync()?;
        }
        Ok(())
    }

    /// Syncs every appended record to disk now (at flush and shutdown), whatever the policy
    /// (except `never`).
    pub fn sync(&self) -> io::Result<()> {
        if self.fsync == FsyncPolicy::Never {
            return Ok(());
        }
        self.state().sync()
    }

    /// The oldest unacknowledged records, up to `max_spans` spans from one segment (at least
    /// one record), or `None` when everything was sent. Corrupt records are skipped (and
    /// counted); drained lanes of earlier processes are deleted.
    pub fn next_batch(&self, max_spans: u64) -> io::Result<Option<SpooledBatch>> {
        let mut state = self.state();
        'lanes: loop {
            let Some(lane) = state.lanes.front_mut() else {
                return Ok(None);
            };
            let headers = lane.front_batch(max_spans);
            if headers.is_empty() {
                if lane.is_own() {
                    return Ok(None);
                }
                let lane = state.lanes.pop_front().expect("the front lane exists");
                lane.remove();
                continue;
            }
            let mut batch = SpooledBatch {
                records: Vec::with_capacity(headers.len()),
                end: (0, 0),
                payload: Vec::new(),
                spans: 0,
                written_ms: headers[0].1.written_ms,
                routing_headers: lane.routing_headers(),
                recovered: !lane.is_own(),
                possibly_delivered: 0,
            };
            for (position, header) in headers {
                match lane.read_record(position, &header)? {
                    ReadRecord::Whole { spans, payload } => {
                        batch.payload.extend_from_slice(&payload);
                        batch.spans += u64::from(spans);
                        if lane.possibly_delivered(position) {
                            batch.possibly_delivered += u64::from(spans);
                        }
                        batch.records.push(position);
                        batch.end = (position.segment, header.end);
                    }
                    ReadRecord::Corrupt if batch.records.is_empty() => {
                        state.losses.corrupt_records += 1;
                        state.losses.corrupt_spans += u64::from(header.spans);
                        tracing::warn!(
                            spool = %self.sink_dir.display(),
                            "skipped a span spool record whose checksum does not match"
                        );
                        state.settle_front(self.fsync)?;
                        continue 'lanes;
                    }
                    // Sent after what comes before it, on the next call.
                    ReadRecord::Corrupt => break,
                }
            }
            return Ok(Some(batch));
        }
    }

    /// Records that `batch` is being sent, so that a crash before [`ack`](Self::ack) marks its
    /// records as possibly delivered.
    pub fn mark_in_flight(&self, batch: &SpooledBatch) -> io::Result<()> {
        let mut state = self.state();
        state.in_flight = batch.records.first().copied();
        self.write_in_flight(&mut state, batch, Some(batch.end))
    }

    /// Sending `batch` failed: the backend does not have it.
    pub fn release(&self, batch: &SpooledBatch) -> io::Result<()> {
        let mut state = self.state();
        state.in_flight = None;
        self.write_in_flight(&mut state, batch, None)
    }

    fn write_in_flight(
        &self,
        state: &mut State,
        batch: &SpooledBatch,
        end: Option<(u64, u64)>,
    ) -> io::Result<()> {
        match (state.lanes.front(), batch.records.first()) {
            (Some(lane), Some(first)) if lane.id() == first.lane => {
                lane.write_cursor(end, self.fsync == FsyncPolicy::Always)
            }
            _ => Ok(()),
        }
    }

    /// The backend has `batch` (or refused it for good): forgets its records, deleting their
    /// segments once every record in them is settled.
    pub fn ack(&self, batch: &SpooledBatch) -> io::Result<()> {
        let mut state = self.state();
        state.in_flight = None;
        for position in &batch.records {
            // Past the quota, a record may have gone while it was being sent.
            let front = state.lanes.front().and_then(Lane::front).map(|(p, _)| p);
            if front != Some(*position) {
                break;
            }
            state.settle_front(self.fsync)?;
        }
        Ok(())
    }

    /// What is waiting to be sent.
    pub fn backlog(&self) -> SpoolBacklog {
        let state = self.state();
        SpoolBacklog {
            records: state.pending_records,
            spans: state.pending_spans,
            bytes: state.bytes,
            oldest_ms: state.lanes.iter().find_map(Lane::oldest_ms),
        }
    }

    /// What the spool dropped or skipped so far.
    pub fn losses(&self) -> SpoolLosses {
        self.state().losses
    }

    /// Writes the sender's status (its last error) for the status command.
    pub fn write_sender_status(&self, status: &SenderStatus) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(status).map_err(io::Error::other)?;
        write_durably(&self.sink_dir.join("status.json"), &bytes)
    }

    /// Syncs and closes the spool at shutdown; this process's lane is deleted if nothing in it
    /// waits.
    pub fn close(&self) -> io::Result<()> {
        let mut state = self.state();
        if self.fsync != FsyncPolicy::Never {
            state.sync()?;
        }
        if state
            .lanes
            .back()
            .is_some_and(|own| own.is_own() && own.is_empty())
        {
            state.lanes.pop_back().expect("the own lane").remove();
        }
        Ok(())
    }
}

impl State {
    fn sync(&mut self) -> io::Result<()> {
        if let Some(own) = self.lanes.back() {
            own.sync()?;
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Forgets the front record (sent, rejected or corrupt) and persists the cursor.
    fn settle_front(&mut self, fsync: FsyncPolicy) -> io::Result<()> {
        let lane = self.lanes.front_mut().expect("a front lane");
        let (spans, freed) = lane.pop_front(fsync == FsyncPolicy::Always)?;
        self.pending_spans -= spans;
        self.pending_records -= 1;
        self.bytes -= freed;
        Ok(())
    }

    /// Deletes the oldest segment that is neither being sent nor being written, counting its
    /// unsent spans as dropped. `false` when there is none.
    fn drop_oldest_segment(&mut self) -> bool {
        let in_flight = self.in_flight;
        for lane in self.lanes.iter_mut() {
            if let Some(dropped) = lane.drop_oldest_segment(in_flight) {
                self.losses.spans_over_quota += dropped.spans;
                self.pending_spans -= dropped.spans;
                self.pending_records -= dropped.records;
                self.bytes -= dropped.bytes;
                tracing::debug!(
                    spans = dropped.spans,
                    "the span spool is over its quota: dropped its oldest segment"
                );
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests;

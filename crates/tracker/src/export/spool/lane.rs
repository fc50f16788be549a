//! One process's lane of a span spool: its segments, its cursor (the next unacknowledged
//! record) and its lock; and the read-only view of every lane behind `sextant telemetry status`.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::segment::{self, ReadRecord, RecordHeader};
use super::{SenderStatus, SinkDescription, SpoolLosses};
use crate::durable_file::{sync_dir, write_durably};

/// Where a record is: its lane (an in-process id), segment and offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    pub lane: u64,
    pub segment: u64,
    pub offset: u64,
}

/// Bytes of the cursor file: segment, offset, in-flight flag, in-flight end, checksum.
const CURSOR_LEN: usize = 37;

/// The cursor: records before `(segment, offset)` are settled; `in_flight_end` says the records
/// from the cursor up to that `(segment, offset)` were being sent when it was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cursor {
    segment: u64,
    offset: u64,
    in_flight_end: Option<(u64, u64)>,
}

impl Cursor {
    fn encode(self) -> [u8; CURSOR_LEN] {
        let mut bytes = [0u8; CURSOR_LEN];
        bytes[0..8].copy_from_slice(&self.segment.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.offset.to_le_bytes());
        if let Some((segment, offset)) = self.in_flight_end {
            bytes[16] = 1;
            bytes[17..25].copy_from_slice(&segment.to_le_bytes());
            bytes[25..33].copy_from_slice(&offset.to_le_bytes());
        }
        let crc = crc32fast::hash(&bytes[..33]);
        bytes[33..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// The cursor in `bytes`, or `None` when it is missing or torn (then every record counts
    /// as unsent: at worst some are sent twice).
    fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; CURSOR_LEN] = bytes.get(..CURSOR_LEN)?.try_into().ok()?;
        let crc = u32::from_le_bytes(bytes[33..].try_into().ok()?);
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        (crc32fast::hash(&bytes[..33]) == crc).then(|| Self {
            segment: u64_at(0),
            offset: u64_at(8),
            in_flight_end: (bytes[16] != 0).then(|| (u64_at(17), u64_at(25))),
        })
    }
}

struct Segment {
    index: u64,
    path: PathBuf,
    /// Unsettled records, in order.
    records: VecDeque<RecordHeader>,
    /// Bytes of the file.
    bytes: u64,
    reader: Option<File>,
}

impl Segment {
    fn spans(&self) -> u64 {
        self.records.iter().map(|r| u64::from(r.spans)).sum()
    }
}

/// What a segment deleted past the quota held.
pub(super) struct Dropped {
    pub spans: u64,
    pub records: u64,
    pub bytes: u64,
}

static NEXT_LANE_ID: AtomicU64 = AtomicU64::new(1);

/// One lane (see the module documentation).
pub(super) struct Lane {
    id: u64,
    dir: PathBuf,
    _lock: File,
    cursor_file: File,
    routing_headers: Arc<BTreeMap<String, String>>,
    segments: VecDeque<Segment>,
    /// This process's lane, which it appends to.
    own: bool,
    /// The open segment of the own lane (the last one), once something was written.
    writer: Option<File>,
    next_index: u64,
    /// Records before this `(segment, offset)` were in flight when their process died: the
    /// backend may have them.
    possibly_delivered_until: Option<(u64, u64)>,
}

/// A segment left holding only settled records is deleted once it is this large, even while it
/// is the one being written (a new one starts with the next record).
const RECYCLE_BYTES: u64 = 1024 * 1024;

impl Lane {
    /// This process's new lane in `sink_dir`, locked.
    pub fn create(sink_dir: &Path, routing_headers: BTreeMap<String, String>) -> io::Result<Self> {
        let name = format!("{:013}-{:08x}", crate::now_ms(), rand::random::<u32>());
        let dir = sink_dir.join(name);
        std::fs::create_dir(&dir)?;
        let lock = lock_file(&dir)?;
        lock.try_lock().map_err(io::Error::other)?;
        let json = serde_json::to_vec_pretty(&routing_headers).map_err(io::Error::other)?;
        write_durably(&dir.join("lane.json"), &json)?;
        let cursor_file = open_cursor(&dir)?;
        let lane = Self {
            id: NEXT_LANE_ID.fetch_add(1, Ordering::Relaxed),
            dir,
            _lock: lock,
            cursor_file,
            routing_headers: Arc::new(routing_headers),
            segments: VecDeque::new(),
            own: true,
            writer: None,
            next_index: 1,
            possibly_delivered_until: None,
        };
        lane.write_cursor(None, true)?;
        sync_dir(&lane.dir)?;
        sync_dir(sink_dir)?;
        Ok(lane)
    }

    /// The lane in `dir` left by a process that is gone, or `None` while its process lives.
    /// Settled segments are deleted; torn tails are counted in `losses`.
    pub fn adopt(dir: &Path, losses: &mut SpoolLosses) -> io::Result<Option<Self>> {
        let lock = lock_file(dir)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(error)) => return Err(error),
        }
        let contents = LaneContents::read(dir)?;
        for path in &contents.settled {
            std::fs::remove_file(path)?;
        }
        let mut segments = VecDeque::new();
        for found in contents.segments {
            losses.torn_bytes += found.torn_bytes;
            if found.torn_bytes > 0 {
                tracing::warn!(
                    segment = %found.path.display(),
                    bytes = found.torn_bytes,
                    "a span spool segment ends in a torn record (the process died writing it); \
                     it is skipped"
                );
            }
            if found.records.is_empty() {
                std::fs::remove_file(&found.path)?;
                continue;
            }
            segments.push_back(Segment {
                index: found.index,
                path: found.path,
                records: found.records.into(),
                bytes: found.bytes,
                reader: None,
            });
        }
        let next_index = segments.back().map_or(1, |s| s.index + 1);
        Ok(Some(Self {
            id: NEXT_LANE_ID.fetch_add(1, Ordering::Relaxed),
            dir: dir.to_owned(),
            _lock: lock,
            cursor_file: open_cursor(dir)?,
            routing_headers: Arc::new(contents.routing_headers),
            segments,
            own: false,
            writer: None,
            next_index,
            possibly_delivered_until: contents.cursor.in_flight_end,
        }))
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn is_own(&self) -> bool {
        self.own
    }

    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.records.is_empty())
    }

    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    pub fn pending_spans(&self) -> u64 {
        self.segments.iter().map(Segment::spans).sum()
    }

    pub fn pending_records(&self) -> u64 {
        self.segments.iter().map(|s| s.records.len() as u64).sum()
    }

    pub fn oldest_ms(&self) -> Option<i64> {
        self.segments
            .iter()
            .find_map(|s| s.records.front())
            .map(|r| r.written_ms)
    }

    pub fn routing_headers(&self) -> Arc<BTreeMap<String, String>> {
        self.routing_headers.clone()
    }

    /// Whether the record at `position` was in flight when an earlier process died.
    pub fn possibly_delivered(&self, position: Position) -> bool {
        self.possibly_delivered_until
            .is_some_and(|until| (position.segment, position.offset) < until)
    }

    fn is_writer_segment(&self, index: usize) -> bool {
        self.writer.is_some() && index + 1 == self.segments.len()
    }

    /// The first unsettled record and where it is.
    pub fn front(&self) -> Option<(Position, RecordHeader)> {
        self.segments.iter().find_map(|segment| {
            segment.records.front().map(|header| {
                (
                    Position {
                        lane: self.id,
                        segment: segment.index,
                        offset: header.offset,
                    },
                    *header,
                )
            })
        })
    }

    /// The first unsettled records of one segment, in order, holding at most `max_spans` spans
    /// (at least one record).
    pub fn front_batch(&self, max_spans: u64) -> Vec<(Position, RecordHeader)> {
        let Some(segment) = self.segments.iter().find(|s| !s.records.is_empty()) else {
            return Vec::new();
        };
        let mut spans = 0;
        let mut batch = Vec::new();
        for header in &segment.records {
            spans += u64::from(header.spans);
            if !batch.is_empty() && spans > max_spans {
                break;
            }
            let position = Position {
                lane: self.id,
                segment: segment.index,
                offset: header.offset,
            };
            batch.push((position, *header));
        }
        batch
    }

    /// Reads the record `header` (at `position`) whole.
    pub fn read_record(
        &mut self,
        position: Position,
        header: &RecordHeader,
    ) -> io::Result<ReadRecord> {
        let segment = self
            .segments
            .iter_mut()
            .find(|s| s.index == position.segment)
            .expect("the record's segment is in the lane");
        if segment.reader.is_none() {
            segment.reader = Some(File::open(&segment.path)?);
        }
        segment::read(segment.reader.as_ref().expect("opened"), header)
    }

    /// Settles the first unsettled record: its spans, and the bytes freed by deleting segments
    /// that hold nothing unsettled any more.
    pub fn pop_front(&mut self, sync: bool) -> io::Result<(u64, u64)> {
        let position = self
            .segments
            .iter()
            .position(|s| !s.records.is_empty())
            .expect("pop_front follows front()");
        let header = self.segments[position]
            .records
            .pop_front()
            .expect("a record");
        let freed = self.delete_settled_segments()?;
        self.write_cursor(None, sync)?;
        Ok((u64::from(header.spans), freed))
    }

    /// Deletes the leading segments that hold nothing unsettled (the one being written only
    /// once it is [`RECYCLE_BYTES`] large).
    fn delete_settled_segments(&mut self) -> io::Result<u64> {
        let mut freed = 0;
        while self.segments.front().is_some_and(|s| s.records.is_empty()) {
            if self.is_writer_segment(0) {
                if self.segments[0].bytes < RECYCLE_BYTES {
                    break;
                }
                self.writer = None;
            }
            let segment = self.segments.pop_front().expect("a segment");
            std::fs::remove_file(&segment.path)?;
            freed += segment.bytes;
        }
        Ok(freed)
    }

    /// Deletes the oldest segment that holds the record in flight in no lane and, unless
    /// nothing else is left, is not the one being written.
    pub fn drop_oldest_segment(&mut self, in_flight: Option<Position>) -> Option<Dropped> {
        let busy = |lane: &Self, index: usize| {
            in_flight.is_some_and(|p| p.lane == lane.id && p.segment == lane.segments[index].index)
        };
        let candidate = (0..self.segments.len())
            .find(|&i| !busy(self, i) && !self.is_writer_segment(i))
            .or_else(|| {
                (0..self.segments.len()).find(|&i| !busy(self, i) && self.is_writer_segment(i))
            })?;
        if self.is_writer_segment(candidate) {
            self.writer = None;
        }
        let segment = self.segments.remove(candidate).expect("a segment");
        if let Err(error) = std::fs::remove_file(&segment.path) {
            tracing::warn!(segment = %segment.path.display(), "cannot delete a spool segment: {error}");
        }
        if let Err(error) = self.write_cursor(None, false) {
            tracing::warn!("cannot write the span spool cursor: {error}");
        }
        Some(Dropped {
            spans: segment.spans(),
            records: segment.records.len() as u64,
            bytes: segment.bytes,
        })
    }

    /// Appends an encoded record, starting a new segment when the current one would pass
    /// `segment_bytes`; the bytes the lane grew by (less any settled segment it closed).
    pub fn append(&mut self, bytes: &[u8], segment_bytes: u64) -> io::Result<u64> {
        let full = self
            .segments
            .back()
            .is_some_and(|s| s.bytes + bytes.len() as u64 > segment_bytes && !s.records.is_empty());
        let mut added = 0;
        if self.writer.is_none() || full {
            self.writer = None;
            let index = self.next_index;
            let path = self.dir.join(format!("{index:020}.seg"));
            let file = segment::create(&path)?;
            sync_dir(&self.dir)?;
            self.next_index += 1;
            self.segments.push_back(Segment {
                index,
                path,
                records: VecDeque::new(),
                bytes: segment::MAGIC.len() as u64,
                reader: None,
            });
            self.writer = Some(file);
            added += segment::MAGIC.len() as u64;
            // A sealed segment with nothing unsettled goes now (the cursor moves past it).
            let freed = self.delete_settled_segments()?;
            if freed > 0 {
                self.write_cursor(None, false)?;
            }
            added = added.saturating_sub(freed);
        }
        let writer = self.writer.as_mut().expect("a writer");
        writer.write_all(bytes)?;
        let segment = self.segments.back_mut().expect("the writer's segment");
        segment
            .records
            .push_back(segment::header_of(segment.bytes, bytes));
        segment.bytes += bytes.len() as u64;
        Ok(added + bytes.len() as u64)
    }

    /// Syncs the segment being written.
    pub fn sync(&self) -> io::Result<()> {
        match &self.writer {
            Some(writer) => writer.sync_data(),
            None => Ok(()),
        }
    }

    /// Persists the cursor at the first unsettled record (or past everything written), with
    /// the end of the records being sent, if any.
    pub fn write_cursor(&self, in_flight_end: Option<(u64, u64)>, sync: bool) -> io::Result<()> {
        let cursor = match self.front() {
            Some((position, _)) => Cursor {
                segment: position.segment,
                offset: position.offset,
                in_flight_end,
            },
            None => match self.segments.back() {
                Some(last) => Cursor {
                    segment: last.index,
                    offset: last.bytes,
                    in_flight_end: None,
                },
                None => Cursor {
                    segment: self.next_index,
                    offset: 0,
                    in_flight_end: None,
                },
            },
        };
        self.cursor_file.write_all_at(&cursor.encode(), 0)?;
        if sync {
            self.cursor_file.sync_data()?;
        }
        Ok(())
    }

    /// Deletes the lane's directory (nothing in it waits).
    pub fn remove(self) {
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(lane = %self.dir.display(), "cannot delete a drained span spool lane: {error}");
        }
    }
}

fn lock_file(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
}

fn open_cursor(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(dir.join("cursor"))
}

/// The lane directories under a sink's directory, oldest first (their names start with the
/// time they were created).
pub(super) fn lane_dirs(sink_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(sink_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// A segment found on disk, with the records after the cursor.
struct FoundSegment {
    index: u64,
    path: PathBuf,
    records: Vec<RecordHeader>,
    bytes: u64,
    torn_bytes: u64,
}

/// What a lane directory holds, read without changing it.
struct LaneContents {
    cursor: Cursor,
    routing_headers: BTreeMap<String, String>,
    /// Segments entirely before the cursor.
    settled: Vec<PathBuf>,
    segments: Vec<FoundSegment>,
}

impl LaneContents {
    fn read(dir: &Path) -> io::Result<Self> {
        let cursor = std::fs::read(dir.join("cursor"))
            .ok()
            .and_then(|bytes| Cursor::decode(&bytes))
            .unwrap_or_default();
        let routing_headers = std::fs::read(dir.join("lane.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let mut indexed: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter_map(|path| {
                let index = path
                    .extension()
                    .is_some_and(|e| e == "seg")
                    .then(|| path.file_stem()?.to_str()?.parse::<u64>().ok())??;
                Some((index, path))
            })
            .collect();
        indexed.sort();
        let mut contents = Self {
            cursor,
            routing_headers,
            settled: Vec::new(),
            segments: Vec::new(),
        };
        for (index, path) in indexed {
            if index < cursor.segment {
                contents.settled.push(path);
                continue;
            }
            let scan = match segment::scan(&path) {
                Ok(scan) => scan,
                Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                    // Created but cut before its header was written: nothing in it.
                    tracing::warn!("{error}; it is skipped");
                    contents.settled.push(path);
                    continue;
                }
                Err(error) => return Err(error),
            };
            let records = scan
                .records
                .into_iter()
                .filter(|r| index > cursor.segment || r.offset >= cursor.offset)
                .collect();
            contents.segments.push(FoundSegment {
                index,
                bytes: scan.valid_len + scan.torn_bytes,
                path,
                records,
                torn_bytes: scan.torn_bytes,
            });
        }
        Ok(contents)
    }
}

/// What one lane of a sink's spool holds.
#[derive(Debug, Clone, Serialize)]
pub struct LaneStatus {
    /// The lane's directory name (its creation time and a random suffix).
    pub name: String,
    /// Whether the process that writes it is running.
    pub live: bool,
    /// Unsent spans.
    pub spans: u64,
    /// Unsent export requests.
    pub records: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// When the oldest unsent request was written (ms since the epoch).
    pub oldest_ms: Option<i64>,
    /// Bytes of a torn record after a crash (skipped when the lane is adopted).
    pub torn_bytes: u64,
}

/// What one sink's spool holds, read from disk.
#[derive(Debug, Clone, Serialize)]
pub struct SinkSpoolStatus {
    /// The sink (its URL without credentials).
    pub sink: String,
    /// The sink's directory name under the spool directory.
    pub key: String,
    /// The sink's last export error while it was failing.
    pub last_error: Option<String>,
    /// When that error happened (ms since the epoch).
    pub last_error_ms: Option<i64>,
    /// Its lanes, one per process that wrote to it and has not drained it yet.
    pub lanes: Vec<LaneStatus>,
}

impl SinkSpoolStatus {
    /// Unsent spans over every lane.
    pub fn spans(&self) -> u64 {
        self.lanes.iter().map(|l| l.spans).sum()
    }

    /// Bytes on disk over every lane.
    pub fn bytes(&self) -> u64 {
        self.lanes.iter().map(|l| l.bytes).sum()
    }

    /// When the oldest unsent request was written.
    pub fn oldest_ms(&self) -> Option<i64> {
        self.lanes.iter().filter_map(|l| l.oldest_ms).min()
    }
}

/// What every sink's spool under `dir` (`<data dir>/spool/spans`) holds, read without changing
/// anything; an empty list when nothing was ever spooled.
pub fn spool_status(dir: &Path) -> io::Result<Vec<SinkSpoolStatus>> {
    let mut sinks = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(sinks),
        Err(error) => return Err(error),
    };
    let mut sink_dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    sink_dirs.sort();
    for sink_dir in sink_dirs {
        let description: Option<SinkDescription> = std::fs::read(sink_dir.join("sink.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let status: SenderStatus = std::fs::read(sink_dir.join("status.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let mut lanes = Vec::new();
        for lane_dir in lane_dirs(&sink_dir)? {
            let live = match lock_file(&lane_dir)?.try_lock() {
                Ok(()) => false,
                Err(TryLockError::WouldBlock) => true,
                Err(TryLockError::Error(error)) => return Err(error),
            };
            let contents = LaneContents::read(&lane_dir)?;
            let records = contents.segments.iter().flat_map(|s| &s.records);
            lanes.push(LaneStatus {
                name: lane_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                live,
                spans: records.clone().map(|r| u64::from(r.spans)).sum(),
                records: records.clone().count() as u64,
                bytes: contents.segments.iter().map(|s| s.bytes).sum(),
                oldest_ms: records.map(|r| r.written_ms).next(),
                torn_bytes: contents.segments.iter().map(|s| s.torn_bytes).sum(),
            });
        }
        sinks.push(SinkSpoolStatus {
            sink: description.map(|d| d.sink).unwrap_or_default(),
            key: sink_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            last_error: status.last_error,
            last_error_ms: status.last_error_ms,
            lanes,
        });
    }
    Ok(sinks)
}

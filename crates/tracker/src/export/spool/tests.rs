use std::collections::BTreeMap;
use std::io::Write;

use super::*;

fn config(max_bytes: u64) -> SpoolConfig {
    SpoolConfig {
        max_bytes,
        fsync: FsyncPolicy::Always,
    }
}

fn open(dir: &Path, max_bytes: u64) -> SpanSpool {
    let routing = BTreeMap::from([("x-mlflow-run-id".to_string(), "run-1".to_string())]);
    SpanSpool::open(dir, "sink", "OTLP test", &config(max_bytes), routing).unwrap()
}

/// A payload that says which record it is, padded to `len` bytes.
fn payload(id: u32, len: usize) -> Vec<u8> {
    let mut bytes = id.to_le_bytes().to_vec();
    bytes.resize(len.max(4), 0xab);
    bytes
}

/// The spool hands out one record at a time with a batch limit of one span.
fn next(spool: &SpanSpool) -> Option<SpooledBatch> {
    spool.next_batch(1).unwrap()
}

fn id_of(record: &SpooledBatch) -> u32 {
    u32::from_le_bytes(record.payload[..4].try_into().unwrap())
}

/// Sends everything one record at a time: the ids in the order the spool handed them out.
fn drain(spool: &SpanSpool) -> Vec<u32> {
    let mut ids = Vec::new();
    while let Some(record) = next(spool) {
        spool.mark_in_flight(&record).unwrap();
        ids.push(id_of(&record));
        spool.ack(&record).unwrap();
    }
    ids
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn records_come_back_in_order_across_segments_and_sent_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    // A 1 MiB quota makes 64 kB segments.
    let spool = open(dir.path(), 1024 * 1024);
    for id in 0..40 {
        assert!(spool.append(3, &payload(id, 10_000)).unwrap());
    }
    assert!(
        segment_files(dir.path()).len() >= 2,
        "400 kB in 64 kB segments"
    );
    let backlog = spool.backlog();
    assert_eq!((backlog.records, backlog.spans), (40, 120));
    assert!(backlog.oldest_ms.is_some());
    let first = next(&spool).unwrap();
    assert_eq!(first.routing_headers["x-mlflow-run-id"], "run-1");
    assert!(!first.recovered && first.possibly_delivered == 0);
    assert_eq!(drain(&spool), (0..40).collect::<Vec<_>>());
    assert_eq!(spool.backlog().spans, 0);
    assert!(
        segment_files(dir.path()).len() <= 1,
        "only the segment being written stays: {:?}",
        segment_files(dir.path())
    );
    spool.close().unwrap();
    assert!(
        segment_files(dir.path()).is_empty(),
        "a drained lane is deleted"
    );
}

#[test]
fn a_process_that_died_leaves_records_the_next_one_sends_first() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Dropped without `close`, as a killed process leaves it (the lock goes with it).
        let spool = open(dir.path(), 16 * 1024 * 1024);
        for id in 0..5 {
            spool.append(2, &payload(id, 100)).unwrap();
        }
        let first = next(&spool).unwrap();
        spool.mark_in_flight(&first).unwrap();
        spool.ack(&first).unwrap();
        let second = next(&spool).unwrap();
        assert_eq!(id_of(&second), 1);
        spool.mark_in_flight(&second).unwrap();
        // Killed here: record 1 was sent, its acknowledgement never recorded.
    }
    let spool = open(dir.path(), 16 * 1024 * 1024);
    spool.append(2, &payload(100, 100)).unwrap();
    assert_eq!(spool.backlog().spans, 10, "4 left behind and 1 new");
    let resent = next(&spool).unwrap();
    assert_eq!(id_of(&resent), 1);
    assert!(resent.recovered);
    assert_eq!(
        resent.possibly_delivered, 2,
        "it was in flight when its process died"
    );
    assert_eq!(resent.routing_headers["x-mlflow-run-id"], "run-1");
    spool.ack(&resent).unwrap();
    let after = next(&spool).unwrap();
    assert_eq!(after.possibly_delivered, 0);
    assert_eq!(drain(&spool), [2, 3, 4, 100]);
}

#[test]
fn a_live_lane_is_left_to_its_process() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), 16 * 1024 * 1024);
    first.append(1, &payload(1, 10)).unwrap();
    let second = open(dir.path(), 16 * 1024 * 1024);
    assert!(
        next(&second).is_none(),
        "another live process's records are not taken"
    );
    let status = spool_status(dir.path()).unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].sink, "OTLP test");
    assert_eq!(status[0].spans(), 1);
    assert_eq!(status[0].lanes.iter().filter(|l| l.live).count(), 2);
    drop(first);
    drop(second);
    let third = open(dir.path(), 16 * 1024 * 1024);
    assert_eq!(drain(&third), [1]);
    let status = spool_status(dir.path()).unwrap();
    assert_eq!(status[0].spans(), 0);
}

#[test]
fn a_torn_last_record_is_skipped_and_nothing_after_it_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = open(dir.path(), 16 * 1024 * 1024);
        for id in 0..3 {
            spool.append(1, &payload(id, 500)).unwrap();
        }
    }
    // The process died in the middle of writing a fourth record.
    let segment = segment_files(dir.path()).pop().unwrap();
    let torn = &segment::encode(0, 1, &payload(3, 500))[..200];
    std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap()
        .write_all(torn)
        .unwrap();
    let status = spool_status(dir.path()).unwrap();
    assert_eq!(status[0].lanes[0].torn_bytes, 200);
    let spool = open(dir.path(), 16 * 1024 * 1024);
    spool.append(1, &payload(10, 500)).unwrap();
    assert_eq!(drain(&spool), [0, 1, 2, 10]);
    assert_eq!(spool.losses().torn_bytes, 200);
}

#[test]
fn a_corrupt_record_is_skipped_by_its_length() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = open(dir.path(), 16 * 1024 * 1024);
        for id in 0..3 {
            spool.append(4, &payload(id, 300)).unwrap();
        }
    }
    let segment = segment_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let record_len = segment::encode(0, 4, &payload(0, 300)).len();
    // A flipped bit in the second record's payload.
    bytes[segment::MAGIC.len() + record_len + 100] ^= 0x10;
    std::fs::write(&segment, bytes).unwrap();
    let spool = open(dir.path(), 16 * 1024 * 1024);
    assert_eq!(drain(&spool), [0, 2]);
    let losses = spool.losses();
    assert_eq!((losses.corrupt_records, losses.corrupt_spans), (1, 4));
}

#[test]
fn past_the_quota_the_oldest_spans_go_first_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let max_bytes = 256 * 1024;
    let spool = open(dir.path(), max_bytes);
    let appended = 200u32;
    for id in 0..appended {
        spool.append(5, &payload(id, 5_000)).unwrap();
    }
    let backlog = spool.backlog();
    assert!(backlog.bytes <= max_bytes, "{backlog:?}");
    let on_disk: u64 = segment_files(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(on_disk, backlog.bytes);
    let losses = spool.losses();
    assert_eq!(
        losses.spans_over_quota + backlog.spans,
        u64::from(appended) * 5,
        "every span is either waiting or counted as dropped"
    );
    let ids = drain(&spool);
    assert_eq!(ids.len() as u64, backlog.records);
    assert_eq!(*ids.last().unwrap(), appended - 1, "the newest stay");
    assert!(
        ids.windows(2).all(|w| w[0] + 1 == w[1]),
        "a contiguous tail"
    );
    assert!(ids[0] > 0, "the oldest went");
}

#[test]
fn the_record_in_flight_survives_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path(), 256 * 1024);
    spool.append(1, &payload(0, 5_000)).unwrap();
    let in_flight = next(&spool).unwrap();
    spool.mark_in_flight(&in_flight).unwrap();
    for id in 1..200 {
        spool.append(1, &payload(id, 5_000)).unwrap();
    }
    // Its segment was kept while newer ones went; acknowledging it settles it.
    spool.ack(&in_flight).unwrap();
    let losses = spool.losses();
    assert!(losses.spans_over_quota > 0);
    assert_eq!(losses.spans_over_quota + spool.backlog().spans, 199);
    let ids = drain(&spool);
    assert_eq!(ids[0], 1, "the rest of the in-flight segment stays");
    assert_eq!(*ids.last().unwrap(), 199);
    assert!(
        ids.windows(2).any(|w| w[1] > w[0] + 1),
        "the segments after it went: {ids:?}"
    );
}

#[test]
fn a_record_larger_than_the_quota_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path(), 64 * 1024);
    assert!(!spool.append(7, &payload(0, 100_000)).unwrap());
    assert_eq!(spool.losses().spans_over_quota, 7);
    assert!(next(&spool).is_none());
}

#[test]
fn a_batch_joins_consecutive_records_and_a_crash_marks_all_of_them() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = open(dir.path(), 16 * 1024 * 1024);
        for id in 0..5 {
            spool.append(3, &payload(id, 8)).unwrap();
        }
        let batch = spool.next_batch(9).unwrap().unwrap();
        assert_eq!(batch.spans, 9, "three records of three spans fit nine");
        assert_eq!(batch.payload.len(), 3 * 8, "the payloads are concatenated");
        spool.mark_in_flight(&batch).unwrap();
        // Killed while the three were being sent.
    }
    let spool = open(dir.path(), 16 * 1024 * 1024);
    let batch = spool.next_batch(100).unwrap().unwrap();
    assert_eq!(batch.spans, 15);
    assert_eq!(batch.possibly_delivered, 9, "the three records in flight");
    spool.ack(&batch).unwrap();
    assert!(spool.next_batch(100).unwrap().is_none());
}

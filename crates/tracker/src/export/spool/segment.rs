//! One segment file of a span spool: a magic header, then framed records.
//!
//! ```text
//! segment = "SXSPANS1" record*
//! record  = len:u32le crc32:u32le body          (crc32 of body, len = body length)
//! body    = written_ms:i64le spans:u32le payload  (payload: an OTLP ExportTraceServiceRequest)
//! ```
//!
//! A crash can cut the last record short; [`scan`] stops at the first frame that does not fit
//! and reports the bytes it skipped. A body whose checksum fails is skipped by its length, so the
//! records after it are still read.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The first bytes of every segment file.
pub(super) const MAGIC: &[u8; 8] = b"SXSPANS1";
/// Bytes of a record's frame: length and checksum.
pub(super) const FRAME: u64 = 8;
/// Bytes of a body before the payload: the write time and the span count.
const BODY_HEADER: usize = 12;
/// A body longer than this is a corrupt length field, not a record.
const MAX_BODY: u64 = 256 * 1024 * 1024;

/// A record encoded for appending: frame and body.
pub(super) fn encode(written_ms: i64, spans: u32, payload: &[u8]) -> Vec<u8> {
    let body_len = BODY_HEADER + payload.len();
    let mut bytes = Vec::with_capacity(FRAME as usize + body_len);
    bytes.extend_from_slice(&(body_len as u32).to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&written_ms.to_le_bytes());
    bytes.extend_from_slice(&spans.to_le_bytes());
    bytes.extend_from_slice(payload);
    let crc = crc32fast::hash(&bytes[FRAME as usize..]);
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// What a record's frame and body header say, found while scanning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RecordHeader {
    pub offset: u64,
    /// Offset of the next record.
    pub end: u64,
    pub written_ms: i64,
    pub spans: u32,
}

/// What a scan of a segment found.
#[derive(Debug, Default)]
pub(super) struct Scan {
    pub records: Vec<RecordHeader>,
    /// Where the last whole frame ends; bytes after it are a torn record.
    pub valid_len: u64,
    /// Bytes after `valid_len`.
    pub torn_bytes: u64,
}

/// Reads the record frames of the segment at `path` (not their payloads).
pub(super) fn scan(path: &Path) -> io::Result<Scan> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 8];
    if file_len < MAGIC.len() as u64 || {
        reader.read_exact(&mut magic)?;
        &magic != MAGIC
    } {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a span spool segment", path.display()),
        ));
    }
    let mut scan = Scan {
        valid_len: MAGIC.len() as u64,
        ..Scan::default()
    };
    let mut offset = MAGIC.len() as u64;
    let mut head = [0u8; FRAME as usize + BODY_HEADER];
    while offset + head.len() as u64 <= file_len {
        reader.read_exact(&mut head)?;
        let body_len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")) as u64;
        let end = offset + FRAME + body_len;
        if body_len < BODY_HEADER as u64 || body_len > MAX_BODY || end > file_len {
            break;
        }
        scan.records.push(RecordHeader {
            offset,
            end,
            written_ms: i64::from_le_bytes(head[8..16].try_into().expect("8 bytes")),
            spans: u32::from_le_bytes(head[16..20].try_into().expect("4 bytes")),
        });
        reader.seek_relative((end - offset) as i64 - head.len() as i64)?;
        offset = end;
        scan.valid_len = end;
    }
    scan.torn_bytes = file_len - scan.valid_len;
    Ok(scan)
}

/// A record read back whole.
pub(super) enum ReadRecord {
    /// The body's checksum holds.
    Whole { spans: u32, payload: Vec<u8> },
    /// The body does not match its checksum; the next record starts at `header.end`.
    Corrupt,
}

/// Reads the record `header` describes from `file`.
pub(super) fn read(file: &File, header: &RecordHeader) -> io::Result<ReadRecord> {
    let mut bytes = vec![0u8; (header.end - header.offset) as usize];
    file.read_exact_at(&mut bytes, header.offset)?;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let body = &bytes[FRAME as usize..];
    if crc32fast::hash(body) != crc {
        return Ok(ReadRecord::Corrupt);
    }
    Ok(ReadRecord::Whole {
        spans: u32::from_le_bytes(body[8..12].try_into().expect("4 bytes")),
        payload: body[BODY_HEADER..].to_vec(),
    })
}

/// Creates a new segment file at `path` holding only the magic header.
pub(super) fn create(path: &Path) -> io::Result<File> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)?;
    file.write_all(MAGIC)?;
    Ok(file)
}

/// The header of a record appended at `offset` as `bytes` (from [`encode`]).
pub(super) fn header_of(offset: u64, bytes: &[u8]) -> RecordHeader {
    RecordHeader {
        offset,
        end: offset + bytes.len() as u64,
        written_ms: i64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
        spans: u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")),
    }
}

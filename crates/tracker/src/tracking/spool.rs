//! The on-disk log of a run's writes: every operation is appended before it is sent, and
//! acknowledged once the backend has it, so writes that could not be delivered (an outage, a killed
//! process) are replayed later. One JSON-lines file per run, locked while its run is live; an
//! artifact's bytes sit beside it in `<file>.<seq>.artifact`. The file, its directory entry and
//! each artifact are synced before a write counts as spooled; a line cut by a crash is skipped on
//! recovery and the lines after it are still read.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Assessment, DatasetInput, LogBatch, RunStatus};
use crate::durable_file::{sync_dir, write_durably};

/// One write to a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    Create {
        /// The experiment's name: resolved (and created if missing) when the run is created.
        experiment: String,
        run_name: Option<String>,
        start_time_ms: i64,
        tags: BTreeMap<String, String>,
        parent_run_id: Option<String>,
    },
    Log {
        batch: LogBatch,
    },
    Artifact {
        path: String,
    },
    Assessment {
        assessment: Box<Assessment>,
    },
    Inputs {
        datasets: Vec<DatasetInput>,
    },
    End {
        status: RunStatus,
        end_time_ms: i64,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Header { sextant_spool: u32, backend: String },
    Op { seq: u64, op: Op },
    Ack { ack: u64, run_id: Option<String> },
}

/// A run's spool file, locked by this process.
pub(crate) struct Spool {
    path: PathBuf,
    file: File,
    next_seq: u64,
}

/// What an existing spool file holds.
pub(crate) struct Recovered {
    pub spool: Spool,
    pub backend: String,
    pub pending: Vec<(u64, Op)>,
    pub run_id: Option<String>,
    /// Whether the run's end was ever written (a killed process never wrote it).
    pub ended: bool,
    /// Lines that did not parse (cut by a crash) and were skipped.
    pub skipped_lines: usize,
}

impl Spool {
    /// A new spool in `dir` for a run on `backend`.
    pub fn create(dir: &Path, backend: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let name = format!("{}-{:08x}.jsonl", crate::now_ms(), rand::random::<u32>());
        let path = dir.join(name);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        file.try_lock().map_err(std::io::Error::other)?;
        let mut spool = Self {
            path,
            file,
            next_seq: 1,
        };
        spool.write(&Line::Header {
            sextant_spool: 1,
            backend: backend.to_owned(),
        })?;
        spool.file.sync_all()?;
        sync_dir(dir)?;
        Ok(spool)
    }

    /// Opens a spool left behind, unless its run is live in another process (`None`).
    pub fn recover(path: &Path) -> std::io::Result<Option<Recovered>> {
        let file = OpenOptions::new().append(true).read(true).open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(error)) => return Err(error),
        }
        let mut backend = None;
        let mut ops = Vec::new();
        let mut acked = BTreeSet::new();
        let mut run_id = None;
        let mut skipped_lines = 0;
        for line in BufReader::new(&file).split(b'\n') {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            // A line cut by a crash mid-write is skipped; the lines after it (written by a
            // process that recovered the spool) are intact.
            match serde_json::from_slice::<Line>(&line) {
                Ok(Line::Header { backend: b, .. }) => backend = Some(b),
                Ok(Line::Op { seq, op }) => ops.push((seq, op)),
                Ok(Line::Ack { ack, run_id: id }) => {
                    acked.insert(ack);
                    if id.is_some() {
                        run_id = id;
                    }
                }
                Err(_) => skipped_lines += 1,
            }
        }
        if skipped_lines > 0 {
            tracing::warn!(
                spool = %path.display(),
                lines = skipped_lines,
                "skipped tracking spool lines cut by a crash"
            );
        }
        let mut file = file;
        // A cut last line has no newline: end it, so the next line starts clean.
        let len = file.seek(SeekFrom::End(0))?;
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        let Some(backend) = backend else {
            return Err(std::io::Error::other(format!(
                "{} is not a Sextant spool file",
                path.display()
            )));
        };
        let next_seq = ops.iter().map(|(seq, _)| seq + 1).max().unwrap_or(1);
        let ended = ops.iter().any(|(_, op)| matches!(op, Op::End { .. }));
        let pending = ops
            .into_iter()
            .filter(|(seq, _)| !acked.contains(seq))
            .collect();
        Ok(Some(Recovered {
            spool: Self {
                path: path.to_owned(),
                file,
                next_seq,
            },
            backend,
            pending,
            run_id,
            ended,
            skipped_lines,
        }))
    }

    /// Appends `op` (and an artifact's bytes beside it, synced); its sequence number. On an
    /// error (a full disk) the sequence number is used up all the same: the caller keeps the
    /// write in memory under [`Spool::skip`]'s number.
    pub fn append(&mut self, op: &Op, artifact: Option<&[u8]>) -> std::io::Result<u64> {
        let seq = self.next_seq;
        if let Some(bytes) = artifact {
            write_durably(&self.artifact_path(seq), bytes)?;
        }
        self.write(&Line::Op {
            seq,
            op: op.clone(),
        })?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Uses up a sequence number for a write the spool could not hold.
    pub fn skip(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Records that the backend has operation `seq` (and, for the create, the run's id).
    pub fn ack(&mut self, seq: u64, run_id: Option<&str>) -> std::io::Result<()> {
        let _ = std::fs::remove_file(self.artifact_path(seq));
        self.write(&Line::Ack {
            ack: seq,
            run_id: run_id.map(str::to_owned),
        })
    }

    /// Makes everything written so far survive a crash of the machine.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Writes go to `path` instead (fault injection: `/dev/full` is a full disk).
    #[cfg(test)]
    pub fn redirect_writes(&mut self, path: &Path) {
        self.file = OpenOptions::new().append(true).open(path).unwrap();
    }

    /// Where operation `seq`'s artifact bytes are.
    pub fn artifact_path(&self, seq: u64) -> PathBuf {
        self.path.with_extension(format!("{seq}.artifact"))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the spool: everything reached the backend.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }

    fn write(&mut self, line: &Line) -> std::io::Result<()> {
        let mut text = serde_json::to_string(line).map_err(std::io::Error::other)?;
        text.push('\n');
        self.file.write_all(text.as_bytes())
    }
}

/// The spool files in `dir`.
pub(crate) fn spool_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_recovers_unacknowledged_operations_and_the_run_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = {
            let mut spool = Spool::create(dir.path(), "mlflow http://x").unwrap();
            let create = Op::Create {
                experiment: "Default".into(),
                run_name: None,
                start_time_ms: 5,
                tags: BTreeMap::new(),
                parent_run_id: None,
            };
            let s1 = spool.append(&create, None).unwrap();
            spool.ack(s1, Some("abc")).unwrap();
            spool
                .append(
                    &Op::Log {
                        batch: LogBatch::default(),
                    },
                    None,
                )
                .unwrap();
            let s3 = spool
                .append(
                    &Op::Artifact {
                        path: "a.json".into(),
                    },
                    Some(b"{}"),
                )
                .unwrap();
            assert!(spool.artifact_path(s3).exists());
            // While the run is live, another process cannot take its spool.
            assert!(Spool::recover(spool.path()).unwrap().is_none());
            spool.path().to_owned()
        };
        // A half-written last line, as a crash leaves it.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"seq\": 9, \"op\": {\"op\": \"En")
            .unwrap();
        let recovered = Spool::recover(&path).unwrap().unwrap();
        assert_eq!(recovered.skipped_lines, 1);
        // The process that recovered it writes on; a later recovery reads past the cut line.
        let mut spool = recovered.spool;
        let end = spool
            .append(
                &Op::End {
                    status: RunStatus::Killed,
                    end_time_ms: 9,
                },
                None,
            )
            .unwrap();
        drop(spool);
        let recovered = Spool::recover(&path).unwrap().unwrap();
        assert_eq!(recovered.skipped_lines, 1);
        assert!(
            recovered.ended,
            "the end written after the cut line is read"
        );
        assert_eq!(recovered.pending.last().map(|(s, _)| *s), Some(end));
        assert_eq!(recovered.backend, "mlflow http://x");
        assert_eq!(recovered.run_id.as_deref(), Some("abc"));
        assert_eq!(
            recovered
                .pending
                .iter()
                .map(|(s, _)| *s)
                .collect::<Vec<_>>(),
            [2, 3, end]
        );
        assert_eq!(spool_files(dir.path()), [path]);
    }
}

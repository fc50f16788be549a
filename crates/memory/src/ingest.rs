//! Ingestion: files → text → chunks → vectors → points, idempotently.
//!
//! Each file's points carry a content hash (of its bytes, the embedding model and the chunking
//! settings). A file whose points all carry its current hash is skipped without embedding; a
//! changed file has its old points deleted and its new ones written. Point ids derive from the
//! source and chunk index, so a re-run never duplicates. Files that cannot be read are reported and
//! skipped; only a failing embedder or store stops ingestion.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::chunker::{Chunk, ChunkingConfig, chunk_document};
use crate::documents::{Document, DocumentError, DocumentKind, parse_document};
use crate::embedder::{EmbedError, Embedder, embed};
use crate::vector_store::{Filter, Point, PointId, StoreError, VectorStore};

/// What ingestion writes into.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The collection (created with the embedder's dimension if missing).
    pub collection: String,
    /// How documents are chunked.
    pub chunking: ChunkingConfig,
}

/// Receives ingestion's progress (the CLI draws a progress bar from it).
pub trait IngestProgress: Send + Sync {
    /// The files found and the chunks that need embedding, once all files are read.
    fn planned(&self, _files: usize, _chunks_to_embed: usize) {}
    /// `chunks` more chunks were embedded and written.
    fn chunks_written(&self, _chunks: usize) {}
    /// A file could not be read and is skipped.
    fn file_skipped(&self, _error: &DocumentError) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl IngestProgress for NoProgress {}

/// What an ingestion did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    /// Readable files found.
    pub files: usize,
    /// Files embedded and written (new or changed).
    pub files_written: usize,
    /// Files skipped because their points were up to date.
    pub files_unchanged: usize,
    /// Files that could not be read, with why.
    pub files_failed: Vec<DocumentError>,
    /// Chunks embedded and written.
    pub chunks_written: usize,
    /// Points in the collection afterwards.
    pub points_total: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Why ingestion stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A path given does not exist or cannot be listed.
    #[error("cannot read {path}: {message}")]
    Path {
        /// The path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// No readable file was found under the paths.
    #[error("no .txt, .md, .html or .pdf files under {paths}")]
    NothingToIngest {
        /// The paths, joined.
        paths: String,
    },
    /// The embedder failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The vector store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A file read and chunked, waiting to be written.
struct Prepared {
    document: Document,
    chunks: Vec<Chunk>,
    content_hash: String,
}

/// Ingests every readable file under `paths` (files or directories, walked recursively, hidden
/// entries skipped) into `options.collection`.
pub async fn ingest(
    paths: &[PathBuf],
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
    options: &IngestOptions,
    progress: &dyn IngestProgress,
) -> Result<IngestReport, IngestError> {
    let started = Instant::now();
    options
        .chunking
        .validate()
        .map_err(|message| IngestError::Path {
            path: "memory.chunking".into(),
            message,
        })?;
    let files = find_files(paths)?;
    if files.is_empty() {
        return Err(IngestError::NothingToIngest {
            paths: paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    store
        .create_collection(&options.collection, embedder.dimension())
        .await?;

    let mut report = IngestReport {
        files: files.len(),
        ..IngestReport::default()
    };
    let mut pending = Vec::new();
    for (path, kind) in &files {
        let source = path.display().to_string();
        let prepared = match read_file(path, &source, *kind) {
            Ok(document) => {
                let content_hash = content_hash(&document, embedder.model(), &options.chunking);
                let chunks = chunk_document(&document, &options.chunking, embedder);
                Prepared {
                    document,
                    chunks,
                    content_hash,
                }
            }
            Err(error) => {
                progress.file_skipped(&error);
                report.files_failed.push(error);
                continue;
            }
        };
        let current = Filter::field("source", source.as_str())
            .and("content_hash", prepared.content_hash.as_str());
        let up_to_date = store.count(&options.collection, Some(&current)).await?;
        let total = store
            .count(
                &options.collection,
                Some(&Filter::field("source", source.as_str())),
            )
            .await?;
        if up_to_date == prepared.chunks.len() as u64 && total == up_to_date {
            report.files_unchanged += 1;
        } else {
            pending.push(prepared);
        }
    }
    progress.planned(report.files, pending.iter().map(|p| p.chunks.len()).sum());

    for prepared in pending {
        write_file(&prepared, embedder, store, &options.collection, progress).await?;
        report.files_written += 1;
        report.chunks_written += prepared.chunks.len();
    }
    store.optimize(&options.collection).await?;
    report.points_total = store.count(&options.collection, None).await?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Embeds a file's chunks in batches, then replaces its points.
async fn write_file(
    prepared: &Prepared,
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
    collection: &str,
    progress: &dyn IngestProgress,
) -> Result<(), IngestError> {
    let document = &prepared.document;
    let mut points = Vec::with_capacity(prepared.chunks.len());
    for batch in prepared.chunks.chunks(embedder.max_batch().max(1)) {
        let texts: Vec<String> = batch
            .iter()
            .map(|chunk| chunk.embedding_text(document.title.as_deref()))
            .collect();
        let vectors = embed(embedder, &texts).await?;
        for (chunk, vector) in batch.iter().zip(vectors) {
            points.push(Point {
                id: point_id(&document.source, chunk.index),
                vector,
                payload: payload(
                    document,
                    chunk,
                    &prepared.content_hash,
                    prepared.chunks.len(),
                ),
            });
        }
        progress.chunks_written(batch.len());
    }
    // Old points first: a changed file may have fewer chunks now. A crash in between leaves the
    // file without points, which the next run sees and repairs.
    store
        .delete(
            collection,
            &Filter::field("source", document.source.as_str()),
        )
        .await?;
    store.upsert(collection, points).await?;
    Ok(())
}

fn payload(
    document: &Document,
    chunk: &Chunk,
    content_hash: &str,
    chunk_count: usize,
) -> Map<String, Value> {
    let mut payload = json!({
        "source": document.source,
        "chunk_index": chunk.index,
        "chunk_count": chunk_count,
        "text": chunk.text,
        "content_hash": content_hash,
    });
    let object = payload.as_object_mut().expect("an object");
    if let Some(heading) = &chunk.heading {
        object.insert("heading".into(), json!(heading));
    }
    if let Some(title) = &document.title {
        object.insert("title".into(), json!(title));
    }
    if let Some(url) = &document.url {
        object.insert("url".into(), json!(url));
    }
    std::mem::take(object)
}

/// A stable id for chunk `index` of `source`: the first 8 bytes of their SHA-256.
pub fn point_id(source: &str, index: usize) -> PointId {
    let digest = Sha256::new()
        .chain_update(source.as_bytes())
        .chain_update([0])
        .chain_update(index.to_le_bytes())
        .finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

fn content_hash(document: &Document, model: &str, chunking: &ChunkingConfig) -> String {
    let digest = Sha256::new()
        .chain_update(document.text.as_bytes())
        .chain_update([0])
        .chain_update(model.as_bytes())
        .chain_update([0])
        .chain_update(chunking.max_tokens.to_le_bytes())
        .chain_update(chunking.overlap_tokens.to_le_bytes())
        .finalize();
    hex::encode(&digest[..16])
}

fn read_file(path: &Path, source: &str, kind: DocumentKind) -> Result<Document, DocumentError> {
    let bytes = std::fs::read(path).map_err(|err| DocumentError {
        source_path: source.to_owned(),
        message: format!("cannot read: {err}"),
    })?;
    parse_document(source, kind, &bytes)
}

/// Every readable file under `paths`, sorted, with its kind.
fn find_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, DocumentKind)>, IngestError> {
    let mut files = Vec::new();
    for root in paths {
        if !root.exists() {
            return Err(IngestError::Path {
                path: root.display().to_string(),
                message: "no such file or directory".into(),
            });
        }
        let walker = walkdir::WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|entry| {
                entry.depth() == 0 || !entry.file_name().to_string_lossy().starts_with('.')
            });
        for entry in walker {
            let entry = entry.map_err(|err| IngestError::Path {
                path: err
                    .path()
                    .map_or_else(|| root.display().to_string(), |p| p.display().to_string()),
                message: err.to_string(),
            })?;
            if entry.file_type().is_file()
                && let Some(kind) = DocumentKind::of(entry.path())
            {
                files.push((entry.into_path(), kind));
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

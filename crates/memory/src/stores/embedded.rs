//! [`EmbeddedStore`]: Qdrant's own engine (`qdrant-edge`) in-process, one directory per collection
//! under the data dir — the offline default, with the server's payloads, filters and scores.
//!
//! Durability: every upsert and delete is written to the engine's write-ahead log and then flushed
//! (WAL and segments, fsync'd) before it returns, so a killed process loses nothing that was
//! acknowledged. A collection is created in a hidden directory and renamed into place, so a crash
//! never leaves a half-made one. One process at a time may open a collection (an OS file lock
//! next to it); a second gets [`StoreError::Locked`].

use std::collections::HashMap;
use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use async_trait::async_trait;
use qdrant_edge::{
    CountRequest, Distance, EdgeConfigBuilder, EdgeShard, EdgeVectorParamsBuilder, HnswIndexConfig,
    NamedQuery, PointId as EdgePointId, PointInsertOperations, PointOperations, PointStruct,
    QueryEnum, SearchParams, SearchRequest as EdgeSearchRequest, UpdateOperation, VectorInternal,
    VectorStructInternal, WithPayloadInterface, WithVector,
};
use serde_json::Value;

use crate::stores::qdrant_filter_json;
use crate::vector_store::{
    CollectionInfo, Filter, Point, ScoredPoint, SearchRequest, StoreError, VectorStore,
    validate_collection_name,
};

const BACKEND: &str = "embedded";

/// Candidates the HNSW search keeps (`hnsw_ef`). Qdrant's default (its `ef_construct`, 100) gives
/// recall@10 of about 0.6 on random 384-dimension vectors, the hardest case; 256 gives ≥ 0.95
/// there and more on real embeddings, whose intrinsic dimension is far lower.
const SEARCH_EF: usize = 256;
/// Links per node and build-time candidates of the HNSW graph (Qdrant's defaults: 16 and 100),
/// raised so that search at [`SEARCH_EF`] reaches that recall.
const HNSW_M: usize = 32;
const HNSW_EF_CONSTRUCT: usize = 256;

/// Qdrant's engine in-process, persisted under a root directory (the data dir's `vectors/`).
///
/// ```no_run
/// # async fn demo() -> Result<(), sextant_memory::StoreError> {
/// use sextant_memory::{Point, SearchRequest, VectorStore, stores::EmbeddedStore};
/// let store = EmbeddedStore::open("/tmp/sextant-vectors");
/// store.create_collection("kb", 3).await?;
/// store.upsert("kb", vec![Point { id: 1, vector: vec![1.0, 0.0, 0.0], payload: Default::default() }]).await?;
/// let hits = store.search("kb", &SearchRequest {
///     vector: vec![1.0, 0.1, 0.0], limit: 5, score_threshold: None, filter: None, with_vectors: false,
/// }).await?;
/// assert_eq!(hits[0].id, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EmbeddedStore {
    root: PathBuf,
    open: OpenCollections,
}

type CollectionMap = HashMap<String, Arc<Collection>>;
type OpenCollections = Arc<Mutex<CollectionMap>>;

/// The open collections of every root in this process: a collection's lock admits one process,
/// so every handle in that process must share it. Entries go when the last handle is dropped.
static OPEN_ROOTS: LazyLock<Mutex<HashMap<PathBuf, Weak<Mutex<CollectionMap>>>>> =
    LazyLock::new(Mutex::default);

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// The state of an embedded collection's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexInfo {
    /// Points stored.
    pub points: u64,
    /// Vectors in an HNSW index.
    pub indexed_vectors: u64,
    /// Segments the collection is split into.
    pub segments: usize,
}

struct Collection {
    name: String,
    shard: EdgeShard,
    dimension: usize,
    /// Serialises writes, flushes and optimisation: the engine's flush expects no write in flight.
    writer: Mutex<()>,
    /// Held while the collection is open; released when the process exits, however it exits.
    _lock: File,
}

impl EmbeddedStore {
    /// A store whose collections live in directories under `root` (created on first write).
    /// Handles on the same root within one process share their open collections.
    pub fn open(root: impl Into<PathBuf>) -> Self {
        let root: PathBuf = root.into();
        let key = std::path::absolute(&root).unwrap_or_else(|_| root.clone());
        let mut roots = OPEN_ROOTS.lock().unwrap_or_else(|e| e.into_inner());
        roots.retain(|_, open| open.strong_count() > 0);
        let open = match roots.get(&key).and_then(Weak::upgrade) {
            Some(open) => open,
            None => {
                let open: OpenCollections = Arc::default();
                roots.insert(key, Arc::downgrade(&open));
                open
            }
        };
        Self { root, open }
    }

    /// The directory collections live under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How much of `collection` the HNSW index covers (points added since the last optimisation
    /// are searched exactly until then).
    pub fn index_info(&self, collection: &str) -> Result<IndexInfo, StoreError> {
        let opened = self.require(collection)?;
        let info = catch(collection, || opened.shard.info())?;
        Ok(IndexInfo {
            points: info.points_count as u64,
            indexed_vectors: info.indexed_vectors_count as u64,
            segments: info.segments_count,
        })
    }

    /// Closes every open collection of this root (flushing it), so another process may open them.
    pub fn close_all(&self) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn collection_dir(&self, collection: &str) -> PathBuf {
        self.root.join(collection)
    }

    /// The open collection, opening it from disk if needed; `None` if it does not exist.
    fn get(&self, collection: &str) -> Result<Option<Arc<Collection>>, StoreError> {
        validate_collection_name(collection)?;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = open.get(collection) {
            return Ok(Some(found.clone()));
        }
        let dir = self.collection_dir(collection);
        if !dir.join("edge_config.json").exists() {
            return Ok(None);
        }
        let lock = self.lock(collection)?;
        let shard = catch(collection, || EdgeShard::load(&dir, None))?
            .map_err(|err| backend(collection, format!("cannot open {}: {err}", dir.display())))?;
        let opened = Arc::new(Collection::new(collection, shard, lock)?);
        open.insert(collection.to_owned(), opened.clone());
        Ok(Some(opened))
    }

    fn require(&self, collection: &str) -> Result<Arc<Collection>, StoreError> {
        self.get(collection)?
            .ok_or_else(|| StoreError::NoCollection {
                backend: BACKEND,
                collection: collection.to_owned(),
            })
    }

    fn lock(&self, collection: &str) -> Result<File, StoreError> {
        std::fs::create_dir_all(&self.root).map_err(|err| {
            backend(
                collection,
                format!("cannot create {}: {err}", self.root.display()),
            )
        })?;
        let path = self.root.join(format!("{collection}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|err| backend(collection, format!("cannot open {}: {err}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
                collection: collection.to_owned(),
                lock: path.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(err)) => Err(backend(
                collection,
                format!("cannot lock {}: {err}", path.display()),
            )),
        }
    }

    fn create_blocking(&self, collection: &str, dimension: usize) -> Result<(), StoreError> {
        if let Some(existing) = self.get(collection)? {
            return existing.check_dimension(dimension);
        }
        if dimension == 0 {
            return Err(backend(
                collection,
                "a collection needs vectors of at least 1 dimension".into(),
            ));
        }
        let lock = self.lock(collection)?;
        let dir = self.collection_dir(collection);
        let staging = self
            .root
            .join(format!(".{collection}.creating-{}", std::process::id()));
        let io =
            |what: &str, err: std::io::Error| backend(collection, format!("cannot {what}: {err}"));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| io("clear a staging directory", e))?;
        }
        std::fs::create_dir_all(&staging).map_err(|e| io("create a staging directory", e))?;
        let config = EdgeConfigBuilder::new()
            .vector(
                "",
                EdgeVectorParamsBuilder::new(dimension, Distance::Cosine).build(),
            )
            .hnsw_config(HnswIndexConfig {
                m: HNSW_M,
                ef_construct: HNSW_EF_CONSTRUCT,
                ..HnswIndexConfig::default()
            })
            .build();
        let shard = catch(collection, || EdgeShard::new(&staging, config))?
            .map_err(|err| backend(collection, format!("cannot create: {err}")))?;
        catch(collection, || drop(shard))?;
        if dir.exists() {
            // Left by a crash before its config was written: nothing in it was acknowledged.
            std::fs::remove_dir_all(&dir).map_err(|e| io("remove an unfinished collection", e))?;
        }
        std::fs::rename(&staging, &dir).map_err(|e| io("move the new collection into place", e))?;
        sync_dir(&self.root);
        let shard = catch(collection, || EdgeShard::load(&dir, None))?
            .map_err(|err| backend(collection, format!("cannot open {}: {err}", dir.display())))?;
        let opened = Arc::new(Collection::new(collection, shard, lock)?);
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(collection.to_owned(), opened);
        Ok(())
    }

    fn delete_collection_blocking(&self, collection: &str) -> Result<bool, StoreError> {
        let Some(opened) = self.get(collection)? else {
            return Ok(false);
        };
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(collection);
        // Keep the lock until the files are gone.
        let Collection { shard, _lock, .. } = Arc::try_unwrap(opened).map_err(|_| {
            backend(
                collection,
                "it is in use by a running search or write".into(),
            )
        })?;
        catch(collection, || drop(shard))?;
        let dir = self.collection_dir(collection);
        std::fs::remove_dir_all(&dir).map_err(|err| {
            backend(
                collection,
                format!("cannot remove {}: {err}", dir.display()),
            )
        })?;
        Ok(true)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        collection: &str,
        work: impl FnOnce(EmbeddedStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || work(this))
            .await
            .map_err(|err| backend(collection, format!("the store thread failed: {err}")))?
    }
}

impl Collection {
    fn new(name: &str, shard: EdgeShard, lock: File) -> Result<Self, StoreError> {
        let dimension = shard
            .config()
            .vectors
            .get("")
            .map(|params| params.size)
            .ok_or_else(|| backend(name, "its configuration has no default vector".into()))?;
        Ok(Self {
            name: name.to_owned(),
            shard,
            dimension,
            writer: Mutex::new(()),
            _lock: lock,
        })
    }

    fn check_dimension(&self, got: usize) -> Result<(), StoreError> {
        if got == self.dimension {
            Ok(())
        } else {
            Err(StoreError::DimensionMismatch {
                collection: self.name.clone(),
                expected: self.dimension,
                got,
            })
        }
    }

    /// Applies `operation`, then flushes the WAL and segments to disk.
    fn write(&self, operation: UpdateOperation) -> Result<(), StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        catch(&self.name, || self.shard.update(operation))?
            .map_err(|err| backend(&self.name, err.to_string()))?;
        catch(&self.name, || self.shard.flush())
    }

    fn optimize(&self) -> Result<(), StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        catch(&self.name, || self.shard.optimize())?
            .map_err(|err| backend(&self.name, format!("cannot build the index: {err}")))?;
        catch(&self.name, || self.shard.flush())
    }

    fn edge_filter(
        &self,
        filter: Option<&Filter>,
    ) -> Result<Option<qdrant_edge::Filter>, StoreError> {
        filter
            .filter(|f| !f.must.is_empty())
            .map(|f| {
                serde_json::from_value(qdrant_filter_json(f))
                    .map_err(|err| backend(&self.name, format!("invalid filter {f}: {err}")))
            })
            .transpose()
    }
}

#[async_trait]
impl VectorStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn create_collection(
        &self,
        collection: &str,
        dimension: usize,
    ) -> Result<(), StoreError> {
        let name = collection.to_owned();
        self.blocking(collection, move |store| {
            store.create_blocking(&name, dimension)
        })
        .await
    }

    async fn collection_info(
        &self,
        collection: &str,
    ) -> Result<Option<CollectionInfo>, StoreError> {
        let name = collection.to_owned();
        self.blocking(collection, move |store| {
            let Some(opened) = store.get(&name)? else {
                return Ok(None);
            };
            let points = count(&opened, None)?;
            Ok(Some(CollectionInfo {
                name,
                dimension: opened.dimension,
                points,
            }))
        })
        .await
    }

    async fn delete_collection(&self, collection: &str) -> Result<bool, StoreError> {
        let name = collection.to_owned();
        self.blocking(collection, move |store| {
            store.delete_collection_blocking(&name)
        })
        .await
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        let name = collection.to_owned();
        self.blocking(collection, move |store| {
            let opened = store.require(&name)?;
            let mut persisted = Vec::with_capacity(points.len());
            for point in points {
                opened.check_dimension(point.vector.len())?;
                persisted.push(
                    PointStruct::new(
                        EdgePointId::NumId(point.id),
                        point.vector,
                        Value::Object(point.payload),
                    )
                    .into(),
                );
            }
            opened.write(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(persisted)),
            ))
        })
        .await
    }

    async fn delete(&self, collection: &str, filter: &Filter) -> Result<(), StoreError> {
        let name = collection.to_owned();
        let filter = filter.clone();
        self.blocking(collection, move |store| {
            let opened = store.require(&name)?;
            let Some(filter) = opened.edge_filter(Some(&filter))? else {
                return Err(backend(
                    &name,
                    "refusing to delete with an empty filter (it would match every point)".into(),
                ));
            };
            opened.write(UpdateOperation::PointOperation(
                PointOperations::DeletePointsByFilter(filter),
            ))
        })
        .await
    }

    async fn search(
        &self,
        collection: &str,
        request: &SearchRequest,
    ) -> Result<Vec<ScoredPoint>, StoreError> {
        let name = collection.to_owned();
        let request = request.clone();
        self.blocking(collection, move |store| {
            let opened = store.require(&name)?;
            opened.check_dimension(request.vector.len())?;
            let search = EdgeSearchRequest {
                query: QueryEnum::Nearest(NamedQuery::default_dense(request.vector)),
                filter: opened.edge_filter(request.filter.as_ref())?,
                params: Some(SearchParams {
                    hnsw_ef: Some(SEARCH_EF.max(request.limit)),
                    ..SearchParams::default()
                }),
                limit: request.limit,
                offset: 0,
                with_payload: Some(WithPayloadInterface::Bool(true)),
                with_vector: Some(WithVector::Bool(request.with_vectors)),
                score_threshold: request.score_threshold,
            };
            #[allow(deprecated)]
            let hits = catch(&name, || opened.shard.search(search))?
                .map_err(|err| backend(&name, err.to_string()))?;
            hits.into_iter()
                .map(|hit| {
                    let id = match hit.id {
                        EdgePointId::NumId(id) => id,
                        other => {
                            return Err(backend(
                                &name,
                                format!("point id {other} is not a number"),
                            ));
                        }
                    };
                    Ok(ScoredPoint {
                        id,
                        score: hit.score,
                        payload: hit.payload.map(|p| p.0).unwrap_or_default(),
                        vector: hit.vector.and_then(default_dense),
                    })
                })
                .collect()
        })
        .await
    }

    async fn count(&self, collection: &str, filter: Option<&Filter>) -> Result<u64, StoreError> {
        let name = collection.to_owned();
        let filter = filter.cloned();
        self.blocking(collection, move |store| {
            let opened = store.require(&name)?;
            count(&opened, filter.as_ref())
        })
        .await
    }

    async fn optimize(&self, collection: &str) -> Result<(), StoreError> {
        let name = collection.to_owned();
        self.blocking(collection, move |store| store.require(&name)?.optimize())
            .await
    }
}

fn count(opened: &Collection, filter: Option<&Filter>) -> Result<u64, StoreError> {
    let request = CountRequest {
        filter: opened.edge_filter(filter)?,
        exact: true,
    };
    let counted = catch(&opened.name, || opened.shard.count(request))?
        .map_err(|err| backend(&opened.name, err.to_string()))?;
    Ok(counted as u64)
}

fn default_dense(vector: VectorStructInternal) -> Option<Vec<f32>> {
    match vector {
        VectorStructInternal::Single(dense) => Some(dense),
        VectorStructInternal::Named(mut named) => match named.remove("") {
            Some(VectorInternal::Dense(dense)) => Some(dense),
            _ => None,
        },
        VectorStructInternal::MultiDense(_) => None,
    }
}

fn backend(collection: &str, message: String) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        collection: collection.to_owned(),
        message,
    }
}

/// Runs engine code that reports some failures (a failed flush, a poisoned lock) by panicking, and
/// turns such a panic into an error instead of taking the process down.
fn catch<T>(collection: &str, work: impl FnOnce() -> T) -> Result<T, StoreError> {
    std::panic::catch_unwind(AssertUnwindSafe(work)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the engine panicked".to_owned());
        backend(collection, message)
    })
}

/// Makes a rename in `dir` durable (best effort: not every platform can fsync a directory).
fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

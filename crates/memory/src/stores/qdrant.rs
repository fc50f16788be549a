//! [`QdrantStore`]: a Qdrant server over gRPC (port 6334) through `qdrant-client`. Wire types stay
//! in this module; callers see the crate's [`Point`], [`Filter`] and [`ScoredPoint`].

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vector_output::Vector as OutputVector;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    self, Condition, CountPointsBuilder, CreateCollectionBuilder, DeletePointsBuilder, Distance,
    PointStruct, SearchPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use serde_json::{Map, Value};

use crate::vector_store::{
    CollectionInfo, Filter, MatchValue, Point, ScoredPoint, SearchRequest, StoreError, VectorStore,
    validate_collection_name,
};

const BACKEND: &str = "qdrant";

/// A Qdrant server. The URL is its gRPC endpoint (`http://127.0.0.1:6334`); the API key, if any,
/// goes only into the `api-key` request header.
///
/// ```no_run
/// # fn demo() -> Result<(), sextant_memory::StoreError> {
/// use sextant_memory::stores::QdrantStore;
/// let store = QdrantStore::connect("http://127.0.0.1:6334", None)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct QdrantStore {
    client: std::sync::Arc<Qdrant>,
    /// The server as errors and `Debug` name it: without credentials or query.
    url: String,
}

impl std::fmt::Debug for QdrantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl QdrantStore {
    /// A client of the server at `url` (its gRPC port), authenticating with `api_key` if given.
    /// Connecting is lazy: an unreachable server is reported by the first operation.
    pub fn connect(url: &str, api_key: Option<String>) -> Result<Self, StoreError> {
        let shown = sextant_conventions::shown_url(url, sextant_conventions::UrlParts::Location);
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            // A version mismatch warning at start is noise for a store that uses stable calls.
            .skip_compatibility_check()
            .build()
            .map_err(|err| StoreError::Unavailable {
                backend: BACKEND,
                url: shown.clone(),
                message: err.to_string(),
            })?;
        Ok(Self {
            client: std::sync::Arc::new(client),
            url: shown,
        })
    }

    /// The server's URL, without credentials or query.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn error(&self, collection: &str, err: QdrantError) -> StoreError {
        match err {
            QdrantError::ResponseError { status }
            | QdrantError::ResourceExhaustedError { status, .. } => {
                match status.code() {
                    tonic::Code::NotFound => StoreError::NoCollection {
                        backend: BACKEND,
                        collection: collection.to_owned(),
                    },
                    // The client reports a refused or failed connection as INTERNAL.
                    tonic::Code::Internal if status.message().starts_with("Failed to connect") => {
                        StoreError::Unavailable {
                            backend: BACKEND,
                            url: self.url.clone(),
                            message: "connection failed (is the server running, and is this its gRPC port?)".into(),
                        }
                    }
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                        StoreError::Unavailable {
                            backend: BACKEND,
                            url: self.url.clone(),
                            message: format!("{:?}: {}", status.code(), status.message()),
                        }
                    }
                    code => StoreError::Backend {
                        backend: BACKEND,
                        collection: collection.to_owned(),
                        message: format!("{code:?}: {}", status.message()),
                    },
                }
            }
            other => StoreError::Backend {
                backend: BACKEND,
                collection: collection.to_owned(),
                message: other.to_string(),
            },
        }
    }
}

fn to_qdrant_filter(filter: &Filter) -> qdrant::Filter {
    qdrant::Filter::must(filter.must.iter().map(|condition| {
        let value: qdrant::r#match::MatchValue = match &condition.value {
            MatchValue::Keyword(value) => value.clone().into(),
            MatchValue::Integer(value) => (*value).into(),
            MatchValue::Bool(value) => (*value).into(),
        };
        Condition::matches(condition.key.clone(), value)
    }))
}

fn to_json_payload(payload: HashMap<String, qdrant::Value>) -> Map<String, Value> {
    payload
        .into_iter()
        .map(|(key, value)| (key, Value::from(value)))
        .collect()
}

#[async_trait]
impl VectorStore for QdrantStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn create_collection(
        &self,
        collection: &str,
        dimension: usize,
    ) -> Result<(), StoreError> {
        validate_collection_name(collection)?;
        if let Some(info) = self.collection_info(collection).await? {
            return if info.dimension == dimension {
                Ok(())
            } else {
                Err(StoreError::DimensionMismatch {
                    collection: collection.to_owned(),
                    expected: info.dimension,
                    got: dimension,
                })
            };
        }
        self.client
            .create_collection(
                CreateCollectionBuilder::new(collection)
                    .vectors_config(VectorParamsBuilder::new(dimension as u64, Distance::Cosine)),
            )
            .await
            .map_err(|err| self.error(collection, err))?;
        Ok(())
    }

    async fn collection_info(
        &self,
        collection: &str,
    ) -> Result<Option<CollectionInfo>, StoreError> {
        validate_collection_name(collection)?;
        let exists = self
            .client
            .collection_exists(collection)
            .await
            .map_err(|err| self.error(collection, err))?;
        if !exists {
            return Ok(None);
        }
        let info = self
            .client
            .collection_info(collection)
            .await
            .map_err(|err| self.error(collection, err))?
            .result
            .ok_or_else(|| {
                self.error(
                    collection,
                    QdrantError::ConversionError("collection info without a result".into()),
                )
            })?;
        let dimension = info
            .config
            .as_ref()
            .and_then(|config| config.params.as_ref())
            .and_then(|params| params.vectors_config.as_ref())
            .and_then(|vectors| match &vectors.config {
                Some(VectorsConfigKind::Params(params)) => Some(params.size as usize),
                Some(VectorsConfigKind::ParamsMap(map)) => map.map.get("").map(|p| p.size as usize),
                None => None,
            })
            .ok_or_else(|| StoreError::Backend {
                backend: BACKEND,
                collection: collection.to_owned(),
                message: "it has no unnamed dense vector; Sextant stores one vector per point"
                    .into(),
            })?;
        let points = self.count(collection, None).await?;
        Ok(Some(CollectionInfo {
            name: collection.to_owned(),
            dimension,
            points,
        }))
    }

    async fn delete_collection(&self, collection: &str) -> Result<bool, StoreError> {
        validate_collection_name(collection)?;
        let response = self
            .client
            .delete_collection(collection)
            .await
            .map_err(|err| self.error(collection, err))?;
        Ok(response.result)
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        let points: Vec<PointStruct> = points
            .into_iter()
            .map(|point| PointStruct::new(point.id, point.vector, Payload::from(point.payload)))
            .collect();
        self.client
            .upsert_points(UpsertPointsBuilder::new(collection, points).wait(true))
            .await
            .map_err(|err| self.error(collection, err))?;
        Ok(())
    }

    async fn delete(&self, collection: &str, filter: &Filter) -> Result<(), StoreError> {
        if filter.must.is_empty() {
            return Err(StoreError::Backend {
                backend: BACKEND,
                collection: collection.to_owned(),
                message: "refusing to delete with an empty filter (it would match every point)"
                    .into(),
            });
        }
        self.client
            .delete_points(
                DeletePointsBuilder::new(collection)
                    .points(to_qdrant_filter(filter))
                    .wait(true),
            )
            .await
            .map_err(|err| self.error(collection, err))?;
        Ok(())
    }

    async fn search(
        &self,
        collection: &str,
        request: &SearchRequest,
    ) -> Result<Vec<ScoredPoint>, StoreError> {
        let mut search =
            SearchPointsBuilder::new(collection, request.vector.clone(), request.limit as u64)
                .with_payload(true)
                .with_vectors(request.with_vectors);
        if let Some(threshold) = request.score_threshold {
            search = search.score_threshold(threshold);
        }
        if let Some(filter) = request.filter.as_ref().filter(|f| !f.must.is_empty()) {
            search = search.filter(to_qdrant_filter(filter));
        }
        let response = self
            .client
            .search_points(search)
            .await
            .map_err(|err| self.error(collection, err))?;
        response
            .result
            .into_iter()
            .map(|hit| {
                let id = match hit.id.and_then(|id| id.point_id_options) {
                    Some(PointIdOptions::Num(id)) => id,
                    other => {
                        return Err(StoreError::Backend {
                            backend: BACKEND,
                            collection: collection.to_owned(),
                            message: format!(
                                "point id {other:?} is not a number; Sextant writes numeric ids"
                            ),
                        });
                    }
                };
                let vector = hit
                    .vectors
                    .as_ref()
                    .and_then(|vectors| vectors.get_vector())
                    .and_then(|vector| match vector {
                        OutputVector::Dense(dense) => Some(dense.data),
                        _ => None,
                    });
                Ok(ScoredPoint {
                    id,
                    score: hit.score,
                    payload: to_json_payload(hit.payload),
                    vector,
                })
            })
            .collect()
    }

    async fn count(&self, collection: &str, filter: Option<&Filter>) -> Result<u64, StoreError> {
        let mut count = CountPointsBuilder::new(collection).exact(true);
        if let Some(filter) = filter.filter(|f| !f.must.is_empty()) {
            count = count.filter(to_qdrant_filter(filter));
        }
        let response = self
            .client
            .count(count)
            .await
            .map_err(|err| self.error(collection, err))?;
        Ok(response.result.map_or(0, |result| result.count))
    }
}

//! `QdrantGrpcDouble`: a test double of a Qdrant server — the gRPC services `qdrant-client` ships
//! (`collections_server`, `points_server`) answering from Qdrant's own engine in-process
//! (`qdrant-edge`, through `EmbeddedStore`). No Qdrant server can be installed here from the
//! package registries; with this double the real client, its protobufs and its error paths run in
//! CI. It implements the calls `QdrantStore` makes and answers `UNIMPLEMENTED` to the rest; it
//! can require an API key (`api-key` header) like a server configured with one.

use std::collections::HashMap;
use std::net::SocketAddr;

use qdrant_client::qdrant::collections_server::{Collections, CollectionsServer};
use qdrant_client::qdrant::points_server::{Points, PointsServer};
use qdrant_client::qdrant::{self, condition::ConditionOneOf, r#match::MatchValue as GrpcMatch};
use serde_json::{Map, Value};
use sextant_memory::stores::EmbeddedStore;
use sextant_memory::{Filter, MatchValue, Point, SearchRequest, StoreError, VectorStore};
use tonic::{Request, Response, Status};

/// A running double; dropping it stops the server.
pub struct QdrantGrpcDouble {
    pub url: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

#[derive(Clone)]
struct Service {
    store: EmbeddedStore,
    api_key: Option<String>,
}

impl QdrantGrpcDouble {
    /// Starts the double on 127.0.0.1:0 with collections under `dir`.
    pub async fn start(dir: &std::path::Path, api_key: Option<&str>) -> Self {
        let service = Service {
            store: EmbeddedStore::open(dir),
            api_key: api_key.map(str::to_owned),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("address");
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(CollectionsServer::new(service.clone()))
                .add_service(PointsServer::new(service))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await
                .expect("QdrantGrpcDouble serves");
        });
        Self {
            url: format!("http://{addr}"),
            _shutdown: shutdown,
        }
    }
}

impl Service {
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(expected) = &self.api_key else {
            return Ok(());
        };
        match request
            .metadata()
            .get("api-key")
            .and_then(|v| v.to_str().ok())
        {
            Some(given) if given == expected => Ok(()),
            _ => Err(Status::unauthenticated("Invalid api-key")),
        }
    }
}

fn status(error: StoreError) -> Status {
    match error {
        StoreError::NoCollection { collection, .. } => Status::not_found(format!(
            "Not found: Collection `{collection}` doesn't exist!"
        )),
        StoreError::DimensionMismatch { expected, got, .. } => Status::invalid_argument(format!(
            "Wrong input: Vector dimension error: expected dim: {expected}, got {got}"
        )),
        other => Status::internal(other.to_string()),
    }
}

fn filter_from(filter: Option<qdrant::Filter>) -> Result<Option<Filter>, Status> {
    let Some(filter) = filter else {
        return Ok(None);
    };
    if !filter.should.is_empty() || !filter.must_not.is_empty() || filter.min_should.is_some() {
        return Err(Status::unimplemented(
            "QdrantGrpcDouble filters support `must` only",
        ));
    }
    let mut converted = Filter::default();
    for condition in filter.must {
        let Some(ConditionOneOf::Field(field)) = condition.condition_one_of else {
            return Err(Status::unimplemented(
                "QdrantGrpcDouble filters support field matches only",
            ));
        };
        let value = match field.r#match.and_then(|m| m.match_value) {
            Some(GrpcMatch::Keyword(value)) => MatchValue::Keyword(value),
            Some(GrpcMatch::Integer(value)) => MatchValue::Integer(value),
            Some(GrpcMatch::Boolean(value)) => MatchValue::Bool(value),
            _ => {
                return Err(Status::unimplemented(
                    "QdrantGrpcDouble matches keyword, integer, bool",
                ));
            }
        };
        converted = converted.and(field.key, value);
    }
    Ok(Some(converted))
}

#[allow(deprecated)]
fn dense(vectors: Option<qdrant::Vectors>) -> Result<Vec<f32>, Status> {
    use qdrant::vectors::VectorsOptions;
    match vectors.and_then(|v| v.vectors_options) {
        Some(VectorsOptions::Vector(vector)) => match vector.vector {
            Some(qdrant::vector::Vector::Dense(dense)) => Ok(dense.data),
            None => Ok(vector.data),
            Some(_) => Err(Status::unimplemented(
                "QdrantGrpcDouble stores dense vectors only",
            )),
        },
        _ => Err(Status::invalid_argument(
            "a point needs one unnamed dense vector",
        )),
    }
}

fn to_json(payload: HashMap<String, qdrant::Value>) -> Map<String, Value> {
    payload
        .into_iter()
        .map(|(k, v)| (k, Value::from(v)))
        .collect()
}

fn from_json(payload: Map<String, Value>) -> HashMap<String, qdrant::Value> {
    payload
        .into_iter()
        .map(|(k, v)| (k, qdrant::Value::from(v)))
        .collect()
}

fn completed() -> qdrant::PointsOperationResponse {
    qdrant::PointsOperationResponse {
        result: Some(qdrant::UpdateResult {
            operation_id: Some(0),
            status: qdrant::UpdateStatus::Completed as i32,
        }),
        time: 0.0,
        usage: None,
    }
}

/// Implements a gRPC service trait: the listed methods from the body, every other method of the
/// trait answering UNIMPLEMENTED.
macro_rules! grpc_service {
    (impl $service:ident for Service { $($body:tt)* } unimplemented { $($name:ident($req:ident) -> $resp:ident;)* }) => {
        #[tonic::async_trait]
        impl $service for Service {
            $($body)*
            $(
                async fn $name(&self, _request: Request<qdrant::$req>) -> Result<Response<qdrant::$resp>, Status> {
                    Err(Status::unimplemented(concat!("QdrantGrpcDouble does not implement ", stringify!($name))))
                }
            )*
        }
    };
}

grpc_service! {
    impl Collections for Service {
        async fn get(
            &self,
            request: Request<qdrant::GetCollectionInfoRequest>,
        ) -> Result<Response<qdrant::GetCollectionInfoResponse>, Status> {
            self.authorize(&request)?;
            let name = request.into_inner().collection_name;
            let info = self.store.collection_info(&name).await.map_err(status)?.ok_or_else(|| {
                status(StoreError::NoCollection { backend: "qdrant", collection: name.clone() })
            })?;
            let vectors = qdrant::VectorsConfig {
                config: Some(qdrant::vectors_config::Config::Params(qdrant::VectorParams {
                    size: info.dimension as u64,
                    distance: qdrant::Distance::Cosine as i32,
                    ..Default::default()
                })),
            };
            Ok(Response::new(qdrant::GetCollectionInfoResponse {
                result: Some(qdrant::CollectionInfo {
                    status: qdrant::CollectionStatus::Green as i32,
                    points_count: Some(info.points),
                    config: Some(qdrant::CollectionConfig {
                        params: Some(qdrant::CollectionParams {
                            vectors_config: Some(vectors),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                time: 0.0,
            }))
        }

        async fn create(
            &self,
            request: Request<qdrant::CreateCollection>,
        ) -> Result<Response<qdrant::CollectionOperationResponse>, Status> {
            self.authorize(&request)?;
            let create = request.into_inner();
            let Some(qdrant::vectors_config::Config::Params(params)) =
                create.vectors_config.and_then(|c| c.config)
            else {
                return Err(Status::unimplemented("QdrantGrpcDouble creates one unnamed vector"));
            };
            if params.distance != qdrant::Distance::Cosine as i32 {
                return Err(Status::unimplemented("QdrantGrpcDouble uses cosine distance only"));
            }
            if self.store.collection_info(&create.collection_name).await.map_err(status)?.is_some() {
                return Err(Status::already_exists(format!(
                    "Wrong input: Collection `{}` already exists!",
                    create.collection_name
                )));
            }
            self.store
                .create_collection(&create.collection_name, params.size as usize)
                .await
                .map_err(status)?;
            Ok(Response::new(qdrant::CollectionOperationResponse { result: true, time: 0.0 }))
        }

        async fn delete(
            &self,
            request: Request<qdrant::DeleteCollection>,
        ) -> Result<Response<qdrant::CollectionOperationResponse>, Status> {
            self.authorize(&request)?;
            let name = request.into_inner().collection_name;
            let deleted = self.store.delete_collection(&name).await.map_err(status)?;
            Ok(Response::new(qdrant::CollectionOperationResponse { result: deleted, time: 0.0 }))
        }

        async fn collection_exists(
            &self,
            request: Request<qdrant::CollectionExistsRequest>,
        ) -> Result<Response<qdrant::CollectionExistsResponse>, Status> {
            self.authorize(&request)?;
            let name = request.into_inner().collection_name;
            let exists = self.store.collection_info(&name).await.map_err(status)?.is_some();
            Ok(Response::new(qdrant::CollectionExistsResponse {
                result: Some(qdrant::CollectionExists { exists }),
                time: 0.0,
            }))
        }
    }
    unimplemented {
        list(ListCollectionsRequest) -> ListCollectionsResponse;
        update(UpdateCollection) -> CollectionOperationResponse;
        update_aliases(ChangeAliases) -> CollectionOperationResponse;
        list_collection_aliases(ListCollectionAliasesRequest) -> ListAliasesResponse;
        list_aliases(ListAliasesRequest) -> ListAliasesResponse;
        collection_cluster_info(CollectionClusterInfoRequest) -> CollectionClusterInfoResponse;
        update_collection_cluster_setup(UpdateCollectionClusterSetupRequest) -> UpdateCollectionClusterSetupResponse;
        create_shard_key(CreateShardKeyRequest) -> CreateShardKeyResponse;
        delete_shard_key(DeleteShardKeyRequest) -> DeleteShardKeyResponse;
        list_shard_keys(ListShardKeysRequest) -> ListShardKeysResponse;
    }
}

grpc_service! {
    impl Points for Service {
        async fn upsert(
            &self,
            request: Request<qdrant::UpsertPoints>,
        ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
            self.authorize(&request)?;
            let upsert = request.into_inner();
            let mut points = Vec::with_capacity(upsert.points.len());
            for point in upsert.points {
                let id = match point.id.and_then(|id| id.point_id_options) {
                    Some(qdrant::point_id::PointIdOptions::Num(id)) => id,
                    _ => return Err(Status::unimplemented("QdrantGrpcDouble stores numeric ids only")),
                };
                points.push(Point { id, vector: dense(point.vectors)?, payload: to_json(point.payload) });
            }
            self.store.upsert(&upsert.collection_name, points).await.map_err(status)?;
            Ok(Response::new(completed()))
        }

        async fn delete(
            &self,
            request: Request<qdrant::DeletePoints>,
        ) -> Result<Response<qdrant::PointsOperationResponse>, Status> {
            self.authorize(&request)?;
            let delete = request.into_inner();
            let filter = match delete.points.and_then(|p| p.points_selector_one_of) {
                Some(qdrant::points_selector::PointsSelectorOneOf::Filter(filter)) => filter_from(Some(filter))?,
                _ => return Err(Status::unimplemented("QdrantGrpcDouble deletes by filter only")),
            };
            self.store
                .delete(&delete.collection_name, &filter.unwrap_or_default())
                .await
                .map_err(status)?;
            Ok(Response::new(completed()))
        }

        async fn search(
            &self,
            request: Request<qdrant::SearchPoints>,
        ) -> Result<Response<qdrant::SearchResponse>, Status> {
            self.authorize(&request)?;
            let search = request.into_inner();
            let with_vectors = matches!(
                search.with_vectors.and_then(|s| s.selector_options),
                Some(qdrant::with_vectors_selector::SelectorOptions::Enable(true))
            );
            let hits = self
                .store
                .search(
                    &search.collection_name,
                    &SearchRequest {
                        vector: search.vector,
                        limit: search.limit as usize,
                        score_threshold: search.score_threshold,
                        filter: filter_from(search.filter)?,
                        with_vectors,
                    },
                )
                .await
                .map_err(status)?;
            let result = hits
                .into_iter()
                .map(|hit| qdrant::ScoredPoint {
                    id: Some(hit.id.into()),
                    payload: from_json(hit.payload),
                    score: hit.score,
                    version: 0,
                    vectors: hit.vector.map(|data| qdrant::VectorsOutput {
                        vectors_options: Some(qdrant::vectors_output::VectorsOptions::Vector(
                            qdrant::VectorOutput {
                                vector: Some(qdrant::vector_output::Vector::Dense(qdrant::DenseVector { data })),
                                ..Default::default()
                            },
                        )),
                    }),
                    ..Default::default()
                })
                .collect();
            Ok(Response::new(qdrant::SearchResponse { result, time: 0.0, usage: None }))
        }

        async fn count(
            &self,
            request: Request<qdrant::CountPoints>,
        ) -> Result<Response<qdrant::CountResponse>, Status> {
            self.authorize(&request)?;
            let count = request.into_inner();
            let filter = filter_from(count.filter)?;
            let counted = self
                .store
                .count(&count.collection_name, filter.as_ref())
                .await
                .map_err(status)?;
            Ok(Response::new(qdrant::CountResponse {
                result: Some(qdrant::CountResult { count: counted }),
                time: 0.0,
                usage: None,
            }))
        }
    }
    unimplemented {
        get(GetPoints) -> GetResponse;
        update_vectors(UpdatePointVectors) -> PointsOperationResponse;
        delete_vectors(DeletePointVectors) -> PointsOperationResponse;
        set_payload(SetPayloadPoints) -> PointsOperationResponse;
        overwrite_payload(SetPayloadPoints) -> PointsOperationResponse;
        delete_payload(DeletePayloadPoints) -> PointsOperationResponse;
        clear_payload(ClearPayloadPoints) -> PointsOperationResponse;
        create_field_index(CreateFieldIndexCollection) -> PointsOperationResponse;
        delete_field_index(DeleteFieldIndexCollection) -> PointsOperationResponse;
        create_vector_name(CreateVectorNameRequest) -> PointsOperationResponse;
        delete_vector_name(DeleteVectorNameRequest) -> PointsOperationResponse;
        search_batch(SearchBatchPoints) -> SearchBatchResponse;
        search_groups(SearchPointGroups) -> SearchGroupsResponse;
        scroll(ScrollPoints) -> ScrollResponse;
        recommend(RecommendPoints) -> RecommendResponse;
        recommend_batch(RecommendBatchPoints) -> RecommendBatchResponse;
        recommend_groups(RecommendPointGroups) -> RecommendGroupsResponse;
        discover(DiscoverPoints) -> DiscoverResponse;
        discover_batch(DiscoverBatchPoints) -> DiscoverBatchResponse;
        update_batch(UpdateBatchPoints) -> UpdateBatchResponse;
        query(QueryPoints) -> QueryResponse;
        query_batch(QueryBatchPoints) -> QueryBatchResponse;
        query_groups(QueryPointGroups) -> QueryGroupsResponse;
        facet(FacetCounts) -> FacetResponse;
        search_matrix_pairs(SearchMatrixPoints) -> SearchMatrixPairsResponse;
        search_matrix_offsets(SearchMatrixPoints) -> SearchMatrixOffsetsResponse;
    }
}

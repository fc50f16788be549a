//! [`VectorStore`]: where chunks and their vectors live, searched by similarity with payload
//! filters. Every collection uses cosine similarity; the dimension is fixed when it is created.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A point's id. Ingestion derives it from the chunk's source and index, so re-ingesting a file
/// overwrites its points instead of adding new ones.
pub type PointId = u64;

/// A vector with its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The id (an existing point with this id is replaced).
    pub id: PointId,
    /// The vector; its length must be the collection's dimension.
    pub vector: Vec<f32>,
    /// JSON fields stored with the vector and returned by searches.
    pub payload: Map<String, Value>,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPoint {
    /// The point's id.
    pub id: PointId,
    /// Cosine similarity to the query, in [-1, 1].
    pub score: f32,
    /// The point's payload.
    pub payload: Map<String, Value>,
    /// The stored vector (unit length), when the search asked for vectors.
    pub vector: Option<Vec<f32>>,
}

/// A nearest-neighbour search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// The query vector.
    pub vector: Vec<f32>,
    /// Most hits returned.
    pub limit: usize,
    /// Hits scoring below this are dropped.
    pub score_threshold: Option<f32>,
    /// Only points whose payload matches.
    pub filter: Option<Filter>,
    /// Return the stored vectors too (ranking by MMR needs them).
    pub with_vectors: bool,
}

/// Payload conditions that must all hold: `source = "docs/a.md" AND chunk_index = 0`.
///
/// ```
/// use sextant_memory::Filter;
/// let filter = Filter::parse("source=docs/intro.md, lang=en").unwrap();
/// assert_eq!(filter.must.len(), 2);
/// assert_eq!(filter.to_string(), r#"source = "docs/intro.md" AND lang = "en""#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// Every one of these must match.
    pub must: Vec<FieldMatch>,
}

/// One payload field that must equal a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldMatch {
    /// The payload key (dots reach into nested objects).
    pub key: String,
    /// The value it must equal.
    pub value: MatchValue,
}

/// A value a payload field is matched against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MatchValue {
    /// A whole string.
    Keyword(String),
    /// An integer.
    Integer(i64),
    /// A boolean.
    Bool(bool),
}

impl Filter {
    /// A filter that one field equal `value`.
    pub fn field(key: impl Into<String>, value: impl Into<MatchValue>) -> Self {
        Self::default().and(key, value)
    }

    /// This filter with one more condition.
    pub fn and(mut self, key: impl Into<String>, value: impl Into<MatchValue>) -> Self {
        self.must.push(FieldMatch {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Parses `key=value` conditions separated by commas; values that read as integers or
    /// booleans match as such, anything else as a string.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut filter = Self::default();
        for condition in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let (key, value) = condition.split_once('=').ok_or_else(|| {
                format!("filter condition `{condition}` is not of the form key=value")
            })?;
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                return Err(format!("filter condition `{condition}` has no key"));
            }
            let value = if let Ok(integer) = value.parse::<i64>() {
                MatchValue::Integer(integer)
            } else if let Ok(boolean) = value.parse::<bool>() {
                MatchValue::Bool(boolean)
            } else {
                MatchValue::Keyword(value.trim_matches('"').to_owned())
            };
            filter = filter.and(key, value);
        }
        Ok(filter)
    }

    /// Whether `payload` satisfies every condition (for stores that filter in memory, and tests).
    pub fn matches(&self, payload: &Map<String, Value>) -> bool {
        self.must.iter().all(|condition| {
            let mut value = None;
            let mut object = Some(payload);
            for part in condition.key.split('.') {
                value = object.and_then(|o| o.get(part));
                object = value.and_then(Value::as_object);
            }
            match (&condition.value, value) {
                (MatchValue::Keyword(want), Some(Value::String(have))) => want == have,
                (MatchValue::Integer(want), Some(Value::Number(have))) => {
                    have.as_i64() == Some(*want)
                }
                (MatchValue::Bool(want), Some(Value::Bool(have))) => want == have,
                _ => false,
            }
        })
    }
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, condition) in self.must.iter().enumerate() {
            if i > 0 {
                f.write_str(" AND ")?;
            }
            match &condition.value {
                MatchValue::Keyword(value) => write!(f, "{} = {value:?}", condition.key)?,
                MatchValue::Integer(value) => write!(f, "{} = {value}", condition.key)?,
                MatchValue::Bool(value) => write!(f, "{} = {value}", condition.key)?,
            }
        }
        Ok(())
    }
}

impl From<&str> for MatchValue {
    fn from(value: &str) -> Self {
        Self::Keyword(value.to_owned())
    }
}

impl From<String> for MatchValue {
    fn from(value: String) -> Self {
        Self::Keyword(value)
    }
}

impl From<i64> for MatchValue {
    fn from(value: i64) -> Self {
        Self::Integer(value)
    }
}

impl From<bool> for MatchValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

/// A collection's shape and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionInfo {
    /// Its name.
    pub name: String,
    /// The length of its vectors.
    pub dimension: usize,
    /// How many points it holds.
    pub points: u64,
}

/// Why a vector store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The collection does not exist.
    #[error(
        "collection `{collection}` does not exist in the {backend} vector store; create it by ingesting documents: sextant ingest PATH --collection {collection}"
    )]
    NoCollection {
        /// Which store.
        backend: &'static str,
        /// The collection.
        collection: String,
    },
    /// Vectors of the wrong length for the collection.
    #[error(
        "collection `{collection}` holds {expected}-dimension vectors, but got {got}-dimension ones (was it built with another embedder?)"
    )]
    DimensionMismatch {
        /// The collection.
        collection: String,
        /// Its dimension.
        expected: usize,
        /// The offending length.
        got: usize,
    },
    /// A collection name the store cannot use.
    #[error("`{collection}` is not a valid collection name: {reason}")]
    InvalidName {
        /// The name.
        collection: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another process has the embedded collection open for writing.
    #[error("collection `{collection}` is in use by another Sextant process (lock file {lock})")]
    Locked {
        /// The collection.
        collection: String,
        /// The lock file held.
        lock: String,
    },
    /// The server could not be reached.
    #[error("the {backend} vector store at {url} is unreachable: {message}")]
    Unavailable {
        /// Which store.
        backend: &'static str,
        /// Where it was looked for.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The store failed the operation.
    #[error("the {backend} vector store failed on collection `{collection}`: {message}")]
    Backend {
        /// Which store.
        backend: &'static str,
        /// The collection.
        collection: String,
        /// What went wrong.
        message: String,
    },
}

impl StoreError {
    /// The `error.type` value of this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::NoCollection { .. } => "collection_not_found",
            Self::DimensionMismatch { .. } => "dimension_mismatch",
            Self::InvalidName { .. } => "invalid_collection_name",
            Self::Locked { .. } => "collection_locked",
            Self::Unavailable { .. } => "store_unavailable",
            Self::Backend { .. } => "store_error",
        }
    }
}

/// A store of vectors with payloads, searched by cosine similarity.
///
/// Implementations: [`EmbeddedStore`](crate::stores::EmbeddedStore) (Qdrant's engine in-process,
/// the offline default) and [`QdrantStore`](crate::stores::QdrantStore) (a Qdrant server over
/// gRPC). Both keep the same payloads and filters, so a collection moves between them unchanged.
#[async_trait]
pub trait VectorStore: Send + Sync {
    /// The backend's name: `embedded`, `qdrant`.
    fn backend(&self) -> &'static str;

    /// Creates `collection` for `dimension`-long vectors; succeeds without change when it exists
    /// with that dimension, fails with [`StoreError::DimensionMismatch`] when it has another.
    async fn create_collection(&self, collection: &str, dimension: usize)
    -> Result<(), StoreError>;

    /// The collection's dimension and size, or `None` when it does not exist.
    async fn collection_info(&self, collection: &str)
    -> Result<Option<CollectionInfo>, StoreError>;

    /// Deletes the collection and its points; `false` when there was none.
    async fn delete_collection(&self, collection: &str) -> Result<bool, StoreError>;

    /// Inserts or replaces points. When this returns, they are durable: they survive the process
    /// being killed.
    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), StoreError>;

    /// Deletes every point matching `filter`.
    async fn delete(&self, collection: &str, filter: &Filter) -> Result<(), StoreError>;

    /// The points most similar to the request's vector, best first.
    async fn search(
        &self,
        collection: &str,
        request: &SearchRequest,
    ) -> Result<Vec<ScoredPoint>, StoreError>;

    /// How many points match `filter` (all points when `None`), exactly.
    async fn count(&self, collection: &str, filter: Option<&Filter>) -> Result<u64, StoreError>;

    /// Builds the collection's search index now rather than when the store decides to (the
    /// embedded engine searches new points exactly until then; a server indexes on its own).
    async fn optimize(&self, collection: &str) -> Result<(), StoreError> {
        let _ = collection;
        Ok(())
    }
}

/// Checks a collection name: 1–64 ASCII letters, digits, `-` or `_`, so it is safe as a directory
/// name and valid in Qdrant.
pub fn validate_collection_name(collection: &str) -> Result<(), StoreError> {
    let reason = if collection.is_empty() {
        Some("it is empty".to_owned())
    } else if collection.len() > 64 {
        Some(format!(
            "it is {} characters long; at most 64 are allowed",
            collection.len()
        ))
    } else {
        collection
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            .map(|c| format!("it contains {c:?}; use letters, digits, `-` and `_`"))
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidName {
            collection: collection.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_typed_conditions_and_rejects_malformed_ones() {
        let filter = Filter::parse("source=a.md, chunk_index=3, draft=false").unwrap();
        assert_eq!(
            filter
                .must
                .iter()
                .map(|m| m.value.clone())
                .collect::<Vec<_>>(),
            vec![
                MatchValue::Keyword("a.md".into()),
                MatchValue::Integer(3),
                MatchValue::Bool(false)
            ]
        );
        assert!(Filter::parse("source").unwrap_err().contains("`source`"));
        assert!(Filter::parse("=x").unwrap_err().contains("no key"));
    }

    #[test]
    fn matches_nested_keys_and_types_exactly() {
        let payload = json!({"source": "a.md", "meta": {"lang": "en"}, "chunk_index": 2});
        let payload = payload.as_object().unwrap();
        assert!(
            Filter::parse("meta.lang=en, chunk_index=2")
                .unwrap()
                .matches(payload)
        );
        assert!(!Filter::parse("chunk_index=3").unwrap().matches(payload));
        // A string "2" is not the integer 2.
        assert!(!Filter::field("chunk_index", "2").matches(payload));
        assert!(!Filter::parse("missing=x").unwrap().matches(payload));
    }

    #[test]
    fn collection_names_are_checked() {
        assert!(validate_collection_name("kb_2-docs").is_ok());
        for bad in ["", "../etc", "a b", &"x".repeat(65)] {
            let err = validate_collection_name(bad).unwrap_err();
            assert_eq!(err.error_type(), "invalid_collection_name", "{bad}");
        }
    }
}

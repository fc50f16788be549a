//! The vector stores: [`EmbeddedStore`] (Qdrant's engine in-process) and [`QdrantStore`] (a
//! Qdrant server over gRPC).

#[cfg(feature = "embedded-store")]
mod embedded;
#[cfg(feature = "qdrant")]
mod qdrant;

#[cfg(feature = "embedded-store")]
pub use embedded::{EmbeddedStore, IndexInfo};
#[cfg(feature = "qdrant")]
pub use qdrant::QdrantStore;

/// The filter in Qdrant's JSON form (`{"must": [{"key": …, "match": {"value": …}}]}`), which the
/// embedded engine reads (the server store builds gRPC conditions instead).
#[cfg(feature = "embedded-store")]
pub(crate) fn qdrant_filter_json(filter: &crate::vector_store::Filter) -> serde_json::Value {
    use crate::vector_store::MatchValue;
    use serde_json::{Value, json};

    let must: Vec<Value> = filter
        .must
        .iter()
        .map(|condition| {
            let value = match &condition.value {
                MatchValue::Keyword(value) => json!(value),
                MatchValue::Integer(value) => json!(value),
                MatchValue::Bool(value) => json!(value),
            };
            json!({"key": condition.key, "match": {"value": value}})
        })
        .collect();
    json!({ "must": must })
}

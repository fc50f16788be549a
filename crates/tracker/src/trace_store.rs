//! The local trace store: finished spans in a SQLite file in the data directory.
//!
//! It is both an OpenTelemetry [`SpanExporter`] (the embedded default trace sink, fed by the batch
//! processor) and the reader behind `sextant traces`. The database runs in WAL mode with a busy
//! timeout, so several processes can write and read it at once; each exported batch is one
//! transaction, so a crash never leaves half a batch.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Key, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Map;

use crate::conventions;
use crate::enrich::value_to_json;

/// Why the local trace store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum TraceStoreError {
    /// The database file could not be opened or prepared.
    #[error("could not open the local trace store at {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A query or write failed.
    #[error("the local trace store could not {action}: {source}")]
    Sqlite {
        /// What the store was doing, as a verb phrase.
        action: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A stored row is not what this version writes.
    #[error(
        "the local trace store holds a span it cannot read ({0}); was it written by a newer Sextant?"
    )]
    Corrupt(String),
    /// A trace id prefix that is not hexadecimal.
    #[error("'{0}' is not a trace id: use hexadecimal digits (0-9, a-f)")]
    InvalidTraceId(String),
    /// No stored trace starts with the prefix.
    #[error("no trace id in the local trace store starts with '{0}'")]
    UnknownTrace(String),
    /// Several stored traces start with the prefix.
    #[error("the trace id prefix '{prefix}' is ambiguous: it matches {} and more may follow; type more digits", candidates.join(", "))]
    AmbiguousTrace {
        /// The prefix given.
        prefix: String,
        /// Some of the trace ids it matches.
        candidates: Vec<String>,
    },
}

fn sqlite(action: &'static str) -> impl FnOnce(rusqlite::Error) -> TraceStoreError {
    move |source| TraceStoreError::Sqlite { action, source }
}

/// A span's status as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredStatus {
    /// `unset`, `ok` or `error`.
    pub code: String,
    /// The error description; empty unless `code` is `error`.
    pub message: String,
}

/// A span event as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The event name.
    pub name: String,
    /// When it happened, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// Its attributes, with their JSON types.
    pub attributes: Map<String, serde_json::Value>,
}

/// One stored span, in the JSON shape the CLI prints and other tools read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredSpan {
    /// The span name (`chat SmolLM2-135M-Instruct`).
    pub name: String,
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// 16 lower-case hex digits.
    pub span_id: String,
    /// The parent's span id; `None` (JSON `null`) for a root span.
    pub parent_span_id: Option<String>,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_time_unix_nano: u64,
    /// `internal`, `client`, `server`, `producer` or `consumer`.
    pub kind: String,
    /// The span status.
    pub status: StoredStatus,
    /// The attributes with their types: integers stay integers, arrays stay arrays.
    pub attributes: Map<String, serde_json::Value>,
    /// The span events.
    pub events: Vec<StoredEvent>,
}

impl StoredSpan {
    /// How long the span took.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(
            self.end_time_unix_nano
                .saturating_sub(self.start_time_unix_nano),
        )
    }

    /// An attribute as a string, if it is one.
    pub fn attribute_str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(|value| value.as_str())
    }

    /// An attribute as an integer; integers recorded as strings count too.
    pub fn attribute_i64(&self, key: &str) -> Option<i64> {
        match self.attributes.get(key)? {
            serde_json::Value::Number(number) => number.as_i64(),
            serde_json::Value::String(text) => text.parse().ok(),
            _ => None,
        }
    }

    /// Whether the span ended with an error status.
    pub fn is_error(&self) -> bool {
        self.status.code == "error"
    }
}

/// One line of `sextant traces`: a trace and its root span.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// The root span's name (the earliest span without a stored parent).
    pub root_span_name: String,
    /// Start of the earliest span, in nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// From the earliest start to the latest end.
    pub duration_ms: f64,
    /// Stored spans of the trace.
    pub span_count: u64,
    /// Input plus output tokens of the model calls, if any span recorded usage.
    pub total_tokens: Option<i64>,
    /// `error` if any span failed, else the root span's status code.
    pub status: String,
}

/// The local trace store; cheap to clone (clones share one connection).
#[derive(Clone)]
pub struct LocalTraceStore {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
    service_name: Arc<Mutex<Option<String>>>,
}

impl fmt::Debug for LocalTraceStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTraceStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_time_unix_nano INTEGER NOT NULL,
    end_time_unix_nano INTEGER NOT NULL,
    status_code TEXT NOT NULL,
    status_message TEXT NOT NULL,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL,
    service_name TEXT,
    scope_name TEXT,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_by_start ON spans (start_time_unix_nano);
";

const SPAN_COLUMNS: &str = "name, trace_id, span_id, parent_span_id, start_time_unix_nano, \
     end_time_unix_nano, kind, status_code, status_message, attributes, events";

impl LocalTraceStore {
    /// Opens (creating if needed) the store at `path`; its directory is created too.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TraceStoreError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |source| TraceStoreError::Open {
            path: path.clone(),
            source,
        };
        let connection = crate::local::open_sqlite(&path).map_err(open_error)?;
        connection.execute_batch(SCHEMA).map_err(open_error)?;
        Ok(Self {
            path,
            connection: Arc::new(Mutex::new(connection)),
            service_name: Arc::new(Mutex::new(None)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent: keep going.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores `spans` in one transaction; a span already stored is replaced.
    pub fn insert(&self, spans: &[SpanData]) -> Result<(), TraceStoreError> {
        let service_name = self
            .service_name
            .lock()
            .map(|name| name.clone())
            .unwrap_or_default();
        let mut connection = self.connection();
        let transaction = connection
            .transaction()
            .map_err(sqlite("start a transaction"))?;
        {
            let mut statement = transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO spans (trace_id, span_id, parent_span_id, name, kind, \
                     start_time_unix_nano, end_time_unix_nano, status_code, status_message, \
                     attributes, events, service_name, scope_name) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .map_err(sqlite("prepare the span insert"))?;
            for span in spans {
                let stored = stored_span(span);
                statement
                    .execute(params![
                        stored.trace_id,
                        stored.span_id,
                        stored.parent_span_id,
                        stored.name,
                        stored.kind,
                        stored.start_time_unix_nano as i64,
                        stored.end_time_unix_nano as i64,
                        stored.status.code,
                        stored.status.message,
                        serde_json::Value::Object(stored.attributes).to_string(),
                        serde_json::to_string(&stored.events).unwrap_or_else(|_| "[]".into()),
                        service_name,
                        span.instrumentation_scope.name(),
                    ])
                    .map_err(sqlite("store a span"))?;
            }
        }
        transaction
            .commit()
            .map_err(sqlite("commit a batch of spans"))
    }

    /// The most recent traces, newest first.
    pub fn list_traces(&self, limit: usize) -> Result<Vec<TraceSummary>, TraceStoreError> {
        let ids: Vec<String> = {
            let connection = self.connection();
            let mut statement = connection
                .prepare(
                    "SELECT trace_id FROM spans GROUP BY trace_id \
                     ORDER BY MIN(start_time_unix_nano) DESC LIMIT ?1",
                )
                .map_err(sqlite("list traces"))?;
            statement
                .query_map([limit as i64], |row| row.get(0))
                .and_then(|rows| rows.collect())
                .map_err(sqlite("list traces"))?
        };
        ids.iter()
            .map(|trace_id| Ok(summarize(trace_id, &self.spans(trace_id)?)))
            .collect()
    }

    /// The newest trace, if any is stored.
    pub fn latest_trace(&self) -> Result<Option<TraceSummary>, TraceStoreError> {
        Ok(self.list_traces(1)?.into_iter().next())
    }

    /// The spans of a trace, ordered by start time.
    pub fn spans(&self, trace_id: &str) -> Result<Vec<StoredSpan>, TraceStoreError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare_cached(&format!(
                "SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id = ?1 \
                 ORDER BY start_time_unix_nano, span_id"
            ))
            .map_err(sqlite("read a trace"))?;
        let rows = statement
            .query_map([trace_id], read_span_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sqlite("read a trace"))?;
        rows.into_iter().map(|row| row.into_span()).collect()
    }

    /// The full trace id that `prefix` abbreviates, like a short git hash.
    pub fn resolve_trace_id(&self, prefix: &str) -> Result<String, TraceStoreError> {
        let prefix = prefix.trim().to_ascii_lowercase();
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(TraceStoreError::InvalidTraceId(prefix));
        }
        let connection = self.connection();
        let mut statement = connection
            .prepare_cached(
                "SELECT DISTINCT trace_id FROM spans WHERE substr(trace_id, 1, ?2) = ?1 \
                 ORDER BY trace_id LIMIT 5",
            )
            .map_err(sqlite("look up a trace id"))?;
        let matches: Vec<String> = statement
            .query_map(params![prefix, prefix.len() as i64], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(sqlite("look up a trace id"))?;
        match matches.len() {
            0 => Err(TraceStoreError::UnknownTrace(prefix)),
            1 => Ok(matches.into_iter().next().unwrap_or_default()),
            _ => Err(TraceStoreError::AmbiguousTrace {
                prefix,
                candidates: matches,
            }),
        }
    }

    /// Whether a span with this id is stored (any trace).
    pub fn contains_span(&self, span_id: &str) -> Result<bool, TraceStoreError> {
        self.connection()
            .query_row(
                "SELECT 1 FROM spans WHERE span_id = ?1 LIMIT 1",
                [span_id],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(sqlite("look up a span"))
    }
}

struct SpanRow {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: Option<String>,
    start: i64,
    end: i64,
    kind: String,
    status_code: String,
    status_message: String,
    attributes: String,
    events: String,
}

fn read_span_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SpanRow> {
    Ok(SpanRow {
        name: row.get(0)?,
        trace_id: row.get(1)?,
        span_id: row.get(2)?,
        parent_span_id: row.get(3)?,
        start: row.get(4)?,
        end: row.get(5)?,
        kind: row.get(6)?,
        status_code: row.get(7)?,
        status_message: row.get(8)?,
        attributes: row.get(9)?,
        events: row.get(10)?,
    })
}

impl SpanRow {
    fn into_span(self) -> Result<StoredSpan, TraceStoreError> {
        let corrupt = |what: &str, error: serde_json::Error| {
            TraceStoreError::Corrupt(format!("{what} of span {}: {error}", self.span_id))
        };
        let attributes =
            serde_json::from_str(&self.attributes).map_err(|error| corrupt("attributes", error))?;
        let events =
            serde_json::from_str(&self.events).map_err(|error| corrupt("events", error))?;
        Ok(StoredSpan {
            name: self.name,
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            start_time_unix_nano: self.start as u64,
            end_time_unix_nano: self.end as u64,
            kind: self.kind,
            status: StoredStatus {
                code: self.status_code,
                message: self.status_message,
            },
            attributes,
            events,
        })
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0)
}

fn attributes_json(attributes: &[KeyValue]) -> Map<String, serde_json::Value> {
    attributes
        .iter()
        .map(|attribute| (attribute.key.to_string(), value_to_json(&attribute.value)))
        .collect()
}

/// The stored form of a finished span.
pub fn stored_span(span: &SpanData) -> StoredSpan {
    let (code, message) = match &span.status {
        Status::Unset => ("unset", String::new()),
        Status::Ok => ("ok", String::new()),
        Status::Error { description } => ("error", description.to_string()),
    };
    let parent = span.parent_span_id;
    StoredSpan {
        name: span.name.to_string(),
        trace_id: span.span_context.trace_id().to_string(),
        span_id: span.span_context.span_id().to_string(),
        parent_span_id: (parent != opentelemetry::trace::SpanId::INVALID)
            .then(|| parent.to_string()),
        start_time_unix_nano: unix_nanos(span.start_time),
        end_time_unix_nano: unix_nanos(span.end_time),
        kind: match span.span_kind {
            SpanKind::Client => "client",
            SpanKind::Server => "server",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
            SpanKind::Internal => "internal",
        }
        .to_string(),
        status: StoredStatus {
            code: code.to_string(),
            message,
        },
        attributes: attributes_json(&span.attributes),
        events: span
            .events
            .events
            .iter()
            .map(|event| StoredEvent {
                name: event.name.to_string(),
                time_unix_nano: unix_nanos(event.timestamp),
                attributes: attributes_json(&event.attributes),
            })
            .collect(),
    }
}

fn summarize(trace_id: &str, spans: &[StoredSpan]) -> TraceSummary {
    let ids: HashSet<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
    let root = spans
        .iter()
        .find(|span| {
            span.parent_span_id
                .as_deref()
                .is_none_or(|parent| !ids.contains(parent))
        })
        .or(spans.first());
    let start = spans
        .iter()
        .map(|span| span.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .map(|span| span.end_time_unix_nano)
        .max()
        .unwrap_or(start);
    let status = if spans.iter().any(StoredSpan::is_error) {
        "error".to_string()
    } else {
        root.map(|span| span.status.code.clone())
            .unwrap_or_else(|| "unset".into())
    };
    TraceSummary {
        trace_id: trace_id.to_string(),
        root_span_name: root.map(|span| span.name.clone()).unwrap_or_default(),
        start_time_unix_nano: start,
        duration_ms: end.saturating_sub(start) as f64 / 1e6,
        span_count: spans.len() as u64,
        total_tokens: total_tokens(spans),
        status,
    }
}

/// Tokens of the trace without double counting: a span's usage counts unless one of its
/// descendants also carries usage (then it is an aggregate, like the agent span's totals).
fn total_tokens(spans: &[StoredSpan]) -> Option<i64> {
    let usage = |span: &StoredSpan| {
        let input = span.attribute_i64(conventions::GEN_AI_USAGE_INPUT_TOKENS);
        let output = span.attribute_i64(conventions::GEN_AI_USAGE_OUTPUT_TOKENS);
        (input.is_some() || output.is_some()).then(|| input.unwrap_or(0) + output.unwrap_or(0))
    };
    let parents: HashMap<&str, &str> = spans
        .iter()
        .filter_map(|span| Some((span.span_id.as_str(), span.parent_span_id.as_deref()?)))
        .collect();
    let mut aggregates: HashSet<&str> = HashSet::new();
    for span in spans.iter().filter(|span| usage(span).is_some()) {
        let mut current = span.span_id.as_str();
        let mut hops = 0;
        while let Some(parent) = parents.get(current) {
            aggregates.insert(parent);
            current = parent;
            hops += 1;
            if hops > spans.len() {
                break;
            }
        }
    }
    let counted: Vec<i64> = spans
        .iter()
        .filter(|span| !aggregates.contains(span.span_id.as_str()))
        .filter_map(usage)
        .collect();
    (!counted.is_empty()).then(|| counted.iter().sum())
}

impl SpanExporter for LocalTraceStore {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.insert(&batch)
            .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))
    }

    fn set_resource(&mut self, resource: &Resource) {
        let name = resource
            .get(&Key::from_static_str("service.name"))
            .map(|value| value.to_string());
        if let Ok(mut slot) = self.service_name.lock() {
            *slot = name;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use serde_json::json;

    fn span(
        trace: u128,
        id: u64,
        parent: u64,
        name: &'static str,
        start_ms: u64,
        attributes: Vec<KeyValue>,
    ) -> SpanData {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms);
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(trace),
                SpanId::from(id),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: name.into(),
            start_time: at(start_ms),
            end_time: at(start_ms + 10),
            attributes,
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    #[test]
    fn round_trip_keeps_nesting_types_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalTraceStore::open(dir.path().join("data/traces.db")).unwrap();
        let trace = 0xabcdef_u128 << 100;
        let mut chat = span(
            trace,
            3,
            1,
            "chat m",
            20,
            vec![
                KeyValue::new(conventions::GEN_AI_USAGE_INPUT_TOKENS, 7_i64),
                KeyValue::new(conventions::GEN_AI_USAGE_OUTPUT_TOKENS, 5_i64),
                KeyValue::new(
                    conventions::GEN_AI_RESPONSE_FINISH_REASONS,
                    opentelemetry::Value::Array(
                        vec![opentelemetry::StringValue::from("stop")].into(),
                    ),
                ),
                KeyValue::new(conventions::GEN_AI_REQUEST_TEMPERATURE, 0.5),
            ],
        );
        chat.status = Status::error("model timed out");
        let agent = span(
            trace,
            1,
            0,
            "invoke_agent a",
            0,
            vec![KeyValue::new(conventions::GEN_AI_USAGE_INPUT_TOKENS, 7_i64)],
        );
        let tool = span(trace, 2, 1, "execute_tool t", 10, vec![]);
        store.insert(&[chat, agent, tool]).unwrap();

        let spans = store.spans(&TraceId::from(trace).to_string()).unwrap();
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["invoke_agent a", "execute_tool t", "chat m"]);
        assert_eq!(spans[0].parent_span_id, None);
        assert_eq!(
            spans[2].parent_span_id.as_deref(),
            Some(spans[0].span_id.as_str())
        );
        assert_eq!(
            spans[2].attributes[conventions::GEN_AI_USAGE_INPUT_TOKENS],
            json!(7)
        );
        assert_eq!(
            spans[2].attributes[conventions::GEN_AI_RESPONSE_FINISH_REASONS],
            json!(["stop"])
        );
        assert_eq!(
            spans[2].status,
            StoredStatus {
                code: "error".into(),
                message: "model timed out".into()
            }
        );
        assert_eq!(spans[2].kind, "client");

        let json = serde_json::to_value(&spans[0]).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "name",
            "trace_id",
            "span_id",
            "parent_span_id",
            "start_time_unix_nano",
            "end_time_unix_nano",
            "kind",
            "status",
            "attributes",
            "events",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        assert!(json["parent_span_id"].is_null());

        let summary = store.latest_trace().unwrap().unwrap();
        assert_eq!(summary.root_span_name, "invoke_agent a");
        assert_eq!(summary.span_count, 3);
        assert_eq!(
            summary.total_tokens,
            Some(12),
            "the agent's aggregate is not counted twice"
        );
        assert_eq!(summary.status, "error");
        assert_eq!(summary.duration_ms, 30.0);
    }

    #[test]
    fn prefix_lookup_resolves_rejects_unknown_and_ambiguous() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalTraceStore::open(dir.path().join("traces.db")).unwrap();
        let first = 0xab12_u128 << 112;
        let second = 0xab34_u128 << 112;
        store
            .insert(&[
                span(first, 1, 0, "a", 0, vec![]),
                span(second, 2, 0, "b", 5, vec![]),
            ])
            .unwrap();

        assert_eq!(
            store.resolve_trace_id("AB1").unwrap(),
            TraceId::from(first).to_string()
        );
        assert!(matches!(
            store.resolve_trace_id("ab"),
            Err(TraceStoreError::AmbiguousTrace { ref candidates, .. }) if candidates.len() == 2
        ));
        assert!(matches!(
            store.resolve_trace_id("ff"),
            Err(TraceStoreError::UnknownTrace(_))
        ));
        assert!(matches!(
            store.resolve_trace_id("xyz"),
            Err(TraceStoreError::InvalidTraceId(_))
        ));
        let listed: Vec<String> = store
            .list_traces(10)
            .unwrap()
            .into_iter()
            .map(|t| t.root_span_name)
            .collect();
        assert_eq!(listed, ["b", "a"], "newest first");
        let message = store.resolve_trace_id("ab").unwrap_err().to_string();
        assert!(message.contains("ambiguous"), "{message}");
    }

    #[test]
    fn a_second_handle_on_the_same_file_reads_what_the_first_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traces.db");
        let writer = LocalTraceStore::open(&path).unwrap();
        let reader = LocalTraceStore::open(&path).unwrap();
        writer.insert(&[span(9, 1, 0, "root", 0, vec![])]).unwrap();
        assert_eq!(reader.list_traces(5).unwrap().len(), 1);
        assert!(reader.contains_span(&SpanId::from(1).to_string()).unwrap());
    }
}

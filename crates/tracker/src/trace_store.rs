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
use crate::trace_search::{TraceFilterError, TraceQuery};
use crate::tracking::Assessment;

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
    /// A search filter, order or page token that could not be read.
    #[error(transparent)]
    Filter(#[from] TraceFilterError),
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

    /// An attribute as a float; integers and numeric strings count too.
    pub fn attribute_f64(&self, key: &str) -> Option<f64> {
        match self.attributes.get(key)? {
            serde_json::Value::Number(number) => number.as_f64(),
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
    /// Input tokens of the model calls, if any span recorded usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<i64>,
    /// Output tokens of the model calls, if any span recorded usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<i64>,
    /// What the model calls cost, if every priced call had a price ([`conventions::SEXTANT_USAGE_COST`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// The currency of `cost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// `error` if any span failed, else the root span's status code.
    pub status: String,
    /// The session the turn belonged to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The end user the turn ran for, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The agent that answered (the root-most `gen_ai.agent.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
}

/// One page of a [`LocalTraceStore::search`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TracePage {
    /// The matching traces, in the order asked for.
    pub traces: Vec<TraceSummary>,
    /// Pass it as the next query's `page_token` for the following page; `None` on the last.
    pub next_page_token: Option<String>,
}

/// The local trace store; cheap to clone (clones share one connection).
#[derive(Clone)]
pub struct LocalTraceStore {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
    /// A second connection for searches, so a slow search never holds up an export (WAL lets
    /// readers and the writer work at once).
    reader: Arc<Mutex<Connection>>,
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
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    root_span_name TEXT NOT NULL,
    start_time_unix_nano INTEGER NOT NULL,
    end_time_unix_nano INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    span_count INTEGER NOT NULL,
    status TEXT NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    total_tokens INTEGER,
    cost REAL,
    currency TEXT,
    session_id TEXT,
    user_id TEXT,
    agent_name TEXT,
    owner TEXT,
    prompts TEXT,
    root_attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start_time_unix_nano);
CREATE INDEX IF NOT EXISTS traces_by_duration ON traces (duration_ms);
CREATE INDEX IF NOT EXISTS traces_by_session ON traces (session_id);
CREATE INDEX IF NOT EXISTS traces_by_user ON traces (user_id);
CREATE INDEX IF NOT EXISTS traces_by_agent ON traces (agent_name);
CREATE INDEX IF NOT EXISTS traces_by_owner ON traces (owner);
CREATE TABLE IF NOT EXISTS assessments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value,
    source_type TEXT NOT NULL,
    source_id TEXT NOT NULL,
    create_time_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assessments_by_trace_name ON assessments (trace_id, name, seq);
CREATE INDEX IF NOT EXISTS assessments_by_name ON assessments (name, value);
";

/// The schema version this code writes (`PRAGMA user_version`): 2 added the `traces` summaries
/// and the `assessments` mirror that search reads.
const SCHEMA_VERSION: i64 = 2;

const SUMMARY_COLUMNS: &str = "t.trace_id, t.root_span_name, t.start_time_unix_nano, \
     t.duration_ms, t.span_count, t.total_tokens, t.input_tokens, t.output_tokens, t.cost, \
     t.currency, t.status, t.session_id, t.user_id, t.agent_name";

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
        let mut connection = crate::local::open_sqlite(&path).map_err(open_error)?;
        connection.execute_batch(SCHEMA).map_err(open_error)?;
        migrate(&mut connection).map_err(open_error)?;
        let reader = crate::local::open_sqlite(&path).map_err(open_error)?;
        Ok(Self {
            path,
            connection: Arc::new(Mutex::new(connection)),
            reader: Arc::new(Mutex::new(reader)),
            service_name: Arc::new(Mutex::new(None)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let traces: HashSet<String> = spans
            .iter()
            .map(|span| span.span_context.trace_id().to_string())
            .collect();
        for trace_id in &traces {
            refresh_summary(&transaction, trace_id)?;
        }
        transaction
            .commit()
            .map_err(sqlite("commit a batch of spans"))
    }

    /// The traces `query` matches, one page of them, scoped to `query.owner`.
    pub fn search(&self, query: &TraceQuery) -> Result<TracePage, TraceStoreError> {
        let (condition, mut params) = query.filter.sql();
        let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM traces t WHERE ({condition})");
        if let Some(owner) = &query.owner {
            // The owner's own traces and those of end users it named (`owner/enduser`).
            sql.push_str(
                " AND (t.owner = ? OR (? != '' AND substr(t.owner, 1, length(?) + 1) = ? || '/'))",
            );
            for _ in 0..4 {
                params.push(rusqlite::types::Value::Text(owner.clone()));
            }
        }
        let offset = query.offset()?;
        let size = query.page_size();
        sql.push_str(&format!(" ORDER BY {} LIMIT ? OFFSET ?", query.order.sql()));
        params.push(rusqlite::types::Value::Integer(size as i64 + 1));
        params.push(rusqlite::types::Value::Integer(offset as i64));
        let connection = self.reader();
        let mut statement = connection.prepare(&sql).map_err(sqlite("search traces"))?;
        let mut traces: Vec<TraceSummary> = statement
            .query_map(rusqlite::params_from_iter(params), read_summary_row)
            .and_then(|rows| rows.collect())
            .map_err(sqlite("search traces"))?;
        let next_page_token = (traces.len() > size).then(|| (offset + size).to_string());
        traces.truncate(size);
        Ok(TracePage {
            traces,
            next_page_token,
        })
    }

    /// Whether trace `trace_id` is stored and matches `filter`.
    pub fn matches(
        &self,
        filter: &crate::trace_search::TraceFilter,
        trace_id: &str,
    ) -> Result<bool, TraceStoreError> {
        let (condition, mut params) = filter.sql();
        params.insert(0, rusqlite::types::Value::Text(trace_id.to_owned()));
        self.reader()
            .query_row(
                &format!("SELECT 1 FROM traces t WHERE t.trace_id = ? AND ({condition})"),
                rusqlite::params_from_iter(params),
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(sqlite("match a trace"))
    }

    /// Keeps a copy of `assessment` beside its trace, so search can filter on it
    /// (`feedback.thumbs = false`). The tracking store remains the record; this is its index.
    pub fn record_assessment(&self, assessment: &Assessment) -> Result<(), TraceStoreError> {
        let value = match &assessment.value {
            Some(serde_json::Value::Bool(b)) => rusqlite::types::Value::Integer(i64::from(*b)),
            Some(serde_json::Value::Number(n)) => match n.as_i64() {
                Some(i) => rusqlite::types::Value::Integer(i),
                None => rusqlite::types::Value::Real(n.as_f64().unwrap_or(f64::NAN)),
            },
            Some(serde_json::Value::String(text)) => rusqlite::types::Value::Text(text.clone()),
            Some(other) => rusqlite::types::Value::Text(other.to_string()),
            None => rusqlite::types::Value::Null,
        };
        let body = serde_json::to_string(assessment).unwrap_or_default();
        self.connection()
            .execute(
                "INSERT INTO assessments (trace_id, name, value, source_type, source_id, \
                 create_time_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    assessment.otel_trace_id(),
                    assessment.name,
                    value,
                    assessment.source.source_type.as_str(),
                    assessment.source.source_id,
                    assessment.create_time_ms,
                    body,
                ],
            )
            .map(drop)
            .map_err(sqlite("store an assessment"))
    }

    /// The assessments kept beside a trace, oldest first.
    pub fn assessments(&self, trace_id: &str) -> Result<Vec<Assessment>, TraceStoreError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare_cached("SELECT body FROM assessments WHERE trace_id = ?1 ORDER BY seq")
            .map_err(sqlite("read assessments"))?;
        let bodies: Vec<String> = statement
            .query_map([trace_id], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(sqlite("read assessments"))?;
        bodies
            .iter()
            .map(|body| {
                serde_json::from_str(body)
                    .map_err(|error| TraceStoreError::Corrupt(format!("an assessment: {error}")))
            })
            .collect()
    }

    /// The summary of one trace, if it is stored.
    pub fn summary(&self, trace_id: &str) -> Result<Option<TraceSummary>, TraceStoreError> {
        self.reader()
            .query_row(
                &format!("SELECT {SUMMARY_COLUMNS} FROM traces t WHERE t.trace_id = ?1"),
                [trace_id],
                read_summary_row,
            )
            .optional()
            .map_err(sqlite("read a trace summary"))
    }

    /// Who owns a trace ([`conventions::SEXTANT_OWNER`]): `None` if the trace is not stored,
    /// `Some(None)` if it has no owner (a CLI run).
    pub fn owner(&self, trace_id: &str) -> Result<Option<Option<String>>, TraceStoreError> {
        self.connection()
            .query_row(
                "SELECT owner FROM traces WHERE trace_id = ?1",
                [trace_id],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()
            .map_err(sqlite("read a trace's owner"))
    }

    /// The most recent traces, newest first.
    pub fn list_traces(&self, limit: usize) -> Result<Vec<TraceSummary>, TraceStoreError> {
        let connection = self.reader();
        let mut statement = connection
            .prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM traces t \
                 ORDER BY t.start_time_unix_nano DESC, t.trace_id LIMIT ?1"
            ))
            .map_err(sqlite("list traces"))?;
        statement
            .query_map([limit.min(i64::MAX as usize) as i64], read_summary_row)
            .and_then(|rows| rows.collect())
            .map_err(sqlite("list traces"))
    }

    /// The newest trace, if any is stored.
    pub fn latest_trace(&self) -> Result<Option<TraceSummary>, TraceStoreError> {
        Ok(self.list_traces(1)?.into_iter().next())
    }

    /// The spans of a trace, ordered by start time.
    pub fn spans(&self, trace_id: &str) -> Result<Vec<StoredSpan>, TraceStoreError> {
        read_spans(&self.connection(), trace_id)
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

fn read_spans(connection: &Connection, trace_id: &str) -> Result<Vec<StoredSpan>, TraceStoreError> {
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

/// Brings the schema to [`SCHEMA_VERSION`]: a store written before trace summaries existed gets
/// one per stored trace, once, under a write lock (another process may be opening it too).
fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version < SCHEMA_VERSION {
        let missing: Vec<String> = {
            let mut statement = transaction.prepare(
                "SELECT DISTINCT trace_id FROM spans \
                 WHERE trace_id NOT IN (SELECT trace_id FROM traces)",
            )?;
            statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?
        };
        for trace_id in &missing {
            refresh_summary(&transaction, trace_id).map_err(|error| match error {
                TraceStoreError::Sqlite { source, .. } => source,
                other => rusqlite::Error::ToSqlConversionFailure(Box::new(other)),
            })?;
        }
        transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    transaction.commit()
}

/// Recomputes the summary row of `trace_id` from its stored spans.
fn refresh_summary(connection: &Connection, trace_id: &str) -> Result<(), TraceStoreError> {
    let spans = read_spans(connection, trace_id)?;
    if spans.is_empty() {
        return Ok(());
    }
    let summary = summarize(trace_id, &spans);
    let root = root_span(&spans);
    let root_attributes = root
        .map(|span| serde_json::Value::Object(span.attributes.clone()).to_string())
        .unwrap_or_else(|| "{}".into());
    // An empty owner is one: a turn nobody asserted (a service without keys) is readable by the
    // callers who assert nobody, unlike a trace without an owner (a CLI run), which only admins read.
    let owner = root
        .into_iter()
        .chain(&spans)
        .find_map(|span| span.attribute_str(conventions::SEXTANT_OWNER))
        .map(str::to_owned);
    let prompts = root
        .and_then(|span| span.attribute_str(conventions::MLFLOW_LINKED_PROMPTS))
        .map(str::to_owned);
    let end = spans
        .iter()
        .map(|span| span.end_time_unix_nano)
        .max()
        .unwrap_or(summary.start_time_unix_nano);
    connection
        .prepare_cached(
            "INSERT OR REPLACE INTO traces (trace_id, root_span_name, start_time_unix_nano, \
             end_time_unix_nano, duration_ms, span_count, status, input_tokens, output_tokens, \
             total_tokens, cost, currency, session_id, user_id, agent_name, owner, prompts, \
             root_attributes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                summary.trace_id,
                summary.root_span_name,
                summary.start_time_unix_nano as i64,
                end as i64,
                summary.duration_ms,
                summary.span_count as i64,
                summary.status,
                summary.input_tokens,
                summary.output_tokens,
                summary.total_tokens,
                summary.cost,
                summary.currency,
                summary.session_id,
                summary.user_id,
                summary.agent_name,
                owner,
                prompts,
                root_attributes,
            ])
        })
        .map(drop)
        .map_err(sqlite("store a trace summary"))
}

fn read_summary_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TraceSummary> {
    Ok(TraceSummary {
        trace_id: row.get(0)?,
        root_span_name: row.get(1)?,
        start_time_unix_nano: row.get::<_, i64>(2)? as u64,
        duration_ms: row.get(3)?,
        span_count: row.get::<_, i64>(4)? as u64,
        total_tokens: row.get(5)?,
        input_tokens: row.get(6)?,
        output_tokens: row.get(7)?,
        cost: row.get(8)?,
        currency: row.get(9)?,
        status: row.get(10)?,
        session_id: row.get(11)?,
        user_id: row.get(12)?,
        agent_name: row.get(13)?,
    })
}

/// The first value of a string attribute: the root's, else the earliest span's that has it.
fn first_attribute(spans: &[StoredSpan], root: Option<&StoredSpan>, key: &str) -> Option<String> {
    root.into_iter()
        .chain(spans)
        .find_map(|span| span.attribute_str(key))
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
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

/// The root span: the earliest span without a stored parent.
fn root_span(spans: &[StoredSpan]) -> Option<&StoredSpan> {
    let ids: HashSet<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
    spans
        .iter()
        .find(|span| {
            span.parent_span_id
                .as_deref()
                .is_none_or(|parent| !ids.contains(parent))
        })
        .or(spans.first())
}

fn summarize(trace_id: &str, spans: &[StoredSpan]) -> TraceSummary {
    let root = root_span(spans);
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
    let input_tokens = leaf_sum(spans, |span| {
        span.attribute_i64(conventions::GEN_AI_USAGE_INPUT_TOKENS)
            .map(|n| n as f64)
    });
    let output_tokens = leaf_sum(spans, |span| {
        span.attribute_i64(conventions::GEN_AI_USAGE_OUTPUT_TOKENS)
            .map(|n| n as f64)
    });
    let cost = leaf_sum(spans, |span| {
        span.attribute_f64(conventions::SEXTANT_USAGE_COST)
    });
    TraceSummary {
        trace_id: trace_id.to_string(),
        root_span_name: root.map(|span| span.name.clone()).unwrap_or_default(),
        start_time_unix_nano: start,
        duration_ms: end.saturating_sub(start) as f64 / 1e6,
        span_count: spans.len() as u64,
        total_tokens: total_tokens(spans),
        input_tokens: input_tokens.map(|n| n as i64),
        output_tokens: output_tokens.map(|n| n as i64),
        cost,
        currency: cost.and(first_attribute(
            spans,
            root,
            conventions::SEXTANT_USAGE_COST_CURRENCY,
        )),
        status,
        session_id: first_attribute(spans, root, conventions::SESSION_ID),
        user_id: first_attribute(spans, root, conventions::USER_ID),
        agent_name: first_attribute(spans, root, conventions::GEN_AI_AGENT_NAME),
    }
}

/// Sums `value` over the spans without double counting: a span's value counts unless one of its
/// descendants also carries one (then it is an aggregate, like the agent span's totals).
fn leaf_sum(spans: &[StoredSpan], value: impl Fn(&StoredSpan) -> Option<f64>) -> Option<f64> {
    let parents: HashMap<&str, &str> = spans
        .iter()
        .filter_map(|span| Some((span.span_id.as_str(), span.parent_span_id.as_deref()?)))
        .collect();
    let mut aggregates: HashSet<&str> = HashSet::new();
    for span in spans.iter().filter(|span| value(span).is_some()) {
        let mut current = span.span_id.as_str();
        let mut hops = 0;
        while let Some(parent) = parents.get(current) {
            if !aggregates.insert(parent) {
                break;
            }
            current = parent;
            hops += 1;
            if hops > spans.len() {
                break;
            }
        }
    }
    let counted: Vec<f64> = spans
        .iter()
        .filter(|span| !aggregates.contains(span.span_id.as_str()))
        .filter_map(&value)
        .collect();
    (!counted.is_empty()).then(|| counted.iter().sum())
}

/// Tokens of the trace without double counting (see [`leaf_sum`]).
fn total_tokens(spans: &[StoredSpan]) -> Option<i64> {
    leaf_sum(spans, |span| {
        let input = span.attribute_i64(conventions::GEN_AI_USAGE_INPUT_TOKENS);
        let output = span.attribute_i64(conventions::GEN_AI_USAGE_OUTPUT_TOKENS);
        (input.is_some() || output.is_some())
            .then(|| (input.unwrap_or(0) + output.unwrap_or(0)) as f64)
    })
    .map(|n| n as i64)
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

    /// A turn: an agent root (with owner and session) over one chat call of `model` lasting
    /// `ms`, with `cost` if priced; errors when `failed`.
    fn turn(
        trace: u128,
        start_ms: u64,
        ms: u64,
        model: &str,
        cost: Option<f64>,
        owner: &str,
        failed: bool,
    ) -> Vec<SpanData> {
        let mut root = span(
            trace,
            1,
            0,
            "invoke_agent assistant",
            start_ms,
            vec![
                KeyValue::new(conventions::GEN_AI_AGENT_NAME, "assistant"),
                KeyValue::new(conventions::SEXTANT_OWNER, owner.to_owned()),
                KeyValue::new(conventions::SESSION_ID, format!("s-{}", trace % 3)),
                KeyValue::new(
                    "mlflow.traceTag.env",
                    if trace.is_multiple_of(2) {
                        "prod"
                    } else {
                        "dev"
                    },
                ),
                KeyValue::new(
                    conventions::MLFLOW_LINKED_PROMPTS,
                    format!(r#"[{{"name":"qa","version":"{}"}}]"#, 1 + trace % 2),
                ),
            ],
        );
        root.end_time = root.start_time + Duration::from_millis(ms);
        let mut attributes = vec![
            KeyValue::new(conventions::GEN_AI_REQUEST_MODEL, model.to_owned()),
            KeyValue::new(conventions::GEN_AI_USAGE_INPUT_TOKENS, 10_i64),
            KeyValue::new(conventions::GEN_AI_USAGE_OUTPUT_TOKENS, 5_i64),
        ];
        if let Some(cost) = cost {
            attributes.push(KeyValue::new(conventions::SEXTANT_USAGE_COST, cost));
            attributes.push(KeyValue::new(
                conventions::SEXTANT_USAGE_COST_CURRENCY,
                "USD",
            ));
        }
        let mut chat = span(trace, 2, 1, "chat", start_ms + 1, attributes);
        chat.end_time = root.end_time;
        if failed {
            chat.status = Status::error("model timed out");
        }
        vec![root, chat]
    }

    fn ids(page: &TracePage) -> Vec<String> {
        page.traces.iter().map(|t| t.trace_id.clone()).collect()
    }

    fn query(filter: &str) -> TraceQuery {
        TraceQuery {
            filter: crate::trace_search::TraceFilter::parse(filter).unwrap(),
            ..TraceQuery::default()
        }
    }

    #[test]
    fn search_filters_on_duration_model_status_tags_prompts_and_feedback() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalTraceStore::open(dir.path().join("traces.db")).unwrap();
        // Trace n starts at n seconds and lasts n * 500 ms.
        for n in 1..=8_u128 {
            let model = if n.is_multiple_of(2) {
                "llama3.2"
            } else {
                "gpt-4o-mini"
            };
            let cost = (!n.is_multiple_of(4)).then_some(n as f64 / 1000.0);
            let owner = if n <= 4 { "alice" } else { "bob/carol" };
            store
                .insert(&turn(
                    n,
                    n as u64 * 1000,
                    n as u64 * 500,
                    model,
                    cost,
                    owner,
                    n == 6,
                ))
                .unwrap();
        }
        let id = |n: u128| opentelemetry::trace::TraceId::from(n).to_string();
        let thumbs = |n: u128, up: bool, at: i64| Assessment {
            assessment_id: None,
            name: "thumbs".into(),
            trace_id: id(n),
            span_id: None,
            source: crate::tracking::AssessmentSource {
                source_type: crate::tracking::AssessmentSourceType::Human,
                source_id: "alice".into(),
            },
            create_time_ms: at,
            value: Some(json!(up)),
            error: None,
            rationale: None,
            metadata: Default::default(),
        };
        store.record_assessment(&thumbs(2, false, 1)).unwrap();
        store.record_assessment(&thumbs(4, false, 1)).unwrap();
        // Trace 4's user changed their mind: only the newest counts.
        store.record_assessment(&thumbs(4, true, 2)).unwrap();
        store.record_assessment(&thumbs(8, false, 1)).unwrap();

        let found = store
            .search(&query(
                "duration_ms > 1500 and attributes.gen_ai.request.model = 'llama3.2' \
                 and feedback.thumbs = false",
            ))
            .unwrap();
        assert_eq!(
            ids(&found),
            [id(8)],
            "trace 2 is too short, trace 4 was changed to up"
        );

        let errors = store.search(&query("status = 'ERROR'")).unwrap();
        assert_eq!(ids(&errors), [id(6)]);
        let ok = store.search(&query("status = 'OK'")).unwrap();
        assert_eq!(ok.traces.len(), 7);
        let prod = store
            .search(&query("tags.env = 'prod' and prompt.qa = 1"))
            .unwrap();
        assert_eq!(ids(&prod), [id(8), id(6), id(4), id(2)], "newest first");
        let glob = store
            .search(&query("attributes.gen_ai.request.model LIKE 'gpt-%'"))
            .unwrap();
        assert_eq!(glob.traces.len(), 4);
        assert_eq!(
            store
                .search(&query("attributes.gen_ai.request.model LIKE 'GPT-%'"))
                .unwrap()
                .traces
                .len(),
            0,
            "LIKE is case-sensitive"
        );
        assert_eq!(
            store
                .search(&query("attributes.gen_ai.request.model ILIKE 'GPT-%'"))
                .unwrap()
                .traces
                .len(),
            4
        );
        let priced = store.search(&query("cost >= 0.003")).unwrap();
        assert_eq!(
            ids(&priced),
            [id(7), id(6), id(5), id(3)],
            "unpriced traces never match"
        );
        let summary = store.summary(&id(3)).unwrap().unwrap();
        assert_eq!(summary.cost, Some(0.003));
        assert_eq!(summary.currency.as_deref(), Some("USD"));
        assert_eq!(summary.total_tokens, Some(15));
        assert_eq!(summary.agent_name.as_deref(), Some("assistant"));
        assert_eq!(summary.session_id.as_deref(), Some("s-0"));
        assert!(store.summary(&id(4)).unwrap().unwrap().cost.is_none());
        let early = store
            .search(&query("timestamp < 1700000004500 and span.name = 'chat'"))
            .unwrap();
        assert_eq!(early.traces.len(), 4, "{:?}", ids(&early));

        // Ordered and paged.
        let mut longest = TraceQuery {
            order: crate::trace_search::TraceOrder::parse("duration_ms DESC").unwrap(),
            limit: 3,
            ..TraceQuery::default()
        };
        let first = store.search(&longest).unwrap();
        assert_eq!(ids(&first), [id(8), id(7), id(6)]);
        longest.page_token = first.next_page_token.clone();
        let second = store.search(&longest).unwrap();
        assert_eq!(ids(&second), [id(5), id(4), id(3)]);
        longest.page_token = second.next_page_token.clone();
        let last = store.search(&longest).unwrap();
        assert_eq!(ids(&last), [id(2), id(1)]);
        assert_eq!(last.next_page_token, None);

        // Scoped: a caller sees its own traces and its end users', nobody else's.
        let scoped = |owner: &str| TraceQuery {
            owner: Some(owner.into()),
            ..TraceQuery::default()
        };
        assert_eq!(store.search(&scoped("alice")).unwrap().traces.len(), 4);
        assert_eq!(store.search(&scoped("bob")).unwrap().traces.len(), 4);
        assert_eq!(store.search(&scoped("bob/carol")).unwrap().traces.len(), 4);
        assert_eq!(store.search(&scoped("ali")).unwrap().traces.len(), 0);
        assert_eq!(store.search(&scoped("")).unwrap().traces.len(), 0);
        assert_eq!(store.owner(&id(5)).unwrap(), Some(Some("bob/carol".into())));
        assert_eq!(store.assessments(&id(4)).unwrap().len(), 2);
    }

    #[test]
    fn a_store_written_before_summaries_gets_them_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traces.db");
        {
            let store = LocalTraceStore::open(&path).unwrap();
            store
                .insert(&turn(5, 0, 700, "m", None, "", false))
                .unwrap();
            // Make it look like a version-1 store: spans only.
            let connection = store.connection();
            connection
                .execute_batch(
                    "DROP TABLE traces; DROP TABLE assessments; PRAGMA user_version = 0;",
                )
                .unwrap();
        }
        let store = LocalTraceStore::open(&path).unwrap();
        let listed = store.list_traces(10).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].duration_ms, 700.0);
        // An empty owner (a keyless service's anonymous caller) is an owner, not none.
        assert_eq!(
            store.owner(&listed[0].trace_id).unwrap(),
            Some(Some(String::new()))
        );
        let anonymous = TraceQuery {
            owner: Some(String::new()),
            ..TraceQuery::default()
        };
        assert_eq!(store.search(&anonymous).unwrap().traces.len(), 1);
        assert_eq!(
            store
                .search(&query("duration_ms = 700"))
                .unwrap()
                .traces
                .len(),
            1
        );
    }
}

//! Trace search: the filter language that `sextant traces search` and the service's
//! `GET /v1/traces?filter=…` share, compiled to SQL over the local trace store's indexed trace
//! summaries.
//!
//! ```text
//! status = 'ERROR' and duration_ms > 2000 and attributes.gen_ai.request.model = 'llama3.2'
//!     and tags.env = 'prod' and timestamp > '2026-12-01' and feedback.thumbs = false
//! ```
//!
//! Clauses are `FIELD OP VALUE` joined by `AND` (as in MLflow's `search_traces`, there is no
//! `OR`). The fields:
//!
//! | field | what it reads |
//! |---|---|
//! | `status` | the trace's status: `'OK'` (also unset) or `'ERROR'` |
//! | `duration_ms`, `timestamp` | how long the trace took; when it started (ms since the epoch or a quoted date/time, UTC) |
//! | `tokens`, `input_tokens`, `output_tokens`, `cost` | usage and cost summed over the model calls |
//! | `name`, `trace_id`, `session`, `user`, `agent` | the root span's name; the ids the turn carried |
//! | `prompt.NAME` | the version of prompt NAME the trace used |
//! | `attributes.KEY` / `root.attributes.KEY` | an attribute of any span / of the root span |
//! | `span.name` | the name of any span |
//! | `tags.KEY` | a trace tag (the root's `mlflow.traceTag.KEY`) |
//! | `feedback.NAME` / `assessments.NAME` | the newest assessment NAME of the trace |
//!
//! Operators: `=`, `!=`, `<`, `<=`, `>`, `>=`, `LIKE` and `ILIKE` (`%` any run, `_` one
//! character); values are quoted strings, numbers or `true`/`false`.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use rusqlite::types::Value as SqlValue;

use crate::tracking::tokenize;

/// Why a filter or an order could not be read; the message names the clause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace filter `{filter}`: {message}")]
pub struct TraceFilterError {
    /// The whole filter as given.
    pub filter: String,
    /// What is wrong, and where.
    pub message: String,
}

/// A parsed trace filter; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceFilter {
    clauses: Vec<Clause>,
}

#[derive(Debug, Clone, PartialEq)]
struct Clause {
    field: Field,
    op: Op,
    value: Literal,
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    /// A column of the `traces` summary table.
    Column(Column),
    /// `prompt.NAME`: the version of a linked prompt.
    Prompt(String),
    /// `attributes.KEY` (any span) or `root.attributes.KEY`.
    Attribute { key: String, root_only: bool },
    /// `span.name`.
    SpanName,
    /// `feedback.NAME` / `assessments.NAME`.
    Assessment(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Status,
    DurationMs,
    Timestamp,
    Tokens,
    InputTokens,
    OutputTokens,
    Cost,
    Name,
    TraceId,
    Session,
    User,
    Agent,
}

impl Column {
    const ALL: [(&'static str, Column); 14] = [
        ("status", Column::Status),
        ("duration_ms", Column::DurationMs),
        ("timestamp", Column::Timestamp),
        ("timestamp_ms", Column::Timestamp),
        ("tokens", Column::Tokens),
        ("total_tokens", Column::Tokens),
        ("input_tokens", Column::InputTokens),
        ("output_tokens", Column::OutputTokens),
        ("cost", Column::Cost),
        ("name", Column::Name),
        ("trace_id", Column::TraceId),
        ("session", Column::Session),
        ("user", Column::User),
        ("agent", Column::Agent),
    ];

    fn sql(self) -> &'static str {
        match self {
            Column::Status => "t.status",
            Column::DurationMs => "t.duration_ms",
            Column::Timestamp => "t.start_time_unix_nano",
            Column::Tokens => "t.total_tokens",
            Column::InputTokens => "t.input_tokens",
            Column::OutputTokens => "t.output_tokens",
            Column::Cost => "t.cost",
            Column::Name => "t.root_span_name",
            Column::TraceId => "t.trace_id",
            Column::Session => "t.session_id",
            Column::User => "t.user_id",
            Column::Agent => "t.agent_name",
        }
    }

    fn numeric(self) -> bool {
        matches!(
            self,
            Column::DurationMs
                | Column::Timestamp
                | Column::Tokens
                | Column::InputTokens
                | Column::OutputTokens
                | Column::Cost
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
}

impl Op {
    fn parse(token: &str) -> Option<Self> {
        Some(match token.to_ascii_uppercase().as_str() {
            "=" | "==" => Op::Eq,
            "!=" | "<>" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "LIKE" => Op::Like,
            "ILIKE" => Op::ILike,
            _ => return None,
        })
    }

    fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            // LIKE and ILIKE are written as GLOB; see `Clause::condition`.
            Op::Like | Op::ILike => "GLOB",
        }
    }

    fn orders(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
}

impl Literal {
    fn sql(&self) -> SqlValue {
        match self {
            Literal::Text(text) => SqlValue::Text(text.clone()),
            // Integers stay integers so `=` matches an INTEGER column exactly.
            Literal::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
                SqlValue::Integer(*n as i64)
            }
            Literal::Number(n) => SqlValue::Real(*n),
            // JSON booleans are read back by SQLite as 1 and 0.
            Literal::Bool(b) => SqlValue::Integer(i64::from(*b)),
        }
    }
}

fn parse_field(token: &str) -> Result<Field, String> {
    let unquote = |name: &str| -> Result<String, String> {
        let name = name.strip_prefix('`').unwrap_or(name);
        let name = name.strip_suffix('`').unwrap_or(name);
        if name.is_empty() {
            return Err(format!("`{token}` names nothing"));
        }
        if name.contains('"') {
            return Err(format!("`{token}`: a key cannot contain `\"`"));
        }
        Ok(name.to_owned())
    };
    let lower = token.to_ascii_lowercase();
    if let Some((_, column)) = Column::ALL.iter().find(|(name, _)| *name == lower) {
        return Ok(Field::Column(*column));
    }
    if lower == "span.name" || lower == "span_name" {
        return Ok(Field::SpanName);
    }
    let prefixed = |prefix: &str| {
        token
            .get(..prefix.len())
            .filter(|head| head.eq_ignore_ascii_case(prefix))
            .map(|_| &token[prefix.len()..])
    };
    if let Some(key) = prefixed("root.attributes.").or_else(|| prefixed("root.")) {
        return Ok(Field::Attribute {
            key: unquote(key)?,
            root_only: true,
        });
    }
    if let Some(key) = prefixed("attributes.")
        .or_else(|| prefixed("attribute."))
        .or_else(|| prefixed("span.attributes."))
    {
        return Ok(Field::Attribute {
            key: unquote(key)?,
            root_only: false,
        });
    }
    if let Some(key) = prefixed("tags.").or_else(|| prefixed("tag.")) {
        return Ok(Field::Attribute {
            key: format!("mlflow.traceTag.{}", unquote(key)?),
            root_only: true,
        });
    }
    if let Some(name) = prefixed("feedback.")
        .or_else(|| prefixed("assessments."))
        .or_else(|| prefixed("assessment."))
    {
        return Ok(Field::Assessment(unquote(name)?));
    }
    if let Some(name) = prefixed("prompt.").or_else(|| prefixed("prompts.")) {
        return Ok(Field::Prompt(unquote(name)?));
    }
    let known: Vec<&str> = Column::ALL.iter().map(|(name, _)| *name).collect();
    Err(format!(
        "`{token}` is not a trace field: use one of {}, span.name, prompt.NAME, attributes.KEY, \
         root.attributes.KEY, tags.KEY or feedback.NAME",
        known.join(", ")
    ))
}

/// Parses a date or a date-time (UTC unless it carries an offset) to ms since the epoch.
fn parse_time_ms(text: &str) -> Option<i64> {
    if let Ok(time) = text.parse::<Timestamp>() {
        return Some(time.as_millisecond());
    }
    let utc = |datetime: DateTime| {
        datetime
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|zoned| zoned.timestamp().as_millisecond())
    };
    if let Ok(datetime) = text.parse::<DateTime>() {
        return utc(datetime);
    }
    text.parse::<Date>().ok().and_then(|date| utc(date.into()))
}

/// A SQL LIKE pattern as a GLOB pattern, so `LIKE` is case-sensitive as in MLflow.
fn like_to_glob(pattern: &str) -> String {
    let mut glob = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '%' => glob.push('*'),
            '_' => glob.push('?'),
            '*' | '?' | '[' => {
                glob.push('[');
                glob.push(c);
                glob.push(']');
            }
            other => glob.push(other),
        }
    }
    glob
}

impl TraceFilter {
    /// Parses `filter`; an empty filter matches every trace.
    pub fn parse(filter: &str) -> Result<Self, TraceFilterError> {
        let error = |message: String| TraceFilterError {
            filter: filter.to_owned(),
            message,
        };
        let tokens = tokenize(filter).map_err(error)?;
        let mut clauses = Vec::new();
        let mut rest = tokens.as_slice();
        while !rest.is_empty() {
            let [field_token, op_token, value_token, tail @ ..] = rest else {
                return Err(error(format!(
                    "`{}` is not `FIELD OP VALUE`",
                    rest.join(" ")
                )));
            };
            let field = parse_field(field_token).map_err(error)?;
            let op = Op::parse(op_token).ok_or_else(|| {
                error(format!(
                    "`{op_token}` after `{field_token}` is not an operator (=, !=, <, <=, >, >=, \
                     LIKE, ILIKE)"
                ))
            })?;
            let value = Self::literal(&field, op, field_token, value_token).map_err(error)?;
            clauses.push(Clause { field, op, value });
            rest = match tail {
                [] => &[],
                [and, more @ ..] if and.eq_ignore_ascii_case("and") && !more.is_empty() => more,
                [other, ..] => {
                    return Err(error(format!(
                        "expected AND after `{field_token} {op_token} {value_token}`, found \
                         `{other}` (OR is not supported)"
                    )));
                }
            };
        }
        Ok(Self { clauses })
    }

    fn literal(field: &Field, op: Op, name: &str, token: &str) -> Result<Literal, String> {
        let literal = if let Some(text) = token.strip_prefix(['\'', '"']) {
            Literal::Text(text.to_owned())
        } else if token.eq_ignore_ascii_case("true") || token.eq_ignore_ascii_case("false") {
            Literal::Bool(token.eq_ignore_ascii_case("true"))
        } else {
            Literal::Number(token.parse().map_err(|_| {
                format!("`{token}` after `{name}` is not a number, true/false or a quoted string")
            })?)
        };
        if matches!(op, Op::Like | Op::ILike) && !matches!(literal, Literal::Text(_)) {
            return Err(format!("`{name} LIKE` needs a quoted pattern"));
        }
        match (field, &literal) {
            (Field::Column(Column::Status), Literal::Text(status)) => {
                let status = status.to_ascii_lowercase();
                if !matches!(status.as_str(), "ok" | "error" | "unset") || op.orders() {
                    return Err(format!(
                        "`status` compares with = or != to 'OK' or 'ERROR', not {op:?} '{status}'"
                    ));
                }
                Ok(Literal::Text(status))
            }
            (Field::Column(Column::Timestamp), Literal::Text(text)) => parse_time_ms(text)
                .map(|ms| Literal::Number(ms as f64))
                .ok_or_else(|| {
                    format!(
                        "`{name}`: '{text}' is not a date ('2026-12-01') or a date-time \
                         ('2026-12-01T09:30:00Z')"
                    )
                }),
            (Field::Column(column), Literal::Text(_)) if column.numeric() => {
                Err(format!("`{name}` compares with a number"))
            }
            (Field::Column(column), Literal::Number(_) | Literal::Bool(_)) if !column.numeric() => {
                Err(format!("`{name}` compares with a quoted string"))
            }
            _ => Ok(literal),
        }
    }

    /// Whether the filter has no clauses.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// The SQL condition over the `traces` table aliased `t` and its parameters.
    pub(crate) fn sql(&self) -> (String, Vec<SqlValue>) {
        let mut params = Vec::new();
        let conditions: Vec<String> = self
            .clauses
            .iter()
            .map(|clause| clause.condition(&mut params))
            .collect();
        if conditions.is_empty() {
            ("1".to_owned(), params)
        } else {
            (conditions.join(" AND "), params)
        }
    }
}

impl Clause {
    /// One condition; `?` placeholders are pushed onto `params` in order.
    fn condition(&self, params: &mut Vec<SqlValue>) -> String {
        let compare = |subject: &str, params: &mut Vec<SqlValue>| -> String {
            match (&self.op, &self.value) {
                (Op::Like, Literal::Text(pattern)) => {
                    params.push(SqlValue::Text(like_to_glob(pattern)));
                    format!("{subject} GLOB ?")
                }
                (Op::ILike, Literal::Text(pattern)) => {
                    params.push(SqlValue::Text(like_to_glob(&pattern.to_lowercase())));
                    format!("lower({subject}) GLOB ?")
                }
                (op, value) => {
                    params.push(value.sql());
                    format!("{subject} {} ?", op.sql())
                }
            }
        };
        match &self.field {
            Field::Column(Column::Status) => {
                let Literal::Text(status) = &self.value else {
                    return "0".into();
                };
                // OpenTelemetry leaves a successful span's status unset: OK means "not an error".
                let wanted_error = status == "error";
                let is_error = matches!(self.op, Op::Eq) == wanted_error;
                if status == "unset" {
                    let condition = if matches!(self.op, Op::Eq) { "=" } else { "!=" };
                    return format!("t.status {condition} 'unset'");
                }
                if is_error {
                    "t.status = 'error'".into()
                } else {
                    "t.status != 'error'".into()
                }
            }
            Field::Column(Column::Timestamp) => {
                // The column holds nanoseconds; the literal is milliseconds.
                let Literal::Number(ms) = self.value else {
                    return "0".into();
                };
                params.push(SqlValue::Integer((ms as i64).saturating_mul(1_000_000)));
                format!("t.start_time_unix_nano {} ?", self.op.sql())
            }
            Field::Column(column) => compare(column.sql(), params),
            Field::Attribute {
                key,
                root_only: true,
            } => {
                params.push(SqlValue::Text(json_path(key)));
                compare("json_extract(t.root_attributes, ?)", params)
            }
            Field::Attribute {
                key,
                root_only: false,
            } => {
                params.push(SqlValue::Text(json_path(key)));
                let condition = compare("json_extract(s.attributes, ?)", params);
                format!(
                    "EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id AND {condition})"
                )
            }
            Field::SpanName => {
                let condition = compare("s.name", params);
                format!(
                    "EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id AND {condition})"
                )
            }
            Field::Prompt(name) => {
                params.push(SqlValue::Text(name.clone()));
                let version = match &self.value {
                    // Versions are stored as strings; compare numbers as numbers.
                    Literal::Number(_) => "CAST(json_extract(p.value, '$.version') AS INTEGER)",
                    _ => "json_extract(p.value, '$.version')",
                };
                let condition = compare(version, params);
                format!(
                    "EXISTS (SELECT 1 FROM json_each(coalesce(t.prompts, '[]')) p \
                     WHERE json_extract(p.value, '$.name') = ? AND {condition})"
                )
            }
            Field::Assessment(name) => {
                params.push(SqlValue::Text(name.clone()));
                let condition = compare("a.value", params);
                // Only the newest assessment of that name counts: a changed mind replaces the old.
                // Driven from the assessments of that name (far fewer than traces), each checked
                // against its trace's newest through the (trace, name, seq) index.
                format!(
                    "t.trace_id IN (SELECT a.trace_id FROM assessments a WHERE a.name = ? \
                     AND {condition} AND a.seq = (SELECT MAX(b.seq) FROM assessments b \
                     WHERE b.trace_id = a.trace_id AND b.name = a.name))"
                )
            }
        }
    }
}

/// The JSON path of a top-level key that may contain dots: `$."gen_ai.request.model"`.
fn json_path(key: &str) -> String {
    format!("$.\"{key}\"")
}

/// What search results are ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceOrder {
    column: Column,
    descending: bool,
}

impl Default for TraceOrder {
    /// Newest first.
    fn default() -> Self {
        Self {
            column: Column::Timestamp,
            descending: true,
        }
    }
}

impl TraceOrder {
    /// Parses `FIELD [ASC|DESC]` where FIELD is `timestamp`, `duration_ms`, `tokens`, `cost` or
    /// `name`.
    pub fn parse(text: &str) -> Result<Self, TraceFilterError> {
        let error = |message: String| TraceFilterError {
            filter: text.to_owned(),
            message,
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let (field, descending) = match words.as_slice() {
            [field] => (*field, false),
            [field, dir] if dir.eq_ignore_ascii_case("asc") => (*field, false),
            [field, dir] if dir.eq_ignore_ascii_case("desc") => (*field, true),
            _ => return Err(error("order by `FIELD [ASC|DESC]`".into())),
        };
        let lower = field.to_ascii_lowercase();
        let column = Column::ALL
            .iter()
            .find(|(name, _)| *name == lower)
            .map(|(_, column)| *column)
            .filter(|column| column.numeric() || matches!(column, Column::Name | Column::TraceId))
            .ok_or_else(|| {
                error(format!(
                    "cannot order by `{field}`: use timestamp, duration_ms, tokens, \
                     input_tokens, output_tokens, cost, name or trace_id"
                ))
            })?;
        Ok(Self { column, descending })
    }

    /// The `ORDER BY` clause; traces without the value sort last, then newest first. Columns
    /// every trace has are ordered by themselves alone, so SQLite walks their index instead of
    /// sorting every trace.
    pub(crate) fn sql(&self) -> String {
        let column = self.column.sql();
        let direction = if self.descending { "DESC" } else { "ASC" };
        let always_set = matches!(
            self.column,
            Column::Timestamp | Column::DurationMs | Column::Name | Column::TraceId
        );
        if always_set {
            format!("{column} {direction}, t.trace_id {direction}")
        } else {
            format!(
                "{column} IS NULL, {column} {direction}, t.start_time_unix_nano DESC, t.trace_id"
            )
        }
    }
}

/// A search: a filter, an order, a page and the owner the caller may read.
#[derive(Debug, Clone, Default)]
pub struct TraceQuery {
    /// Which traces.
    pub filter: TraceFilter,
    /// In what order.
    pub order: TraceOrder,
    /// At most this many (0 means 100).
    pub limit: usize,
    /// From a previous answer's `next_page_token`.
    pub page_token: Option<String>,
    /// Only traces this owner may read (its own and its end users'); `None` reads every trace.
    pub owner: Option<String>,
}

impl TraceQuery {
    /// The rows to skip, from the page token.
    pub(crate) fn offset(&self) -> Result<usize, TraceFilterError> {
        match &self.page_token {
            None => Ok(0),
            Some(token) if token.is_empty() => Ok(0),
            Some(token) => token.parse().map_err(|_| TraceFilterError {
                filter: token.clone(),
                message: "is not a page token from a previous search".into(),
            }),
        }
    }

    /// The page size.
    pub(crate) fn page_size(&self) -> usize {
        if self.limit == 0 { 100 } else { self.limit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(filter: &str) -> String {
        TraceFilter::parse(filter).unwrap_err().to_string()
    }

    #[test]
    fn the_issue_example_parses_to_one_condition_per_clause() {
        let filter = TraceFilter::parse(
            "status = 'ERROR' and duration_ms > 2000 and attributes.gen_ai.request.model = \
             'llama3.2' and tags.env = 'prod' and timestamp > '2026-12-01' and \
             feedback.thumbs = false",
        )
        .unwrap();
        let (sql, params) = filter.sql();
        assert_eq!(sql.matches("EXISTS").count(), 1, "any span: {sql}");
        assert!(
            sql.contains("t.trace_id IN (SELECT a.trace_id FROM assessments"),
            "feedback: {sql}"
        );
        assert!(sql.starts_with("t.status = 'error'"), "{sql}");
        assert!(params.contains(&SqlValue::Text("$.\"gen_ai.request.model\"".into())));
        assert!(params.contains(&SqlValue::Text("$.\"mlflow.traceTag.env\"".into())));
        // 2026-12-01T00:00:00Z in nanoseconds.
        assert!(params.contains(&SqlValue::Integer(1_796_083_200_000 * 1_000_000)));
        assert!(params.contains(&SqlValue::Integer(0)), "false is 0");
    }

    #[test]
    fn errors_name_the_clause_and_the_fix() {
        assert!(error_of("duraton_ms > 5").contains("`duraton_ms` is not a trace field"));
        assert!(error_of("duration_ms > 'long'").contains("compares with a number"));
        assert!(error_of("status = 'broken'").contains("'OK' or 'ERROR'"));
        assert!(error_of("timestamp > 'yesterday'").contains("not a date"));
        assert!(error_of("agent = 'a' or agent = 'b'").contains("OR is not supported"));
        assert!(error_of("agent ~ 'a'").contains("is not an operator"));
        assert!(error_of("agent = 'a").contains("unclosed"));
        assert!(error_of("tokens >").contains("is not `FIELD OP VALUE`"));
        assert!(error_of("agent LIKE 3").contains("quoted pattern"));
        assert!(error_of("attributes.`a\"b` = 'x'").contains("cannot contain"));
        assert!(TraceOrder::parse("session DESC").is_err());
        assert!(TraceOrder::parse("cost sideways").is_err());
    }

    #[test]
    fn like_patterns_become_case_sensitive_globs_with_globs_escaped() {
        assert_eq!(like_to_glob("gpt-4%"), "gpt-4*");
        assert_eq!(like_to_glob("a_c"), "a?c");
        assert_eq!(like_to_glob("what?*[x]"), "what[?][*][[]x]");
    }

    #[test]
    fn dates_and_times_are_utc_milliseconds() {
        assert_eq!(parse_time_ms("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_time_ms("1970-01-01T00:00:01Z"), Some(1_000));
        assert_eq!(parse_time_ms("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_time_ms("1970-01-01 00:01"), Some(60_000));
        assert_eq!(parse_time_ms("soon"), None);
    }
}

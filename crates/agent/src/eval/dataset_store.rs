//! Evaluation datasets built from traces and kept in versions: `sextant datasets create NAME
//! --from-traces FILTER` turns the turns a trace search finds into rows (the question from the
//! turn, expectations from its feedback or its own answer, each row linked to its trace), and
//! stores them as the next version of NAME under the data directory, with a digest. `sextant eval
//! --dataset datasets:/NAME` (the newest version) or `datasets:/NAME/2` runs it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sextant_tracker::tracking::Assessment;
use sextant_tracker::{LocalTraceStore, StoredSpan, TraceQuery};

use super::dataset::{Dataset, DatasetError, EvalRow, Expectations};
use crate::turn_store::TurnStore;

/// The URI scheme of a stored dataset: `datasets:/NAME` or `datasets:/NAME/VERSION`.
pub const SCHEME: &str = "datasets:/";

/// Why a dataset could not be built, stored or found.
#[derive(Debug, thiserror::Error)]
pub enum DatasetStoreError {
    /// A name or URI that is not one.
    #[error("{0}")]
    Invalid(String),
    /// No such dataset or version.
    #[error("{0}")]
    NotFound(String),
    /// The search or a trace could not be read.
    #[error("reading traces: {0}")]
    Traces(#[from] sextant_tracker::TraceStoreError),
    /// The rows are not a valid dataset.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// Where a row's expected response comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedFrom {
    /// No expectation: inputs only (for judges that need none, or to label later).
    Nothing,
    /// The turn's own answer (for traces a filter like `feedback.thumbs = true` picked).
    Answer,
    /// The newest label of assessment NAME (a reviewer's correction).
    Assessment(String),
}

impl ExpectedFrom {
    /// `none`, `answer` or `assessment:NAME`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "" | "none" => Ok(Self::Nothing),
            "answer" => Ok(Self::Answer),
            other => match other.strip_prefix("assessment:") {
                Some(name) if !name.trim().is_empty() => Ok(Self::Assessment(name.trim().into())),
                _ => Err(format!(
                    "`{other}` is not none, answer or assessment:NAME (e.g. assessment:correction)"
                )),
            },
        }
    }
}

/// What a stored version is: its rows' file and where they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetVersion {
    /// The dataset's name.
    pub name: String,
    /// 1, 2, …
    pub version: u32,
    /// The rows' digest (as [`Dataset::digest`]).
    pub digest: String,
    /// How many rows.
    pub rows: usize,
    /// The trace filter the rows came from.
    pub filter: String,
    /// Where expected responses came from (`none`, `answer`, `assessment:NAME`).
    pub expected_from: String,
    /// When it was made, ms since the epoch.
    pub created_ms: i64,
}

/// The versioned datasets under `DATA_DIR/datasets`.
#[derive(Debug, Clone)]
pub struct DatasetStore {
    dir: PathBuf,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.')
}

impl DatasetStore {
    /// The store in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("datasets"),
        }
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetStoreError + '_ {
        move |source| DatasetStoreError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The versions of `name`, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<DatasetVersion>, DatasetStoreError> {
        let dir = self.dir.join(name);
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut versions = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(Self::io(&dir))? {
            let path = entry.map_err(Self::io(&dir))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).map_err(Self::io(&path))?;
                let version: DatasetVersion = serde_json::from_str(&text)
                    .map_err(|e| DatasetStoreError::Invalid(format!("{}: {e}", path.display())))?;
                versions.push(version);
            }
        }
        versions.sort_by_key(|v| v.version);
        Ok(versions)
    }

    /// Every dataset's newest version.
    pub fn list(&self) -> Result<Vec<DatasetVersion>, DatasetStoreError> {
        if !self.dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut latest = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(Self::io(&self.dir))? {
            let entry = entry.map_err(Self::io(&self.dir))?;
            if let Some(name) = entry.file_name().to_str()
                && valid_name(name)
                && let Some(version) = self.versions(name)?.pop()
            {
                latest.push(version);
            }
        }
        latest.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(latest)
    }

    /// Stores `dataset`'s rows as the next version of `name`; an unchanged digest is not a new
    /// version (the newest one is returned).
    pub fn save(
        &self,
        name: &str,
        dataset: &Dataset,
        filter: &str,
        expected_from: &str,
    ) -> Result<DatasetVersion, DatasetStoreError> {
        if !valid_name(name) {
            return Err(DatasetStoreError::Invalid(format!(
                "`{name}` is not a dataset name: use letters, digits, `-`, `_` and `.`"
            )));
        }
        let existing = self.versions(name)?;
        if let Some(newest) = existing.last()
            && newest.digest == dataset.digest
        {
            return Ok(newest.clone());
        }
        let version = existing.last().map_or(1, |v| v.version + 1);
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).map_err(Self::io(&dir))?;
        let rows_path = dir.join(format!("v{version}.jsonl"));
        let mut text = String::new();
        for row in &dataset.rows {
            text.push_str(&serde_json::to_string(row).expect("rows serialize"));
            text.push('\n');
        }
        write_new(&rows_path, text.as_bytes())?;
        let meta = DatasetVersion {
            name: name.to_owned(),
            version,
            digest: dataset.digest.clone(),
            rows: dataset.rows.len(),
            filter: filter.to_owned(),
            expected_from: expected_from.to_owned(),
            created_ms: jiff::Timestamp::now().as_millisecond(),
        };
        // The metadata is written last: a version without it was never finished.
        let meta_path = dir.join(format!("v{version}.json"));
        write_new(
            &meta_path,
            serde_json::to_string_pretty(&meta)
                .expect("metadata serializes")
                .as_bytes(),
        )?;
        Ok(meta)
    }

    /// The dataset `datasets:/NAME` (newest version) or `datasets:/NAME/VERSION` names.
    pub fn load(&self, uri: &str) -> Result<(Dataset, DatasetVersion), DatasetStoreError> {
        let path = uri.strip_prefix(SCHEME).ok_or_else(|| {
            DatasetStoreError::Invalid(format!("`{uri}` is not a datasets:/NAME URI"))
        })?;
        let (name, version) = match path.split_once('/') {
            Some((name, version)) => (
                name,
                Some(version.parse::<u32>().map_err(|_| {
                    DatasetStoreError::Invalid(format!(
                        "`{uri}`: `{version}` is not a version number"
                    ))
                })?),
            ),
            None => (path, None),
        };
        if !valid_name(name) {
            return Err(DatasetStoreError::Invalid(format!(
                "`{uri}`: `{name}` is not a dataset name"
            )));
        }
        let versions = self.versions(name)?;
        let chosen = match version {
            Some(wanted) => versions.into_iter().find(|v| v.version == wanted),
            None => versions.into_iter().last(),
        }
        .ok_or_else(|| {
            DatasetStoreError::NotFound(format!(
                "no dataset {uri} in {} (make one with `sextant datasets create {name} \
                 --from-traces FILTER`)",
                self.dir.display()
            ))
        })?;
        let rows_path = self
            .dir
            .join(name)
            .join(format!("v{}.jsonl", chosen.version));
        let mut dataset = Dataset::load(&rows_path)?;
        dataset.name = name.to_owned();
        Ok((dataset, chosen))
    }
}

/// Writes `bytes` to a new file `path` through a temporary file, so a crash leaves either the
/// whole file or none.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), DatasetStoreError> {
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, bytes).map_err(DatasetStore::io(&temporary))?;
    std::fs::rename(&temporary, path).map_err(DatasetStore::io(path))
}

/// The question and answer of a turn from its agent span: captured content, else the turn store.
async fn question_and_answer(
    spans: &[StoredSpan],
    turns: Option<&dyn TurnStore>,
) -> (Option<String>, Option<String>) {
    use sextant_tracker::conventions as sc;
    let agent = spans.iter().find(|span| {
        span.attribute_str(sc::GEN_AI_OPERATION_NAME) == Some(sc::operation::INVOKE_AGENT)
    });
    let Some(agent) = agent else {
        return (None, None);
    };
    let text_of = |key: &str, role: &str| {
        let messages: Vec<Value> = serde_json::from_str(agent.attribute_str(key)?).ok()?;
        messages
            .iter()
            .rev()
            .find(|m| m["role"] == role)?
            .get("parts")?
            .as_array()?
            .iter()
            .find_map(|part| part["content"].as_str().map(str::to_owned))
    };
    let mut question = text_of(sc::GEN_AI_INPUT_MESSAGES, "user");
    let mut answer = text_of(sc::GEN_AI_OUTPUT_MESSAGES, "assistant");
    if (question.is_none() || answer.is_none())
        && let (Some(turns), Some(turn_id)) = (turns, agent.attribute_str(sc::SEXTANT_TURN_ID))
        && let Ok(state) = turns.load(turn_id).await
    {
        question = question.or(Some(state.question));
        answer = answer.or(state.answer);
    }
    (question, answer)
}

/// The newest label (string value) of assessment `name` among `assessments`.
fn newest_label(assessments: &[Assessment], name: &str) -> Option<String> {
    assessments
        .iter()
        .rev()
        .filter(|a| a.name == name)
        .find_map(|a| a.value.as_ref()?.as_str().map(str::to_owned))
}

/// The rows (at most `max_rows`) the traces matching `query` make, in its order: one per trace
/// with a question (from captured content or the turn store), the expected response from
/// `expected`, and the trace it came from (`source_trace`). Traces without a question, or without
/// the expectation asked for, are skipped and counted.
pub async fn rows_from_traces(
    traces: &LocalTraceStore,
    turns: Option<&dyn TurnStore>,
    query: &TraceQuery,
    expected: &ExpectedFrom,
    max_rows: usize,
) -> Result<(Vec<EvalRow>, usize), DatasetStoreError> {
    let mut rows = Vec::new();
    let mut skipped = 0;
    let mut query = query.clone();
    loop {
        let page = traces.search(&query)?;
        for summary in &page.traces {
            if rows.len() >= max_rows {
                return Ok((rows, skipped));
            }
            let spans = traces.spans(&summary.trace_id)?;
            let (question, answer) = question_and_answer(&spans, turns).await;
            let Some(question) = question.filter(|q| !q.trim().is_empty()) else {
                skipped += 1;
                continue;
            };
            let expected_response = match expected {
                ExpectedFrom::Nothing => None,
                ExpectedFrom::Answer => match answer.filter(|a| !a.trim().is_empty()) {
                    Some(answer) => Some(answer),
                    None => {
                        skipped += 1;
                        continue;
                    }
                },
                ExpectedFrom::Assessment(name) => {
                    match newest_label(&traces.assessments(&summary.trace_id)?, name) {
                        Some(label) => Some(label),
                        None => {
                            skipped += 1;
                            continue;
                        }
                    }
                }
            };
            let inputs: Map<String, Value> = [("question".to_owned(), json!(question))]
                .into_iter()
                .collect();
            rows.push(EvalRow {
                inputs,
                expectations: Expectations {
                    expected_response,
                    ..Expectations::default()
                },
                source_trace: Some(summary.trace_id.clone()),
            });
        }
        match page.next_page_token {
            Some(token) => query.page_token = Some(token),
            None => break,
        }
    }
    Ok((rows, skipped))
}

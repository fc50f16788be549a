//! Evaluation datasets: rows of `{inputs, expectations}` in JSONL, CSV or YAML, validated on load
//! (errors name the file, the row and the field), with a digest that says exactly which data a
//! run used.
//!
//! ```text
//! {"inputs": {"question": "What is MLflow?"}, "expectations": {"expected_response": "An MLOps platform.", "guidelines": ["Answer in English."]}}
//! ```
//!
//! `expectations` may hold `expected_response` (text), `expected_facts` (a list of facts the
//! answer must state) and `guidelines` (a list of rules); all are optional. In CSV, the columns
//! are `inputs.NAME` (or a bare `question`), `expected_response`, `expected_facts` and
//! `guidelines`, lists as JSON arrays or separated by `|`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Why a dataset could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be read.
    #[error("cannot read the dataset {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The file's extension names no format this reads.
    #[error("{path}: unknown dataset format; use .jsonl, .json, .csv, .yaml or .yml")]
    Format {
        /// The file.
        path: PathBuf,
    },
    /// A row is not valid.
    #[error("{path}, row {row}: {message}")]
    Row {
        /// The file.
        path: PathBuf,
        /// The row, counted from 1 (JSONL: the line; CSV: the record after the header).
        row: usize,
        /// What is wrong.
        message: String,
    },
    /// The file has no rows.
    #[error("{path}: the dataset has no rows")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// What a row expects of the answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// The answer a correct response matches in meaning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_response: Option<String>,
    /// Facts a correct response states.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_facts: Vec<String>,
    /// Rules the response follows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guidelines: Vec<String>,
}

/// One row: what the agent is asked and what is expected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalRow {
    /// The agent's inputs; `question` (or `query`, `input`, or a single string) is what it is asked.
    pub inputs: Map<String, Value>,
    /// What is expected.
    #[serde(default)]
    pub expectations: Expectations,
    /// The trace the row was made from, for a dataset built from traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_trace: Option<String>,
}

impl EvalRow {
    /// The question the agent is asked: `inputs.question`, `query`, `input` or `prompt`, or the
    /// only string input.
    pub fn question(&self) -> Option<&str> {
        for key in ["question", "query", "input", "prompt"] {
            if let Some(Value::String(text)) = self.inputs.get(key) {
                return Some(text);
            }
        }
        let mut strings = self.inputs.values().filter_map(Value::as_str);
        match (strings.next(), strings.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    fn validate(&self) -> Result<(), String> {
        match self.question() {
            Some(q) if !q.trim().is_empty() => {}
            Some(_) => return Err("the question is empty".into()),
            None => {
                return Err(format!(
                    "`inputs` names no question: give `inputs.question` (has: {})",
                    self.inputs.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let e = &self.expectations;
        if e.expected_response
            .as_deref()
            .is_some_and(|r| r.trim().is_empty())
        {
            return Err("`expectations.expected_response` is empty".into());
        }
        for (what, list) in [
            ("expected_facts", &e.expected_facts),
            ("guidelines", &e.guidelines),
        ] {
            if list.iter().any(|item| item.trim().is_empty()) {
                return Err(format!("`expectations.{what}` has an empty entry"));
            }
        }
        Ok(())
    }
}

/// A loaded dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dataset {
    /// The file's stem (`qa` for `qa.jsonl`).
    pub name: String,
    /// Where it was read from.
    pub source: PathBuf,
    /// The rows, in file order.
    pub rows: Vec<EvalRow>,
    /// The first 16 hex digits of the SHA-256 of the rows as canonical JSON: equal rows, equal
    /// digest, whatever the file format or formatting.
    pub digest: String,
}

impl Dataset {
    /// The dataset as a run's input: name, digest, the file it came from, its row count, used
    /// for `evaluation` — what [`ActiveRun::log_dataset`](sextant_tracker::tracking::ActiveRun::log_dataset) records.
    pub fn tracking_input(&self) -> sextant_tracker::tracking::DatasetInput {
        sextant_tracker::tracking::DatasetInput {
            profile: Some(serde_json::json!({ "num_rows": self.rows.len() }).to_string()),
            context: Some("evaluation".into()),
            ..sextant_tracker::tracking::DatasetInput::local_file(
                &self.name,
                &self.digest,
                &self.source,
            )
        }
    }

    /// Reads and validates `path` (`.jsonl`, `.json`, `.csv`, `.yaml`, `.yml`).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DatasetError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| DatasetError::Read {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let rows = match extension.as_str() {
            "jsonl" | "ndjson" => parse_jsonl(path, &text)?,
            "json" => parse_list(
                path,
                serde_json::from_str::<Vec<Value>>(&text).map_err(|e| DatasetError::Row {
                    path: path.to_owned(),
                    row: e.line(),
                    message: format!("not a JSON list of rows: {e}"),
                })?,
            )?,
            "yaml" | "yml" => {
                let values: Vec<Value> =
                    serde_norway::from_str(&text).map_err(|e| DatasetError::Row {
                        path: path.to_owned(),
                        row: e.location().map_or(0, |l| l.line()),
                        message: format!("not a YAML list of rows: {e}"),
                    })?;
                parse_list(path, values)?
            }
            "csv" => parse_csv(path, &text)?,
            _ => {
                return Err(DatasetError::Format {
                    path: path.to_owned(),
                });
            }
        };
        Self::from_rows(path, rows)
    }

    /// A dataset of `rows` (validated), named after `source`.
    pub fn from_rows(source: &Path, rows: Vec<EvalRow>) -> Result<Self, DatasetError> {
        if rows.is_empty() {
            return Err(DatasetError::Empty {
                path: source.to_owned(),
            });
        }
        for (index, row) in rows.iter().enumerate() {
            row.validate().map_err(|message| DatasetError::Row {
                path: source.to_owned(),
                row: index + 1,
                message,
            })?;
        }
        let canonical = serde_json::to_vec(&rows).expect("rows serialize");
        let digest = hex::encode(Sha256::digest(&canonical))[..16].to_owned();
        Ok(Self {
            name: source
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("dataset")
                .to_owned(),
            source: source.to_owned(),
            rows,
            digest,
        })
    }
}

fn row_from_value(path: &Path, row: usize, value: Value) -> Result<EvalRow, DatasetError> {
    let error = |message: String| DatasetError::Row {
        path: path.to_owned(),
        row,
        message,
    };
    if !value.is_object() {
        return Err(error(format!(
            "a row is an object with `inputs` (and `expectations`), not {value}"
        )));
    }
    serde_json::from_value(value).map_err(|e| error(e.to_string()))
}

fn parse_jsonl(path: &Path, text: &str) -> Result<Vec<EvalRow>, DatasetError> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| DatasetError::Row {
            path: path.to_owned(),
            row: index + 1,
            message: format!("not JSON: {e}"),
        })?;
        rows.push(row_from_value(path, index + 1, value)?);
    }
    Ok(rows)
}

fn parse_list(path: &Path, values: Vec<Value>) -> Result<Vec<EvalRow>, DatasetError> {
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| row_from_value(path, index + 1, value))
        .collect()
}

/// A list cell: a JSON array, or `|`-separated text.
fn list_cell(cell: &str) -> Result<Vec<String>, String> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(Vec::new());
    }
    if cell.starts_with('[') {
        return serde_json::from_str(cell).map_err(|e| format!("not a JSON list of strings: {e}"));
    }
    Ok(cell.split('|').map(|s| s.trim().to_owned()).collect())
}

fn parse_csv(path: &Path, text: &str) -> Result<Vec<EvalRow>, DatasetError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| DatasetError::Row {
            path: path.to_owned(),
            row: 0,
            message: format!("bad header: {e}"),
        })?
        .clone();
    for header in &headers {
        let known = header.starts_with("inputs.")
            || matches!(
                header,
                "question" | "expected_response" | "expected_facts" | "guidelines"
            );
        if !known {
            return Err(DatasetError::Row {
                path: path.to_owned(),
                row: 0,
                message: format!(
                    "unknown column `{header}`; use inputs.NAME (or question), expected_response, expected_facts, guidelines"
                ),
            });
        }
    }
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let row = index + 1;
        let error = |message: String| DatasetError::Row {
            path: path.to_owned(),
            row,
            message,
        };
        let record = record.map_err(|e| error(e.to_string()))?;
        let mut inputs = Map::new();
        let mut expectations = Expectations::default();
        for (header, cell) in headers.iter().zip(record.iter()) {
            match header {
                "question" => {
                    inputs.insert("question".into(), Value::String(cell.to_owned()));
                }
                "expected_response" => {
                    expectations.expected_response = (!cell.is_empty()).then(|| cell.to_owned());
                }
                "expected_facts" => {
                    expectations.expected_facts =
                        list_cell(cell).map_err(|m| error(format!("expected_facts: {m}")))?;
                }
                "guidelines" => {
                    expectations.guidelines =
                        list_cell(cell).map_err(|m| error(format!("guidelines: {m}")))?;
                }
                name => {
                    let key = name.trim_start_matches("inputs.");
                    inputs.insert(key.to_owned(), Value::String(cell.to_owned()));
                }
            }
        }
        rows.push(EvalRow {
            inputs,
            expectations,
            source_trace: None,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_same_rows_in_three_formats_load_alike_with_one_digest() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = write(
            dir.path(),
            "qa.jsonl",
            concat!(
                r#"{"inputs": {"question": "What is Rust?"}, "expectations": {"expected_response": "A language.", "guidelines": ["Answer in English."]}}"#,
                "\n\n",
                r#"{"inputs": {"question": "2+2?"}, "expectations": {"expected_facts": ["4", "even"]}}"#,
                "\n",
            ),
        );
        let csv = write(
            dir.path(),
            "qa.csv",
            "question,expected_response,expected_facts,guidelines\n\
            What is Rust?,A language.,,Answer in English.\n\
            2+2?,,4|even,\n",
        );
        let yaml = write(
            dir.path(),
            "qa.yaml",
            "- inputs: {question: What is Rust?}\n  expectations:\n    expected_response: A language.\n    guidelines: [Answer in English.]\n\
            - inputs: {question: \"2+2?\"}\n  expectations: {expected_facts: [\"4\", even]}\n",
        );
        let loaded: Vec<Dataset> = [jsonl, csv, yaml]
            .iter()
            .map(|p| Dataset::load(p).unwrap())
            .collect();
        assert_eq!(loaded[0].rows.len(), 2);
        assert_eq!(loaded[0].rows[1].expectations.expected_facts, ["4", "even"]);
        assert_eq!(loaded[0].rows[0].question(), Some("What is Rust?"));
        assert!(
            loaded
                .iter()
                .all(|d| d.rows == loaded[0].rows && d.digest == loaded[0].digest)
        );
        assert_eq!(loaded[0].digest.len(), 16);
        assert_eq!(loaded[0].name, "qa");
        // A changed expectation is another dataset.
        let other = write(
            dir.path(),
            "b.jsonl",
            r#"{"inputs": {"question": "What is Rust?"}}"#,
        );
        assert_ne!(Dataset::load(other).unwrap().digest, loaded[0].digest);
    }

    #[test]
    fn bad_rows_are_named_by_file_row_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "a.jsonl",
                "{\"inputs\": {\"question\": \"ok\"}}\n{\"inputs\": {\"question\": \"x\"}, \"expectations\": {\"expected_answer\": \"y\"}}\n",
                "row 2",
                "expected_answer",
            ),
            (
                "b.jsonl",
                "{\"inputs\": {\"question\": \"ok\"}}\n\n{not json\n",
                "row 3",
                "not JSON",
            ),
            (
                "c.jsonl",
                "{\"inputs\": {\"a\": 1, \"b\": 2}}\n",
                "row 1",
                "names no question",
            ),
            (
                "d.jsonl",
                "{\"question\": \"flat\"}\n",
                "row 1",
                "unknown field `question`",
            ),
            (
                "e.jsonl",
                "{\"inputs\": {\"question\": \"  \"}}\n",
                "row 1",
                "empty",
            ),
            (
                "f.csv",
                "question,answer\nq,a\n",
                "row 0",
                "unknown column `answer`",
            ),
            (
                "g.csv",
                "question,guidelines\nq,\"[1, 2\"\n",
                "row 1",
                "guidelines",
            ),
            ("h.jsonl", "\n", "", "no rows"),
            ("i.txt", "x", "", "unknown dataset format"),
            (
                "j.yaml",
                "- inputs: {question: ok}\n- inputs: [1]\n",
                "row 2",
                "invalid type",
            ),
        ];
        for (name, text, row, needle) in cases {
            let path = write(dir.path(), name, text);
            let message = Dataset::load(&path).unwrap_err().to_string();
            assert!(message.contains(name), "{name}: {message}");
            assert!(
                message.contains(row) && message.contains(needle),
                "{name}: {message}"
            );
        }
    }
}

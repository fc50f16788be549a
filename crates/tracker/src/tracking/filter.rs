//! MLflow's run search syntax, for the backends that evaluate it themselves:
//! `params.model = 'x' and metrics.latency_ms < 900 and tags.`team` LIKE 'a%'`, and order-by
//! clauses such as `metrics.latency_ms DESC`.

use std::cmp::Ordering;

use super::{Run, TrackingError};

/// A parsed filter: clauses joined by `AND` (MLflow has no `OR`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunFilter {
    clauses: Vec<Clause>,
}

#[derive(Debug, Clone, PartialEq)]
struct Clause {
    field: Field,
    op: Op,
    value: Literal,
}

/// What a clause or an order-by names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Metric(String),
    Param(String),
    Tag(String),
    /// `run_id`, `run_name`, `status`, `start_time`, `end_time`, `artifact_uri`.
    Attribute(String),
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

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Text(String),
    Number(f64),
}

const ATTRIBUTES: [&str; 6] = [
    "run_id",
    "run_name",
    "status",
    "start_time",
    "end_time",
    "artifact_uri",
];

fn invalid(filter: &str, message: impl Into<String>) -> TrackingError {
    TrackingError::Invalid {
        what: format!("run filter `{filter}`"),
        message: message.into(),
    }
}

/// Splits `text` into tokens: a quoted string keeps its quote character first; a word may hold
/// backtick-quoted parts (``tags.`team a` ``).
pub(crate) fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = text.chars().collect();
    let closing = |from: usize, quote: char| {
        chars[from..]
            .iter()
            .position(|&c| c == quote)
            .map(|at| from + at)
            .ok_or_else(|| format!("unclosed {quote}"))
    };
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let end = closing(i + 1, c)?;
            tokens.push(format!(
                "{c}{}",
                chars[i + 1..end].iter().collect::<String>()
            ));
            i = end + 1;
        } else if "=!<>".contains(c) {
            let mut op = String::from(c);
            if chars.get(i + 1) == Some(&'=') {
                op.push('=');
                i += 1;
            }
            i += 1;
            tokens.push(op);
        } else {
            let mut word = String::new();
            while i < chars.len() && !chars[i].is_whitespace() && !"=!<>'\"".contains(chars[i]) {
                if chars[i] == '`' {
                    let end = closing(i + 1, '`')?;
                    word.extend(&chars[i..=end]);
                    i = end + 1;
                } else {
                    word.push(chars[i]);
                    i += 1;
                }
            }
            tokens.push(word);
        }
    }
    Ok(tokens)
}

fn parse_field(token: &str) -> Result<Field, String> {
    let (prefix, name) = match token.split_once('.') {
        Some((prefix, name)) => (prefix.to_ascii_lowercase(), name),
        None => ("attributes".to_owned(), token),
    };
    let name = name
        .strip_prefix('`')
        .unwrap_or(name)
        .trim_end_matches('`')
        .to_owned();
    if name.is_empty() {
        return Err(format!("`{token}` names nothing"));
    }
    Ok(match prefix.as_str() {
        "metrics" | "metric" => Field::Metric(name),
        "params" | "param" | "parameters" | "parameter" => Field::Param(name),
        "tags" | "tag" => Field::Tag(name),
        "attributes" | "attribute" | "attr" | "run" => {
            let name = name.to_ascii_lowercase();
            if !ATTRIBUTES.contains(&name.as_str()) {
                return Err(format!(
                    "`{token}` is not a run attribute (one of {})",
                    ATTRIBUTES.join(", ")
                ));
            }
            Field::Attribute(name)
        }
        other => {
            return Err(format!(
                "`{other}.` is not metrics., params., tags. or attributes."
            ));
        }
    })
}

impl RunFilter {
    /// Parses `filter` (empty = every run). Errors say what is wrong and where.
    pub fn parse(filter: &str) -> Result<Self, TrackingError> {
        let tokens = tokenize(filter).map_err(|m| invalid(filter, m))?;
        let mut clauses = Vec::new();
        let mut rest = tokens.as_slice();
        while !rest.is_empty() {
            let [field, op, value, tail @ ..] = rest else {
                return Err(invalid(
                    filter,
                    format!("`{}` is not `KEY OP VALUE`", rest.join(" ")),
                ));
            };
            let field = parse_field(field).map_err(|m| invalid(filter, m))?;
            let op = match op.to_ascii_uppercase().as_str() {
                "=" | "==" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                "LIKE" => Op::Like,
                "ILIKE" => Op::ILike,
                other => return Err(invalid(filter, format!("`{other}` is not an operator"))),
            };
            let value = if let Some(text) = value.strip_prefix(['\'', '"']) {
                Literal::Text(text.to_owned())
            } else {
                Literal::Number(value.parse().map_err(|_| {
                    invalid(
                        filter,
                        format!("`{value}` is neither a number nor a quoted string"),
                    )
                })?)
            };
            let numeric_field = matches!(&field, Field::Metric(_))
                || matches!(&field, Field::Attribute(a) if a.ends_with("_time"));
            match (&value, numeric_field, op) {
                (Literal::Number(_), false, _) => {
                    return Err(invalid(
                        filter,
                        "params, tags and names compare with quoted strings",
                    ));
                }
                (Literal::Text(_), true, _) => {
                    return Err(invalid(filter, "metrics and times compare with numbers"));
                }
                (_, false, Op::Lt | Op::Le | Op::Gt | Op::Ge) => {
                    return Err(invalid(filter, "strings compare with =, !=, LIKE or ILIKE"));
                }
                (_, true, Op::Like | Op::ILike) => {
                    return Err(invalid(filter, "LIKE and ILIKE are for strings"));
                }
                _ => {}
            }
            clauses.push(Clause { field, op, value });
            rest = match tail {
                [] => &[],
                [and, more @ ..] if and.eq_ignore_ascii_case("and") && !more.is_empty() => more,
                [other, ..] => {
                    return Err(invalid(
                        filter,
                        format!(
                            "expected AND between clauses, found `{other}` (OR is not supported)"
                        ),
                    ));
                }
            };
        }
        Ok(Self { clauses })
    }

    /// Whether `run` passes every clause.
    pub fn matches(&self, run: &Run) -> bool {
        self.clauses.iter().all(|clause| clause.matches(run))
    }
}

fn text_of(run: &Run, field: &Field) -> Option<String> {
    match field {
        Field::Param(name) => run.params.get(name).cloned(),
        Field::Tag(name) => run.tags.get(name).cloned(),
        Field::Attribute(name) => match name.as_str() {
            "run_id" => Some(run.info.run_id.clone()),
            "run_name" => Some(run.info.run_name.clone()),
            "status" => Some(run.info.status.as_str().to_owned()),
            "artifact_uri" => Some(run.info.artifact_uri.clone()),
            _ => None,
        },
        Field::Metric(_) => None,
    }
}

fn number_of(run: &Run, field: &Field) -> Option<f64> {
    match field {
        Field::Metric(name) => run.metrics.get(name).map(|m| m.value),
        Field::Attribute(name) if name == "start_time" => Some(run.info.start_time_ms as f64),
        Field::Attribute(name) if name == "end_time" => run.info.end_time_ms.map(|t| t as f64),
        _ => None,
    }
}

impl Clause {
    fn matches(&self, run: &Run) -> bool {
        match &self.value {
            Literal::Number(wanted) => {
                let Some(actual) = number_of(run, &self.field) else {
                    return false;
                };
                match self.op {
                    Op::Eq => actual == *wanted,
                    Op::Ne => actual != *wanted,
                    Op::Lt => actual < *wanted,
                    Op::Le => actual <= *wanted,
                    Op::Gt => actual > *wanted,
                    Op::Ge => actual >= *wanted,
                    Op::Like | Op::ILike => false,
                }
            }
            Literal::Text(wanted) => {
                let Some(actual) = text_of(run, &self.field) else {
                    return false;
                };
                match self.op {
                    Op::Eq => &actual == wanted,
                    Op::Ne => &actual != wanted,
                    Op::Like => like(&actual, wanted),
                    Op::ILike => like(&actual.to_lowercase(), &wanted.to_lowercase()),
                    _ => false,
                }
            }
        }
    }
}

/// SQL LIKE: `%` any run of characters, `_` one character.
fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    // reachable[j]: text[..i] matches pattern[..j].
    let mut reachable = vec![false; pattern.len() + 1];
    reachable[0] = true;
    for j in 1..=pattern.len() {
        reachable[j] = reachable[j - 1] && pattern[j - 1] == '%';
    }
    for c in text {
        let mut next = vec![false; pattern.len() + 1];
        for j in 1..=pattern.len() {
            next[j] = match pattern[j - 1] {
                '%' => next[j - 1] || reachable[j],
                '_' => reachable[j - 1],
                p => reachable[j - 1] && p == c,
            };
        }
        reachable = next;
    }
    reachable[pattern.len()]
}

/// One `ORDER BY` term: `metrics.latency_ms DESC`, `params.model`, `attributes.start_time ASC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    field: Field,
    descending: bool,
}

impl OrderBy {
    /// Parses one term.
    pub fn parse(term: &str) -> Result<Self, TrackingError> {
        let error = |m: String| TrackingError::Invalid {
            what: format!("order by `{term}`"),
            message: m,
        };
        let words: Vec<&str> = term.split_whitespace().collect();
        let (field, descending) = match words.as_slice() {
            [field] => (*field, false),
            [field, dir] if dir.eq_ignore_ascii_case("asc") => (*field, false),
            [field, dir] if dir.eq_ignore_ascii_case("desc") => (*field, true),
            _ => return Err(error("write `KEY [ASC|DESC]`".into())),
        };
        Ok(Self {
            field: parse_field(field).map_err(error)?,
            descending,
        })
    }

    /// Sorts `runs` by `terms`, then newest first (MLflow's default), then by id.
    pub fn sort(runs: &mut [Run], terms: &[OrderBy]) {
        runs.sort_by(|a, b| {
            for term in terms {
                let ordering = term.compare(a, b);
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
            b.info
                .start_time_ms
                .cmp(&a.info.start_time_ms)
                .then_with(|| a.info.run_id.cmp(&b.info.run_id))
        });
    }

    fn compare(&self, a: &Run, b: &Run) -> Ordering {
        // Runs without the value sort last either way, as MLflow does.
        let ordering = match (
            &self.field,
            number_of(a, &self.field),
            number_of(b, &self.field),
        ) {
            (Field::Metric(_), x, y)
            | (Field::Attribute(_), x @ Some(_), y)
            | (Field::Attribute(_), x, y @ Some(_)) => match (x, y) {
                (Some(x), Some(y)) => {
                    let o = x.partial_cmp(&y).unwrap_or(Ordering::Equal);
                    return if self.descending { o.reverse() } else { o };
                }
                (Some(_), None) => return Ordering::Less,
                (None, Some(_)) => return Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
            _ => match (text_of(a, &self.field), text_of(b, &self.field)) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => return Ordering::Less,
                (None, Some(_)) => return Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
        };
        if self.descending {
            ordering.reverse()
        } else {
            ordering
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracking::{Metric, RunInfo, RunStatus};

    fn run(id: &str, start: i64, model: &str, latency: Option<f64>) -> Run {
        Run {
            info: RunInfo {
                run_id: id.into(),
                experiment_id: "0".into(),
                run_name: format!("run-{id}"),
                status: RunStatus::Finished,
                start_time_ms: start,
                end_time_ms: Some(start + 10),
                artifact_uri: String::new(),
            },
            params: [("model".to_owned(), model.to_owned())].into(),
            metrics: latency
                .map(|v| {
                    (
                        "latency_ms".to_owned(),
                        Metric {
                            key: "latency_ms".into(),
                            value: v,
                            timestamp_ms: 0,
                            step: 0,
                        },
                    )
                })
                .into_iter()
                .collect(),
            tags: [("team a".to_owned(), "search".to_owned())].into(),
            inputs: Vec::new(),
        }
    }

    #[test]
    fn filters_combine_params_metrics_tags_and_attributes() {
        let fast = run("a", 1, "smollm2", Some(500.0));
        let slow = run("b", 2, "smollm2", Some(1500.0));
        let other = run("c", 3, "llama3", None);
        let pass = |f: &str| -> Vec<String> {
            let filter = RunFilter::parse(f).unwrap();
            [&fast, &slow, &other]
                .into_iter()
                .filter(|r| filter.matches(r))
                .map(|r| r.info.run_id.clone())
                .collect()
        };
        assert_eq!(pass(""), ["a", "b", "c"]);
        assert_eq!(
            pass("params.model = 'smollm2' and metrics.latency_ms < 1000"),
            ["a"]
        );
        assert_eq!(pass("params.model != \"smollm2\""), ["c"]);
        assert_eq!(pass("metrics.latency_ms >= 500"), ["a", "b"]);
        assert_eq!(pass("params.model LIKE 'small%'"), Vec::<String>::new());
        assert_eq!(pass("params.model ILIKE 'SMOL%2'"), ["a", "b"]);
        assert_eq!(
            pass("tags.`team a` = 'search' AND attributes.status = 'FINISHED'"),
            ["a", "b", "c"]
        );
        assert_eq!(
            pass("attributes.start_time > 1 and run_name LIKE 'run-_'"),
            ["b", "c"]
        );
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        for (filter, expected) in [
            ("params.model = smollm2", "neither a number"),
            ("metrics.m < 'x'", "numbers"),
            ("params.a > 'x'", "=, !=, LIKE"),
            ("params.a = 'x' or params.b = 'y'", "OR is not supported"),
            ("bogus.a = 'x'", "not metrics."),
            ("attributes.colour = 'x'", "not a run attribute"),
            ("params.a = 'x", "unclosed"),
            ("params.a =", "KEY OP VALUE"),
        ] {
            let err = RunFilter::parse(filter).unwrap_err().to_string();
            assert!(
                err.contains(expected) && err.contains(filter),
                "{filter}: {err}"
            );
        }
    }

    #[test]
    fn order_by_sorts_with_missing_values_last_then_newest_first() {
        let mut runs = vec![
            run("a", 1, "x", Some(500.0)),
            run("b", 2, "y", None),
            run("c", 3, "z", Some(900.0)),
        ];
        OrderBy::sort(
            &mut runs,
            &[OrderBy::parse("metrics.latency_ms DESC").unwrap()],
        );
        let ids: Vec<&str> = runs.iter().map(|r| r.info.run_id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        OrderBy::sort(&mut runs, &[]);
        let ids: Vec<&str> = runs.iter().map(|r| r.info.run_id.as_str()).collect();
        assert_eq!(ids, ["c", "b", "a"]);
        OrderBy::sort(&mut runs, &[OrderBy::parse("params.model").unwrap()]);
        assert_eq!(runs[0].info.run_id, "a");
        assert!(OrderBy::parse("metrics.m sideways").is_err());
    }
}

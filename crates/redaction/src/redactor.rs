//! [`Redactor`]: the configured detectors and the user's own patterns, replacing what they find with
//! typed placeholders numbered per trace by [`Placeholders`].

use std::collections::HashMap;
use std::ops::Range;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::detector::{Kind, detect, keep_first};

/// What to redact (`[telemetry.redaction]`).
///
/// ```
/// let config: sextant_redaction::RedactionConfig = toml::from_str(r#"
///     pii = true
///     patterns = [{ name = "employee_id", regex = 'EMP-\d{6}' }]
/// "#).unwrap();
/// assert!(config.secrets, "secrets stay on unless turned off");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactionConfig {
    /// API-key shapes, bearer tokens and credentials in URLs. On by default.
    pub secrets: bool,
    /// Emails, phone numbers, payment cards, IBANs and IP addresses. Off by default.
    pub pii: bool,
    /// Your own patterns, each replaced by `<NAME_n>` (the pattern's name in capitals).
    pub patterns: Vec<PatternConfig>,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        Self {
            secrets: true,
            pii: false,
            patterns: Vec::new(),
        }
    }
}

/// A pattern of your own: `name` (letters, digits and `_`) labels its placeholders, `regex` is
/// in the syntax of the `regex` crate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternConfig {
    /// The placeholder label: `employee_id` gives `<EMPLOYEE_ID_1>`.
    pub name: String,
    /// What to find.
    pub regex: String,
}

/// A pattern of the configuration that cannot be used, named by its position and name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("patterns[{index}] ({name:?}): {problem}")]
pub struct RedactionConfigError {
    /// Its position in `patterns`.
    pub index: usize,
    /// Its name as written.
    pub name: String,
    /// What is wrong with it.
    pub problem: String,
}

/// The numbering of one trace's placeholders: the same value gets the same placeholder every time
/// it is seen through the same `Placeholders`, a new value the next number of its kind.
#[derive(Debug, Default, Clone)]
pub struct Placeholders {
    given: HashMap<(String, String), String>,
    counts: HashMap<String, usize>,
}

impl Placeholders {
    /// The placeholder for `value` of `label`, numbering it if it is new.
    fn placeholder(&mut self, label: &str, value: &str) -> String {
        let key = (label.to_owned(), value.to_owned());
        if let Some(given) = self.given.get(&key) {
            return given.clone();
        }
        let count = self.counts.entry(label.to_owned()).or_default();
        *count += 1;
        let placeholder = format!("<{label}_{count}>");
        self.given.insert(key, placeholder.clone());
        placeholder
    }

    /// The placeholder for `value`, found as `kind` by [`detect`](crate::detect): the same
    /// value gets the same placeholder, a new one the next number of its kind.
    pub fn placeholder_for(&mut self, kind: Kind, value: &str) -> String {
        self.placeholder(kind.label(), value)
    }

    /// How many distinct values have been given placeholders.
    pub fn len(&self) -> usize {
        self.given.len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.given.is_empty()
    }
}

/// Text with what was found replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    /// The text with placeholders.
    pub text: String,
    /// How many values were replaced.
    pub count: usize,
}

/// The configured detectors, ready to run. The default redacts secrets only, as
/// [`RedactionConfig::default`] does.
#[derive(Debug, Clone)]
pub struct Redactor {
    kinds: Vec<Kind>,
    patterns: Vec<(String, Regex)>,
}

/// Two redactors are equal when they look for the same kinds and the same patterns.
impl PartialEq for Redactor {
    fn eq(&self, other: &Self) -> bool {
        self.kinds == other.kinds
            && self.patterns.len() == other.patterns.len()
            && self
                .patterns
                .iter()
                .zip(&other.patterns)
                .all(|((a, ra), (b, rb))| a == b && ra.as_str() == rb.as_str())
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Self {
            kinds: Kind::SECRETS.to_vec(),
            patterns: Vec::new(),
        }
    }
}

impl Redactor {
    /// The redactor `config` describes; an error names the first pattern that cannot be used.
    pub fn new(config: &RedactionConfig) -> Result<Self, RedactionConfigError> {
        let mut kinds = Vec::new();
        if config.secrets {
            kinds.extend(Kind::SECRETS);
        }
        if config.pii {
            kinds.extend(Kind::PII);
        }
        let patterns = config
            .patterns
            .iter()
            .enumerate()
            .map(|(index, pattern)| {
                let error = |problem: String| RedactionConfigError {
                    index,
                    name: pattern.name.clone(),
                    problem,
                };
                let label_ok = !pattern.name.is_empty()
                    && pattern
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !label_ok {
                    return Err(error(
                        "a pattern's name labels its placeholders: use letters, digits and _"
                            .into(),
                    ));
                }
                let regex = Regex::new(&pattern.regex)
                    .map_err(|e| error(format!("the regex does not compile: {e}")))?;
                if regex.is_match("") {
                    return Err(error(
                        "the regex matches the empty string, so it would redact nothing but \
                         insert placeholders everywhere"
                            .into(),
                    ));
                }
                Ok((pattern.name.to_ascii_uppercase(), regex))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { kinds, patterns })
    }

    /// Whether it redacts anything at all.
    pub fn is_active(&self) -> bool {
        !self.kinds.is_empty() || !self.patterns.is_empty()
    }

    /// `text` with everything found replaced by its placeholder in `placeholders`.
    pub fn redact(&self, text: &str, placeholders: &mut Placeholders) -> Redacted {
        // (where, rank where two start together, placeholder label): the built-in kinds first,
        // then the user's patterns.
        let mut hits: Vec<(Range<usize>, u8, &str)> = detect(text, &self.kinds)
            .into_iter()
            .map(|f| (f.range, f.kind as u8, f.kind.label()))
            .collect();
        for (label, regex) in &self.patterns {
            hits.extend(
                regex
                    .find_iter(text)
                    .filter(|m| !m.range().is_empty())
                    .map(|m| (m.range(), u8::MAX, label.as_str())),
            );
        }
        let hits = keep_first(hits, |(range, rank, _)| (range.clone(), *rank));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (range, _, label) in &hits {
            out.push_str(&text[at..range.start]);
            out.push_str(&placeholders.placeholder(label, &text[range.clone()]));
            at = range.end;
        }
        out.push_str(&text[at..]);
        Redacted {
            text: out,
            count: hits.len(),
        }
    }

    /// Like [`redact`](Self::redact), but a `text` that is a JSON object or array (how spans
    /// carry messages and tool arguments) is redacted string by string and written back as
    /// JSON, so a value after an escape (`"\nada@example.com"`) is found whole and the result
    /// stays valid JSON (object keys come back in sorted order, indented if the text was; nothing
    /// is rewritten when nothing was found). Any other text is redacted as text.
    ///
    /// ```
    /// use sextant_redaction::{Placeholders, RedactionConfig, Redactor};
    ///
    /// let redactor = Redactor::new(&RedactionConfig { pii: true, ..RedactionConfig::default() }).unwrap();
    /// let mut trace = Placeholders::default();
    /// let out = redactor.redact_json_or_text(r#"[{"content":"Hi\nada@example.com"}]"#, &mut trace);
    /// assert_eq!(out.text, r#"[{"content":"Hi\n<EMAIL_1>"}]"#);
    /// ```
    pub fn redact_json_or_text(&self, text: &str, placeholders: &mut Placeholders) -> Redacted {
        let trimmed = text.trim_start();
        if (trimmed.starts_with('{') || trimmed.starts_with('['))
            && let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text)
        {
            let count = self.redact_value(&mut value, placeholders);
            // Written back in the layout it came in: compact (span attributes) or indented
            // (artifacts written with `to_vec_pretty`).
            let written = match count {
                0 => text.to_owned(),
                _ if text.contains('\n') => {
                    serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
                }
                _ => value.to_string(),
            };
            // What needs its key beside it (`"password": "…"`, `"Authorization": "Basic …"`),
            // keys themselves and numbers (a card number as a JSON number) are only seen in the
            // whole text: a last pass over it catches them.
            let rest = self.redact(&written, placeholders);
            return Redacted {
                text: rest.text,
                count: count + rest.count,
            };
        }
        self.redact(text, placeholders)
    }

    /// Redacts every string inside `value` (not the object keys) in place; how many values were
    /// replaced.
    pub fn redact_value(
        &self,
        value: &mut serde_json::Value,
        placeholders: &mut Placeholders,
    ) -> usize {
        match value {
            serde_json::Value::String(text) => {
                let redacted = self.redact(text, placeholders);
                if redacted.count > 0 {
                    *text = redacted.text;
                }
                redacted.count
            }
            serde_json::Value::Array(items) => items
                .iter_mut()
                .map(|item| self.redact_value(item, placeholders))
                .sum(),
            serde_json::Value::Object(fields) => fields
                .values_mut()
                .map(|item| self.redact_value(item, placeholders))
                .sum(),
            _ => 0,
        }
    }
}

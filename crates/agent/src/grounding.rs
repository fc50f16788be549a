//! Whether an answer is supported by the documents it was given: each sentence's content words
//! (four letters or more, not a stop word) must mostly occur in them. The `is_grounded` scorer of
//! evaluations and monitors and the `groundedness` guardrail both judge by it.

use std::collections::HashSet;

/// The share of a sentence's content words that must occur in the documents.
const SUPPORTED_SHARE: f64 = 0.6;

const STOPWORDS: [&str; 24] = [
    "that", "this", "with", "from", "have", "there", "their", "which", "what", "when", "where",
    "will", "would", "about", "into", "than", "then", "they", "them", "also", "been", "were",
    "your", "these",
];

fn content_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 4 && !STOPWORDS.contains(&w.as_str()))
        .collect()
}

/// How `answer`'s claims stand against `documents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grounding<'a> {
    /// Sentences that make a claim (have content words).
    pub sentences: usize,
    /// Those whose content words mostly do not occur in the documents.
    pub unsupported: Vec<&'a str>,
}

impl Grounding<'_> {
    /// Whether it makes a claim and every claim is supported.
    pub fn is_grounded(&self) -> bool {
        self.sentences > 0 && self.unsupported.is_empty()
    }
}

/// Splits `answer` into sentences and checks each against `documents`.
///
/// ```
/// let documents = ["Rust 1.0 was released in May 2015 by the Rust team.".to_owned()];
/// let grounding = sextant_agent::grounding::check("Rust was released in 2015. Python is older.", &documents);
/// assert_eq!((grounding.sentences, grounding.unsupported), (2, vec!["Python is older"]));
/// ```
pub fn check<'a>(answer: &'a str, documents: &[String]) -> Grounding<'a> {
    let vocabulary: HashSet<String> = documents.iter().flat_map(|d| content_words(d)).collect();
    let sentences: Vec<&str> = answer
        .split(['.', '!', '?', '\n'])
        .map(str::trim)
        .filter(|s| !content_words(s).is_empty())
        .collect();
    let unsupported = sentences
        .iter()
        .copied()
        .filter(|sentence| {
            let words = content_words(sentence);
            let known = words.iter().filter(|w| vocabulary.contains(*w)).count();
            (known as f64) < SUPPORTED_SHARE * words.len() as f64
        })
        .collect();
    Grounding {
        sentences: sentences.len(),
        unsupported,
    }
}

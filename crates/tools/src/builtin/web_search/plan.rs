//! Query planning (`plan_query`): the model's query normalised for a search backend, and split
//! into the terms that the corpus backend and result ranking match on.

use crate::ToolError;

/// Longest query sent to a backend, in characters (search APIs cap queries near 400).
const MAX_QUERY_CHARS: usize = 400;

/// Leading words that models put before the query itself ("search for …").
const LEADING_FILLER: &[&str] = &[
    "search the web for ",
    "search for ",
    "search ",
    "look up ",
    "find out ",
    "find ",
    "google ",
];

/// Words too common to help match a document.
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from",
    "how", "i", "in", "is", "it", "its", "me", "of", "on", "or", "please", "tell", "that", "the",
    "this", "to", "was", "what", "when", "where", "which", "who", "why", "with", "you",
];

/// A query ready for a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedQuery {
    /// What the model wrote.
    pub original: String,
    /// What the backend is sent: control characters removed, whitespace collapsed, leading filler
    /// dropped, length bounded.
    pub text: String,
    /// Lowercased, de-pluralised search terms without stopwords, in order, without repeats.
    pub terms: Vec<String>,
}

/// Plans `query`; an empty query is an error the model can fix.
pub fn plan(query: &str) -> Result<PlannedQuery, ToolError> {
    let collapsed = query
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut text = collapsed.as_str();
    let lower = text.to_lowercase();
    if let Some(filler) = LEADING_FILLER.iter().find(|f| lower.starts_with(**f))
        && text.len() > filler.len()
    {
        text = &text[filler.len()..];
    }
    let text = bounded(text, MAX_QUERY_CHARS);
    if text.is_empty() {
        return Err(ToolError::InvalidArguments(
            "the query is empty; say what to search for".into(),
        ));
    }
    let mut terms: Vec<String> = Vec::new();
    let all = analyze(&text);
    let content: Vec<&String> = all.iter().filter(|t| !is_stopword(t)).collect();
    // A query of stopwords only ("who is it") still searches for its words.
    let chosen: Vec<&String> = if content.is_empty() {
        all.iter().collect()
    } else {
        content
    };
    for term in chosen {
        if !terms.contains(term) {
            terms.push(term.clone());
        }
    }
    Ok(PlannedQuery {
        original: query.to_owned(),
        text,
        terms,
    })
}

/// The words of `text` as matched by search: lowercased runs of letters and digits, with a
/// plural `s` removed, so "Spans" matches "span".
pub fn analyze(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| stem(&word.to_lowercase()))
        .collect()
}

/// Whether `term` (already analysed) is too common to count.
pub fn is_stopword(term: &str) -> bool {
    STOPWORDS.binary_search(&term).is_ok()
}

fn stem(word: &str) -> String {
    let chars = word.chars().count();
    if chars > 4 && word.ends_with("ies") {
        format!("{}y", &word[..word.len() - 3])
    } else if chars > 3 && word.ends_with('s') && !word.ends_with("ss") && !word.ends_with("us") {
        word[..word.len() - 1].to_owned()
    } else {
        word.to_owned()
    }
}

/// `text` cut to at most `max` characters, at a word break when there is one.
fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => {
            let head = &text[..cut];
            head.rfind(' ')
                .map_or(head, |space| &head[..space])
                .to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn queries_are_normalised_and_split_into_terms() {
        let planned = plan("  Search for\tthe OpenTelemetry\n GenAI spans  spans ").unwrap();
        assert_eq!(planned.text, "the OpenTelemetry GenAI spans spans");
        assert_eq!(planned.terms, ["opentelemetry", "genai", "span"]);
    }

    #[test]
    fn a_query_of_stopwords_keeps_its_words_and_an_empty_one_is_refused() {
        assert_eq!(plan("who is it").unwrap().terms, ["who", "is", "it"]);
        let err = plan(" \n\t ").unwrap_err();
        assert_eq!(err.error_type(), "invalid_arguments");
    }

    #[test]
    fn long_queries_are_cut_at_a_word() {
        let long = "word ".repeat(200);
        let planned = plan(&long).unwrap();
        assert!(planned.text.chars().count() <= MAX_QUERY_CHARS);
        assert!(planned.text.ends_with("word"));
    }

    #[test]
    fn plurals_meet_their_singulars() {
        assert_eq!(
            analyze("Queries spans class status"),
            ["query", "span", "class", "status"]
        );
    }
}

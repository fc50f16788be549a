//! The `corpus` backend: BM25 search over a folder of local documents — the built-in corpus
//! (`configs/corpus`, embedded in the binary) by default — so search works offline.
//!
//! Each document is split into passages of a few paragraphs; a document scores as its best
//! passage (the document's title counts toward every passage), and that passage is its snippet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::SearchBackend;
use super::plan::{PlannedQuery, analyze, is_stopword};
use super::results::SearchResult;
use crate::ToolError;
use crate::config::ToolConfigError;

/// The built-in documents: (file name, contents).
const BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin_corpus.rs"));

/// Target passage length, in characters: paragraphs are joined until a passage reaches it.
const PASSAGE_CHARS: usize = 600;
/// BM25 term-frequency saturation.
const K1: f64 = 1.2;
/// BM25 length normalisation.
const B: f64 = 0.75;

/// A searchable set of documents.
#[derive(Debug)]
pub struct Corpus {
    documents: Vec<Document>,
    passages: Vec<Passage>,
    /// Passages containing each term.
    document_frequency: HashMap<String, usize>,
    average_length: f64,
}

#[derive(Debug)]
struct Document {
    title: String,
    url: String,
}

#[derive(Debug)]
struct Passage {
    document: usize,
    text: String,
    term_counts: HashMap<String, u32>,
    length: usize,
}

impl Corpus {
    /// The built-in corpus.
    pub fn builtin() -> Self {
        Self::from_documents(
            BUILTIN
                .iter()
                .map(|(name, text)| (Path::new(name).to_owned(), (*text).to_owned())),
            None,
        )
    }

    /// The `.md`, `.markdown` and `.txt` files under `dir` (recursively).
    pub fn from_dir(dir: &Path) -> Result<Self, ToolConfigError> {
        let key = "tools.web_search.corpus.dir";
        if !dir.is_dir() {
            return Err(ToolConfigError::new(
                key,
                format!("{} is not a directory", dir.display()),
            ));
        }
        let mut files = Vec::new();
        collect_documents(dir, &mut files)
            .map_err(|e| ToolConfigError::new(key, format!("reading {}: {e}", dir.display())))?;
        files.sort();
        let mut documents = Vec::with_capacity(files.len());
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ToolConfigError::new(key, format!("reading {}: {e}", path.display()))
            })?;
            documents.push((path, text));
        }
        if documents.is_empty() {
            return Err(ToolConfigError::new(
                key,
                format!("{} has no .md, .markdown or .txt documents", dir.display()),
            ));
        }
        Ok(Self::from_documents(documents, Some(dir)))
    }

    fn from_documents(
        documents: impl IntoIterator<Item = (PathBuf, String)>,
        root: Option<&Path>,
    ) -> Self {
        let mut corpus = Corpus {
            documents: Vec::new(),
            passages: Vec::new(),
            document_frequency: HashMap::new(),
            average_length: 0.0,
        };
        for (path, text) in documents {
            let (front, body) = split_front_matter(&text);
            let title = front
                .get("title")
                .cloned()
                .or_else(|| first_heading(body))
                .unwrap_or_else(|| {
                    path.file_stem()
                        .map(|s| s.to_string_lossy().replace(['-', '_'], " "))
                        .unwrap_or_default()
                });
            let url = front.get("url").cloned().unwrap_or_else(|| {
                let absolute = root.map_or(path.clone(), |_| {
                    path.canonicalize().unwrap_or_else(|_| path.clone())
                });
                url::Url::from_file_path(&absolute)
                    .map(String::from)
                    .unwrap_or_else(|_| format!("file://{}", absolute.display()))
            });
            let document = corpus.documents.len();
            let title_terms = analyze(&title);
            for text in passages(body) {
                let mut term_counts: HashMap<String, u32> = HashMap::new();
                for term in title_terms.iter().cloned().chain(analyze(&text)) {
                    *term_counts.entry(term).or_default() += 1;
                }
                let length = term_counts.values().map(|&n| n as usize).sum();
                for term in term_counts.keys() {
                    *corpus.document_frequency.entry(term.clone()).or_default() += 1;
                }
                corpus.passages.push(Passage {
                    document,
                    text,
                    term_counts,
                    length,
                });
            }
            corpus.documents.push(Document { title, url });
        }
        let total: usize = corpus.passages.iter().map(|p| p.length).sum();
        corpus.average_length = total as f64 / corpus.passages.len().max(1) as f64;
        corpus
    }

    /// How many documents it holds.
    pub fn len(&self) -> usize {
        self.documents.len()
    }

    /// Whether it holds no documents.
    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }

    /// The best `count` documents for `terms`, best first, each with its best passage.
    pub fn search(&self, terms: &[String], count: usize) -> Vec<SearchResult> {
        let n = self.passages.len() as f64;
        let mut best: HashMap<usize, (f64, usize)> = HashMap::new();
        for (index, passage) in self.passages.iter().enumerate() {
            let mut score = 0.0;
            for term in terms {
                let Some(&tf) = passage.term_counts.get(term) else {
                    continue;
                };
                let df = self.document_frequency.get(term).copied().unwrap_or(0) as f64;
                let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                let tf = f64::from(tf);
                let norm = K1 * (1.0 - B + B * passage.length as f64 / self.average_length);
                // Stopwords only count when the query has nothing else.
                let weight = if is_stopword(term) { 0.2 } else { 1.0 };
                score += weight * idf * tf * (K1 + 1.0) / (tf + norm);
            }
            if score > 0.0 {
                let entry = best.entry(passage.document).or_insert((score, index));
                if score > entry.0 {
                    *entry = (score, index);
                }
            }
        }
        let mut ranked: Vec<(usize, f64, usize)> = best
            .into_iter()
            .map(|(doc, (score, passage))| (doc, score, passage))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
            .into_iter()
            .take(count)
            .map(|(doc, score, passage)| SearchResult {
                title: self.documents[doc].title.clone(),
                url: self.documents[doc].url.clone(),
                snippet: plain_markdown(&self.passages[passage].text),
                score: Some(score),
            })
            .collect()
    }
}

#[async_trait]
impl SearchBackend for Corpus {
    fn name(&self) -> &'static str {
        "corpus"
    }

    async fn search(
        &self,
        query: &PlannedQuery,
        count: usize,
    ) -> Result<Vec<SearchResult>, ToolError> {
        Ok(Corpus::search(self, &query.terms, count))
    }
}

fn collect_documents(dir: &Path, into: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_documents(&path, into)?;
        } else if path
            .extension()
            .is_some_and(|ext| ext == "md" || ext == "markdown" || ext == "txt")
        {
            into.push(path);
        }
    }
    Ok(())
}

/// `key: value` lines between a leading `---` and the next `---`, and the rest.
fn split_front_matter(text: &str) -> (HashMap<String, String>, &str) {
    let mut fields = HashMap::new();
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return (fields, text);
    };
    let Some(end) = rest.find("\n---") else {
        return (fields, text);
    };
    for line in rest[..end].lines() {
        if let Some((key, value)) = line.split_once(':') {
            let value = value.trim().trim_matches('"').trim_matches('\'');
            fields.insert(key.trim().to_lowercase(), value.to_owned());
        }
    }
    let body = &rest[end + 4..];
    (fields, body.trim_start_matches(['-', '\r', '\n']))
}

fn first_heading(body: &str) -> Option<String> {
    body.lines()
        .find_map(|line| line.strip_prefix('#'))
        .map(|heading| heading.trim_start_matches('#').trim().to_owned())
        .filter(|heading| !heading.is_empty())
}

/// Paragraphs joined into passages of about [`PASSAGE_CHARS`]; a heading starts a new passage.
fn passages(body: &str) -> Vec<String> {
    let mut passages = Vec::new();
    let mut current = String::new();
    for paragraph in body.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let heading = paragraph.starts_with('#');
        if !current.is_empty() && (heading || current.len() >= PASSAGE_CHARS) {
            passages.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(paragraph);
    }
    if !current.is_empty() {
        passages.push(current);
    }
    passages
}

/// Markdown reduced to its words for a snippet: heading marks, emphasis and list bullets dropped.
fn plain_markdown(text: &str) -> String {
    text.lines()
        .map(|line| {
            line.trim_start_matches(['#', '-', '*', '>', ' '])
                .replace(['*', '`'], "")
        })
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::web_search::plan::plan;

    #[test]
    fn the_builtin_corpus_is_embedded_with_titles_and_urls() {
        let corpus = Corpus::builtin();
        let on_disk =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/corpus"))
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "md")
                })
                .count();
        assert_eq!(corpus.len(), on_disk);
        for document in &corpus.documents {
            assert!(!document.title.is_empty());
            assert!(document.url.starts_with("https://"), "{document:?}");
        }
    }

    #[test]
    fn the_best_matching_document_comes_first() {
        let corpus = Corpus::builtin();
        let query = plan("What port does Ollama listen on?").unwrap();
        let results = corpus.search(&query.terms, 3);
        assert!(!results.is_empty());
        assert!(
            results[0].title.to_lowercase().contains("ollama"),
            "{results:?}"
        );
        assert!(results.windows(2).all(|w| w[0].score >= w[1].score));
    }

    #[test]
    fn a_folder_of_documents_is_searchable_and_unknown_terms_find_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rust.md"),
            "---\ntitle: Rust ownership\nurl: https://doc.rust-lang.org/book/ch04-00-understanding-ownership.html\n---\nEach value has one owner.\n\nWhen the owner goes out of scope, the value is dropped.",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("notes")).unwrap();
        std::fs::write(
            dir.path().join("notes/tea.txt"),
            "# Green tea\n\nSteep green tea at 80 degrees.",
        )
        .unwrap();
        let corpus = Corpus::from_dir(dir.path()).unwrap();
        assert_eq!(corpus.len(), 2);

        let results = corpus.search(&plan("owner dropped").unwrap().terms, 5);
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].title, "Rust ownership");
        assert!(results[0].snippet.contains("dropped"));

        let tea = corpus.search(&plan("green tea").unwrap().terms, 5);
        assert_eq!(tea[0].title, "Green tea");
        assert!(tea[0].url.starts_with("file:///"), "{}", tea[0].url);

        assert!(
            corpus
                .search(&plan("quantum chromodynamics").unwrap().terms, 5)
                .is_empty()
        );
    }

    #[test]
    fn a_missing_or_empty_folder_is_a_config_error_naming_the_key() {
        let err = Corpus::from_dir(Path::new("/nonexistent/corpus")).unwrap_err();
        assert_eq!(err.key, "tools.web_search.corpus.dir");
        let empty = tempfile::tempdir().unwrap();
        let err = Corpus::from_dir(empty.path()).unwrap_err();
        assert!(err.message.contains("no .md"), "{err}");
    }
}

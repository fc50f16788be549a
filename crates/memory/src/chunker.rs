//! Splitting documents into chunks that fit the embedder: by tokens (the embedder's own count),
//! with overlap, at the largest boundary that fits — Markdown headings, then paragraphs, sentences
//! and words (`text-splitter`'s semantic levels). Each chunk remembers the headings it sits under.

use serde::{Deserialize, Serialize};
use text_splitter::{ChunkConfig, ChunkSizer, MarkdownSplitter, TextSplitter};

use crate::documents::Document;
use crate::embedder::Embedder;

/// How documents are cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkingConfig {
    /// Most tokens in a chunk (all-MiniLM-L6-v2 reads at most 256).
    pub max_tokens: usize,
    /// Tokens repeated from the end of one chunk at the start of the next.
    pub overlap_tokens: usize,
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        Self {
            max_tokens: 200,
            overlap_tokens: 30,
        }
    }
}

impl ChunkingConfig {
    /// Checks the two sizes against each other, naming the keys.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_tokens == 0 {
            return Err("memory.chunking.max_tokens must be at least 1".to_owned());
        }
        if self.overlap_tokens >= self.max_tokens {
            return Err(format!(
                "memory.chunking.overlap_tokens ({}) must be smaller than max_tokens ({})",
                self.overlap_tokens, self.max_tokens
            ));
        }
        Ok(())
    }
}

/// A piece of a document, the unit that is embedded and retrieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Its position in the document, from 0.
    pub index: usize,
    /// The chunk's text, as in the document.
    pub text: String,
    /// The headings it sits under, outermost first, joined with ` > ` (`None` before the first).
    pub heading: Option<String>,
}

impl Chunk {
    /// What is embedded: the text preceded by the document title and headings it lacks, so a
    /// paragraph is found by what its section is about.
    pub fn embedding_text(&self, title: Option<&str>) -> String {
        let mut context: Vec<&str> = Vec::new();
        if let Some(title) = title {
            context.push(title);
        }
        if let Some(heading) = &self.heading {
            let innermost = heading.rsplit(" > ").next().unwrap_or(heading);
            if !self.text.contains(innermost) {
                context.push(heading);
            }
        }
        // A chunk that opens with its title (as a heading or not) needs no title prefix.
        let opening = self.text.trim_start_matches('#').trim_start();
        context.retain(|part| !opening.starts_with(*part));
        if context.is_empty() {
            self.text.clone()
        } else {
            format!("{}\n\n{}", context.join(" — "), self.text)
        }
    }
}

struct EmbedderTokens<'a>(&'a dyn Embedder);

impl ChunkSizer for EmbedderTokens<'_> {
    fn size(&self, chunk: &str) -> usize {
        self.0.count_tokens(chunk)
    }
}

/// Splits `document` into chunks of at most `config.max_tokens` tokens of `embedder`.
pub fn chunk_document(
    document: &Document,
    config: &ChunkingConfig,
    embedder: &dyn Embedder,
) -> Vec<Chunk> {
    let chunk_config = ChunkConfig::new(config.max_tokens.max(1))
        .with_overlap(
            config
                .overlap_tokens
                .min(config.max_tokens.saturating_sub(1)),
        )
        .expect("overlap is smaller than the capacity")
        .with_sizer(EmbedderTokens(embedder));
    let text = document.text.as_str();
    let pieces: Vec<(usize, &str)> = if document.kind.has_headings() {
        MarkdownSplitter::new(chunk_config)
            .chunk_indices(text)
            .collect()
    } else {
        TextSplitter::new(chunk_config)
            .chunk_indices(text)
            .collect()
    };
    let headings = if document.kind.has_headings() {
        heading_positions(text)
    } else {
        Vec::new()
    };
    let mut chunks = Vec::with_capacity(pieces.len());
    for (offset, piece) in pieces {
        // A heading alone says nothing; the next chunk carries it as its heading.
        if is_heading_only(piece) {
            continue;
        }
        let heading = headings
            .iter()
            .take_while(|(position, _)| *position <= offset)
            .last()
            .map(|(_, path)| path.clone());
        chunks.push(Chunk {
            index: chunks.len(),
            text: piece.to_owned(),
            heading,
        });
    }
    chunks
}

fn is_heading_only(piece: &str) -> bool {
    piece
        .lines()
        .all(|line| line.trim().is_empty() || line.trim_start().starts_with('#'))
}

/// Byte offset of each Markdown ATX heading (outside code fences) and the heading path there.
fn heading_positions(text: &str) -> Vec<(usize, String)> {
    let mut positions = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut in_fence = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        } else if !in_fence {
            let level = trimmed.chars().take_while(|c| *c == '#').count();
            let title = trimmed[level..].trim();
            if (1..=6).contains(&level) && trimmed[level..].starts_with(' ') && !title.is_empty() {
                stack.retain(|(l, _)| *l < level);
                stack.push((level, title.trim_end_matches('#').trim().to_owned()));
                let path = stack
                    .iter()
                    .map(|(_, t)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" > ");
                positions.push((offset, path));
            }
        }
        offset += line.len();
    }
    positions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::DocumentKind;
    use crate::embedder::{EmbedError, Embeddings};

    /// Counts whitespace-separated words as tokens: enough to test the splitting logic.
    struct WordCounter;

    #[async_trait::async_trait]
    impl Embedder for WordCounter {
        fn provider(&self) -> &str {
            "test"
        }
        fn model(&self) -> &str {
            "words"
        }
        fn dimension(&self) -> usize {
            1
        }
        fn count_tokens(&self, text: &str) -> usize {
            text.split_whitespace().count()
        }
        async fn embed_batch(&self, _texts: &[String]) -> Result<Embeddings, EmbedError> {
            unreachable!("chunking never embeds")
        }
    }

    fn markdown(text: &str) -> Document {
        Document {
            source: "doc.md".into(),
            kind: DocumentKind::Markdown,
            title: Some("Doc".into()),
            url: None,
            text: text.into(),
        }
    }

    #[test]
    fn chunks_fit_the_budget_and_carry_their_heading_path() {
        let body = (0..40)
            .map(|i| format!("word{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let text = format!(
            "# Guide\n\nIntro text here.\n\n## Retrieval\n\n{body}\n\n### MMR\n\nDiversity matters.\n"
        );
        let config = ChunkingConfig {
            max_tokens: 16,
            overlap_tokens: 4,
        };
        let chunks = chunk_document(&markdown(&text), &config, &WordCounter);
        assert!(chunks.len() >= 4, "{chunks:#?}");
        for chunk in &chunks {
            assert!(chunk.text.split_whitespace().count() <= 16, "{chunk:?}");
            assert!(!is_heading_only(&chunk.text), "{chunk:?}");
        }
        assert_eq!(
            chunks.iter().map(|c| c.index).collect::<Vec<_>>(),
            (0..chunks.len()).collect::<Vec<_>>()
        );
        let last = chunks.last().unwrap();
        assert!(last.text.contains("Diversity"), "{last:?}");
        assert_eq!(last.heading.as_deref(), Some("Guide > Retrieval > MMR"));
        let middle = chunks.iter().find(|c| c.text.contains("word20")).unwrap();
        assert_eq!(middle.heading.as_deref(), Some("Guide > Retrieval"));
    }

    #[test]
    fn consecutive_chunks_of_long_text_overlap() {
        let body = (0..60)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let document = Document {
            kind: DocumentKind::Text,
            ..markdown(&body)
        };
        let config = ChunkingConfig {
            max_tokens: 20,
            overlap_tokens: 5,
        };
        let chunks = chunk_document(&document, &config, &WordCounter);
        assert!(chunks.len() >= 3);
        for pair in chunks.windows(2) {
            let first_of_next = pair[1].text.split_whitespace().next().unwrap();
            assert!(
                pair[0].text.split_whitespace().any(|w| w == first_of_next),
                "{pair:?}"
            );
        }
    }

    #[test]
    fn headings_inside_code_fences_are_not_headings() {
        let positions = heading_positions("# A\n```\n# not a heading\n```\n## B\n");
        assert_eq!(
            positions
                .iter()
                .map(|(_, p)| p.as_str())
                .collect::<Vec<_>>(),
            vec!["A", "A > B"]
        );
    }

    #[test]
    fn embedding_text_adds_missing_context_once() {
        let chunk = Chunk {
            index: 0,
            text: "Diversity matters.".into(),
            heading: Some("Guide > MMR".into()),
        };
        assert_eq!(
            chunk.embedding_text(Some("Doc")),
            "Doc — Guide > MMR\n\nDiversity matters."
        );
        let with_heading = Chunk {
            text: "### MMR\nDiversity matters.".into(),
            ..chunk
        };
        assert_eq!(
            with_heading.embedding_text(None),
            "### MMR\nDiversity matters."
        );
        let titled = Chunk {
            text: "# Doc\n\nIntro.".into(),
            heading: Some("Doc".into()),
            index: 0,
        };
        assert_eq!(titled.embedding_text(Some("Doc")), "# Doc\n\nIntro.");
    }

    #[test]
    fn overlap_must_be_smaller_than_the_chunk() {
        let bad = ChunkingConfig {
            max_tokens: 10,
            overlap_tokens: 10,
        };
        assert!(bad.validate().unwrap_err().contains("overlap_tokens (10)"));
    }
}

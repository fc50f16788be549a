//! RAG context sized for the model, and citations for answers that give none.
//!
//! * [`ContextFit`] drops retrieved chunks scored far below the best one and, under a token budget,
//!   keeps only the sentences most related to the question. A 135M model answers from two relevant
//!   sentences better than from three whole chunks, and its context is short.
//! * [`attribute_citations`] adds `[n]` after each sentence of an answer that mostly repeats source
//!   `n`, when the answer cites nothing itself. Small models seldom write citations however they
//!   are asked (0 of 38 answers on issue #19's benchmark); the sources they copied from can still be
//!   named.
//!
//! Both work on words (lower-cased letters, digits and `_`, common function words left out), the
//! same for every language model: no tokenizer is needed to estimate a budget (about four
//! characters a token).

use std::collections::HashSet;

use sextant_memory::RetrievedChunk;

/// Words too common to tell sentences apart.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "how", "in",
    "into", "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "what", "when",
    "where", "which", "who", "whose", "why", "with",
];

/// Sentences shorter than this (characters) are headings or list debris, not context.
const MIN_SENTENCE_CHARS: usize = 16;

/// The default relative score cut: chunks scored more than this below the best are dropped.
pub const DEFAULT_RELATIVE_SCORE_CUT: f32 = 0.1;

/// The default context budget, in estimated tokens, for the embedded local model.
pub const LOCAL_CONTEXT_TOKENS: usize = 120;

/// How retrieved chunks are cut to fit the model.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ContextFit {
    /// Drop chunks whose score is more than this below the best chunk's; `None` keeps all.
    pub relative_score_cut: Option<f32>,
    /// Keep the sentences most related to the question (sharing words with it) up to this many
    /// estimated tokens (about four characters each; at least one sentence); `None` keeps whole
    /// chunks.
    pub max_tokens: Option<usize>,
}

impl ContextFit {
    /// The chunks cut to fit, best first as they came; a chunk none of whose sentences is kept is
    /// dropped, so the sources stay numbered without gaps.
    pub fn apply(&self, question: &str, mut chunks: Vec<RetrievedChunk>) -> Vec<RetrievedChunk> {
        if let (Some(cut), Some(best)) = (
            self.relative_score_cut,
            chunks.iter().map(|chunk| chunk.score).reduce(f32::max),
        ) {
            chunks.retain(|chunk| chunk.score >= best - cut);
        }
        let Some(budget) = self.max_tokens else {
            return chunks;
        };
        let asked = words(question);
        // (score, chunk, position, sentence)
        let mut ranked: Vec<(f32, usize, usize, &str)> = Vec::new();
        for (at, chunk) in chunks.iter().enumerate() {
            for (position, sentence) in sentences(&chunk.text).into_iter().enumerate() {
                let said = words(sentence);
                let shared = said.intersection(&asked).count() as f32;
                ranked.push((
                    shared / (said.len() as f32 + 1.0).sqrt(),
                    at,
                    position,
                    sentence,
                ));
            }
        }
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut kept = Vec::new();
        let mut used = 0;
        for entry in ranked {
            let cost = entry.3.chars().count().div_ceil(4);
            // After the best sentence, only related ones that fit.
            if !kept.is_empty() && (entry.0 <= 0.0 || used + cost > budget) {
                continue;
            }
            used += cost;
            kept.push(entry);
        }
        kept.sort_by_key(|entry| (entry.1, entry.2));
        let mut texts: Vec<Vec<&str>> = vec![Vec::new(); chunks.len()];
        for (_, at, _, sentence) in &kept {
            texts[*at].push(sentence);
        }
        let texts: Vec<String> = texts.into_iter().map(|kept| kept.join(" ")).collect();
        chunks
            .into_iter()
            .zip(texts)
            .filter(|(chunk, text)| !text.is_empty() || chunk.text.trim().is_empty())
            .map(|(chunk, text)| RetrievedChunk { text, ..chunk })
            .collect()
    }
}

/// `answer` with `[n]` after each sentence at least half of whose words are in source `n` (the
/// source sharing most of them), unless the answer already cites a source by number.
pub fn attribute_citations(answer: &str, chunks: &[RetrievedChunk]) -> String {
    let cites_already = (1..=chunks.len()).any(|n| answer.contains(&format!("[{n}]")));
    if chunks.is_empty() || cites_already {
        return answer.to_owned();
    }
    let sources: Vec<HashSet<String>> = chunks.iter().map(|chunk| words(&chunk.text)).collect();
    let mut out = String::with_capacity(answer.len() + 16);
    let mut in_code = false;
    for piece in sentence_pieces(answer) {
        if piece.contains("```") {
            in_code = !in_code;
        }
        if in_code || piece.contains("```") {
            // Code is quoted as it is.
            out.push_str(piece);
            continue;
        }
        let said = words(piece);
        let best = sources
            .iter()
            .enumerate()
            .map(|(at, source)| (at, said.intersection(source).count()))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
        match best {
            Some((at, shared)) if said.len() >= 2 && shared * 2 >= said.len() => {
                let body = piece.trim_end();
                let (text, end) = match body.char_indices().next_back() {
                    Some((i, c)) if ".!?".contains(c) => (&body[..i], &body[i..]),
                    _ => (body, ""),
                };
                out.push_str(text);
                out.push_str(&format!(" [{}]", at + 1));
                out.push_str(end);
                out.push_str(&piece[body.len()..]);
            }
            _ => out.push_str(piece),
        }
    }
    out
}

/// The content words of `text`.
fn words(text: &str) -> HashSet<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .filter(|word| !STOP_WORDS.contains(&word.as_str()))
        .collect()
}

/// `text` cut after each `.`, `!` or `?` followed by white space, and at each line end; the pieces
/// together are `text` again.
fn sentence_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let next = chars.peek().map(|(_, next)| *next);
        let ends = c == '\n' || (".!?".contains(c) && next.is_none_or(char::is_whitespace));
        if ends {
            // The white space after the sentence stays with it.
            let mut end = at + c.len_utf8();
            while let Some((i, w)) = chars.peek().copied().filter(|(_, w)| *w == ' ') {
                end = i + w.len_utf8();
                chars.next();
            }
            pieces.push(&text[start..end]);
            start = end;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// The sentences of a chunk worth ranking: code blocks left out, headings, table rows and list
/// items on their own, fragments shorter than [`MIN_SENTENCE_CHARS`] dropped.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        for piece in sentence_pieces(line) {
            let piece = piece.trim();
            if piece.chars().count() >= MIN_SENTENCE_CHARS {
                out.push(piece);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(score: f32, text: &str) -> RetrievedChunk {
        RetrievedChunk {
            id: 0,
            score,
            source: "docs/a.md".into(),
            title: None,
            url: None,
            heading: None,
            chunk_index: 0,
            text: text.into(),
        }
    }

    #[test]
    fn chunks_far_below_the_best_are_dropped() {
        let fit = ContextFit {
            relative_score_cut: Some(0.1),
            max_tokens: None,
        };
        let kept = fit.apply(
            "q",
            vec![chunk(0.75, "a"), chunk(0.70, "b"), chunk(0.57, "c")],
        );
        let texts: Vec<_> = kept.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["a", "b"]);
    }

    #[test]
    fn a_budget_keeps_the_sentences_that_answer_the_question() {
        let fit = ContextFit {
            relative_score_cut: None,
            max_tokens: Some(20),
        };
        let kept = fit.apply(
            "What is the default value of max_steps?",
            vec![
                chunk(
                    0.8,
                    "Agents are TOML files in configs/agents. The default value of max_steps is 6.\n```toml\nmax_steps = 6\n```",
                ),
                chunk(0.7, "Tools have limits on time and size. Nothing here is relevant."),
            ],
        );
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].text, "The default value of max_steps is 6.");
    }

    #[test]
    fn an_answer_without_citations_gets_them_where_it_repeats_a_source() {
        let chunks = [
            chunk(
                0.8,
                "The lighthouse on Kell island is painted red and was built in 1871.",
            ),
            chunk(0.6, "The harbour of Varn is blue."),
        ];
        let answer = attribute_citations(
            "The lighthouse is painted red, built in 1871. I hope this helps!\nThe harbour is blue.",
            &chunks,
        );
        assert_eq!(
            answer,
            "The lighthouse is painted red, built in 1871 [1]. I hope this helps!\nThe harbour is blue [2]."
        );
        // Code is left as it is.
        assert_eq!(
            attribute_citations("```\nthe lighthouse is red\n```\n", &chunks),
            "```\nthe lighthouse is red\n```\n"
        );
        // An answer that cites is left as it is.
        assert_eq!(attribute_citations("Red [2].", &chunks), "Red [2].");
        assert_eq!(attribute_citations("Red.", &[]), "Red.");
    }
}

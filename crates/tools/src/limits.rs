//! [`ToolLimits`]: how long a tool call may run and how much of its result the model sees.

use std::time::Duration;

/// The limits one tool runs under. A [`crate::ToolSet`] holds a default and per-tool overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolLimits {
    /// Longest a call may run; past it the call is dropped and the model told it timed out.
    pub timeout: Duration,
    /// Most characters of a result the model sees; a longer result is cut, with a note saying so.
    pub max_result_chars: usize,
}

impl Default for ToolLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_result_chars: 16_000,
        }
    }
}

/// A tool's result as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// The text (cut to the limit, with a note, when it was longer).
    pub text: String,
    /// The length in characters of the whole result, when it was cut.
    pub truncated_from: Option<usize>,
}

impl ToolOutput {
    /// The `error.type` that marks a limit hit on a successful call: `result_truncated` when the
    /// result was cut.
    pub fn error_type(&self) -> Option<&'static str> {
        self.truncated_from.map(|_| "result_truncated")
    }

    /// `text` cut to `max_chars` characters (at a line or word break near the limit when there is
    /// one), with a note saying how much was left out.
    pub fn limited(text: String, max_chars: usize) -> Self {
        let total = text.chars().count();
        if total <= max_chars {
            return Self {
                text,
                truncated_from: None,
            };
        }
        let cut = text
            .char_indices()
            .nth(max_chars)
            .map_or(text.len(), |(i, _)| i);
        let head = &text[..cut];
        // Prefer ending on a line, then on a word, if that keeps most of the allowed text.
        let floor = cut * 4 / 5;
        let end = head
            .rfind('\n')
            .filter(|&i| i >= floor)
            .or_else(|| head.rfind(' ').filter(|&i| i >= floor))
            .unwrap_or(cut);
        let shown = head[..end].chars().count();
        Self {
            text: format!(
                "{}\n\n[result truncated: showing {shown} of {total} characters]",
                head[..end].trim_end()
            ),
            truncated_from: Some(total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_results_pass_unchanged() {
        let output = ToolOutput::limited("sunny".into(), 5);
        assert_eq!(output.text, "sunny");
        assert_eq!(output.truncated_from, None);
    }

    #[test]
    fn long_results_are_cut_at_a_break_with_a_note() {
        let text = "alpha beta gamma delta\nepsilon zeta eta theta iota kappa".to_owned();
        let output = ToolOutput::limited(text.clone(), 26);
        assert_eq!(output.truncated_from, Some(text.chars().count()));
        let total = text.chars().count();
        assert_eq!(
            output.text,
            format!(
                "alpha beta gamma delta\n\n[result truncated: showing 22 of {total} characters]"
            )
        );
    }

    #[test]
    fn multibyte_text_is_cut_on_a_character_boundary() {
        let text = "ø".repeat(100);
        let output = ToolOutput::limited(text, 10);
        assert!(output.text.starts_with(&"ø".repeat(10)));
        assert_eq!(output.truncated_from, Some(100));
    }
}

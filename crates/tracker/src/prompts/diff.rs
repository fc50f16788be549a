//! A unified diff of two prompt versions, for reviewing what a new version changed.

use similar::TextDiff;

use super::{PromptTemplate, PromptVersion};

/// The unified diff from `old` to `new`: each template as text (chat messages as `[role]`
/// blocks), then the response format and model config if either version has them.
pub fn unified_diff(old: &PromptVersion, new: &PromptVersion) -> String {
    let (a, b) = (reviewable(old), reviewable(new));
    TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(&old.uri().to_string(), &new.uri().to_string())
        .to_string()
}

fn reviewable(version: &PromptVersion) -> String {
    let mut text = match &version.template {
        PromptTemplate::Text(text) => text.clone(),
        PromptTemplate::Chat(messages) => messages
            .iter()
            .map(|m| format!("[{}]\n{}", m.role, m.content))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    for (label, value) in [
        ("response_format", &version.response_format),
        ("model_config", &version.model_config),
    ] {
        if let Some(value) = value {
            let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
            text.push_str(&format!("[{label}]\n{pretty}\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompts::ChatMessageTemplate;

    fn version(number: u32, template: PromptTemplate) -> PromptVersion {
        PromptVersion {
            name: "qa".into(),
            version: number,
            template,
            commit_message: None,
            tags: Default::default(),
            response_format: None,
            model_config: None,
            created_at_ms: 0,
            aliases: Vec::new(),
        }
    }

    #[test]
    fn the_diff_shows_changed_lines_under_version_headers() {
        let old = version(
            1,
            PromptTemplate::chat([
                ChatMessageTemplate::new("system", "Answer concisely."),
                ChatMessageTemplate::new("user", "{{ question }}"),
            ]),
        );
        let mut new = version(
            2,
            PromptTemplate::chat([
                ChatMessageTemplate::new("system", "Answer in one sentence, citing sources."),
                ChatMessageTemplate::new("user", "{{ question }}"),
            ]),
        );
        new.model_config = Some(serde_json::json!({ "temperature": 0.1 }));
        let diff = unified_diff(&old, &new);
        assert!(
            diff.starts_with("--- prompts:/qa/1\n+++ prompts:/qa/2\n"),
            "{diff}"
        );
        assert!(diff.contains("-Answer concisely.\n"), "{diff}");
        assert!(
            diff.contains("+Answer in one sentence, citing sources.\n"),
            "{diff}"
        );
        assert!(diff.contains("+[model_config]"), "{diff}");
        assert!(diff.contains(" {{ question }}"), "{diff}");
        assert_eq!(unified_diff(&old, &old), "");
    }
}

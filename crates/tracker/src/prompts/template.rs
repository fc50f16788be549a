//! Prompt templates and their rendering: Handlebars with HTML escaping off and strict mode on, so
//! MLflow's `{{ var }}` / `{{ a.b }}` templates render the same and a missing variable is an error
//! that names it.

use std::collections::BTreeSet;

use handlebars::{Handlebars, RenderErrorReason};
use serde::{Deserialize, Serialize};

/// A prompt template: one text, or a chat (a list of role/content messages, each a template).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PromptTemplate {
    /// A single text.
    Text(String),
    /// Chat messages, in order.
    Chat(Vec<ChatMessageTemplate>),
}

impl Default for PromptTemplate {
    fn default() -> Self {
        Self::Text(String::new())
    }
}

/// One message of a chat template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessageTemplate {
    /// `system`, `user`, `assistant` …
    pub role: String,
    /// The message's template.
    pub content: String,
}

impl ChatMessageTemplate {
    /// A message.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Why a template did not render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template uses a variable that was not given.
    #[error(
        "{prompt}: the template uses `{{{{ {variable} }}}}` but no value `{variable}` was given"
    )]
    MissingVariable {
        /// The prompt (`prompts:/name/version`, or "the template").
        prompt: String,
        /// The variable's path.
        variable: String,
    },
    /// The template is not valid Handlebars, or a helper failed.
    #[error("{prompt}: {message}")]
    Invalid {
        /// The prompt (`prompts:/name/version`, or "the template").
        prompt: String,
        /// What is wrong.
        message: String,
    },
}

impl TemplateError {
    /// The same error, naming the prompt version it came from.
    pub(crate) fn in_prompt(self, name: &str, version: u32) -> Self {
        let prompt = super::PromptUri::version(name, version).to_string();
        match self {
            Self::MissingVariable { variable, .. } => Self::MissingVariable { prompt, variable },
            Self::Invalid { message, .. } => Self::Invalid { prompt, message },
        }
    }
}

/// A rendered prompt, remembering which prompt version it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedPrompt {
    /// The prompt's name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// The rendered text or messages.
    pub content: RenderedContent,
}

/// What a template renders to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RenderedContent {
    /// A text template's result.
    Text(String),
    /// A chat template's messages.
    Chat(Vec<RenderedMessage>),
}

/// One rendered chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedMessage {
    /// The role.
    pub role: String,
    /// The rendered content.
    pub content: String,
}

impl RenderedPrompt {
    /// The text: a text prompt's result, or a chat prompt's messages joined by blank lines.
    pub fn text(&self) -> String {
        match &self.content {
            RenderedContent::Text(text) => text.clone(),
            RenderedContent::Chat(messages) => messages
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n\n"),
        }
    }

    /// The messages: a chat prompt's, or a text prompt's result as one `user` message.
    pub fn messages(&self) -> Vec<RenderedMessage> {
        match &self.content {
            RenderedContent::Text(text) => vec![RenderedMessage {
                role: "user".into(),
                content: text.clone(),
            }],
            RenderedContent::Chat(messages) => messages.clone(),
        }
    }
}

impl PromptTemplate {
    /// A text template.
    pub fn text(template: impl Into<String>) -> Self {
        Self::Text(template.into())
    }

    /// A chat template.
    pub fn chat(messages: impl IntoIterator<Item = ChatMessageTemplate>) -> Self {
        Self::Chat(messages.into_iter().collect())
    }

    /// `text` or `chat`: MLflow's `_mlflow_prompt_type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Chat(_) => "chat",
        }
    }

    /// The template as one string: the text, or the chat messages as a JSON list (the form
    /// MLflow stores and `sextant prompts diff` compares).
    pub fn to_stored_string(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Chat(messages) => {
                serde_json::to_string(messages).expect("chat messages serialize")
            }
        }
    }

    /// The template read back from [`PromptTemplate::to_stored_string`] and its kind.
    pub fn from_stored_string(kind: &str, stored: &str) -> Result<Self, String> {
        match kind {
            "chat" => serde_json::from_str(stored)
                .map(Self::Chat)
                .map_err(|error| {
                    format!("a chat template is not a JSON list of role/content messages: {error}")
                }),
            _ => Ok(Self::Text(stored.to_owned())),
        }
    }

    /// The variables the template uses, sorted (`{{ question }}` → `question`, `{{ a.b }}` → `a.b`).
    pub fn variables(&self) -> BTreeSet<String> {
        let mut variables = BTreeSet::new();
        match self {
            Self::Text(text) => collect_variables(text, &mut variables),
            Self::Chat(messages) => {
                for message in messages {
                    collect_variables(&message.content, &mut variables);
                }
            }
        }
        variables
    }

    /// Checks that the template (every message of a chat) is valid Handlebars.
    pub fn validate(&self) -> Result<(), TemplateError> {
        let check = |template: &str| {
            handlebars::Template::compile(template)
                .map(|_| ())
                .map_err(|error| TemplateError::Invalid {
                    prompt: "the template".into(),
                    message: error.to_string(),
                })
        };
        match self {
            Self::Text(text) => check(text),
            Self::Chat(messages) => messages.iter().try_for_each(|m| check(&m.content)),
        }
    }

    /// Renders with `variables` (an object: a struct, a map, `serde_json::json!({…})`).
    pub fn render(&self, variables: &impl Serialize) -> Result<RenderedContent, TemplateError> {
        let data = serde_json::to_value(variables).map_err(|error| TemplateError::Invalid {
            prompt: "the template".into(),
            message: format!("the variables do not serialize: {error}"),
        })?;
        let engine = engine();
        let render = |template: &str| {
            engine
                .render_template(template, &data)
                .map_err(|error| match error.reason() {
                    RenderErrorReason::MissingVariable(path) => TemplateError::MissingVariable {
                        prompt: "the template".into(),
                        variable: path.clone().unwrap_or_else(|| "?".into()),
                    },
                    _ => TemplateError::Invalid {
                        prompt: "the template".into(),
                        message: error.to_string(),
                    },
                })
        };
        match self {
            Self::Text(text) => render(text).map(RenderedContent::Text),
            Self::Chat(messages) => messages
                .iter()
                .map(|m| {
                    Ok(RenderedMessage {
                        role: m.role.clone(),
                        content: render(&m.content)?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(RenderedContent::Chat),
        }
    }
}

/// Helpers a plain `{{ name }}` would call instead of reading the variable `name`. MLflow
/// templates only substitute variables, so a variable called `len` or `raw` must stay a variable;
/// the block helpers (`if`, `unless`, `each`, `with`, `lookup`) stay available.
const SHADOWING_HELPERS: [&str; 12] = [
    "raw", "log", "len", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or", "not",
];

fn engine() -> Handlebars<'static> {
    let mut engine = Handlebars::new();
    engine.set_strict_mode(true);
    engine.register_escape_fn(handlebars::no_escape);
    for helper in SHADOWING_HELPERS {
        engine.unregister_helper(helper);
    }
    engine
}

/// The variable paths of simple expressions (`{{ x }}`, `{{{ x }}}`) and the first parameter of
/// block helpers (`{{#each items}}`); comments, partials, closers and `this`/`@…` are skipped.
fn collect_variables(template: &str, into: &mut BTreeSet<String>) {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let expression = after[..end].trim_start_matches('{').trim();
        rest = &after[end + 2..];
        let words: Vec<&str> = expression.split_whitespace().collect();
        let candidate = match expression.chars().next() {
            Some('#') => words.get(1).copied(),
            Some('!' | '/' | '>' | '^') | None => None,
            _ if words.len() == 1 && words[0] != "else" => words.first().copied(),
            _ => None,
        };
        if let Some(name) = candidate.map(|w| w.trim_start_matches('~').trim_end_matches('~'))
            && !name.is_empty()
            && !name.starts_with('@')
            && !name.starts_with("this")
            && !name.starts_with('"')
        {
            into.insert(name.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mlflow_style_variables_render_without_escaping() {
        let template =
            PromptTemplate::text("Q: {{ question }} | {{user.name}} | {{ raw }} {{len}}");
        let out = template
            .render(&json!({ "question": "a < b & c?", "user": { "name": "Ada" }, "raw": "\"x\"", "len": 3 }))
            .unwrap();
        assert_eq!(
            out,
            RenderedContent::Text("Q: a < b & c? | Ada | \"x\" 3".into())
        );
    }

    #[test]
    fn a_missing_variable_is_an_error_naming_it() {
        let template = PromptTemplate::chat([
            ChatMessageTemplate::new("system", "Be brief about {{ topic }}."),
            ChatMessageTemplate::new("user", "{{ question }}"),
        ]);
        let err = template.render(&json!({ "question": "why?" })).unwrap_err();
        assert_eq!(
            err,
            TemplateError::MissingVariable {
                prompt: "the template".into(),
                variable: "topic".into()
            }
        );
        assert!(err.to_string().contains("`topic`"), "{err}");
        let nested = PromptTemplate::text("{{ a.b }}").render(&json!({ "a": {} }));
        assert!(
            matches!(&nested, Err(TemplateError::MissingVariable { variable, .. }) if variable.contains('b')),
            "{nested:?}"
        );
    }

    #[test]
    fn chat_templates_render_each_message_and_round_trip_as_stored_json() {
        let template = PromptTemplate::chat([
            ChatMessageTemplate::new("system", "You answer about {{ topic }}."),
            ChatMessageTemplate::new("user", "{{ question }}"),
        ]);
        let RenderedContent::Chat(messages) = template
            .render(&json!({ "topic": "Rust", "question": "What is a trait?" }))
            .unwrap()
        else {
            panic!("a chat template renders messages")
        };
        assert_eq!(messages[0].content, "You answer about Rust.");
        assert_eq!(messages[1].role, "user");
        assert_eq!(messages[1].content, "What is a trait?");
        let stored = template.to_stored_string();
        assert_eq!(
            PromptTemplate::from_stored_string("chat", &stored).unwrap(),
            template
        );
        assert!(PromptTemplate::from_stored_string("chat", "not json").is_err());
        assert_eq!(
            template.variables().into_iter().collect::<Vec<_>>(),
            ["question", "topic"]
        );
    }

    #[test]
    fn variables_come_from_expressions_and_block_parameters() {
        let template = PromptTemplate::text(
            "{{!-- note --}}{{#each docs}}{{this.title}} {{@index}}{{/each}} {{{ context }}} {{ q }}{{#if flag}}x{{else}}y{{/if}}",
        );
        assert_eq!(
            template.variables().into_iter().collect::<Vec<_>>(),
            ["context", "docs", "flag", "q"]
        );
    }

    #[test]
    fn invalid_handlebars_is_reported_on_validate() {
        let err = PromptTemplate::text("{{#if x}}unclosed")
            .validate()
            .unwrap_err();
        assert!(matches!(err, TemplateError::Invalid { .. }), "{err:?}");
        assert!(PromptTemplate::text("fine {{ x }}").validate().is_ok());
    }
}

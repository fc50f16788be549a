//! Prompt construction: an agent's system prompt and question template taken from the prompt
//! registry (`prompts:/name@alias` or `prompts:/name/3`), resolved and rendered every turn as a
//! `prompt {name}` span, so moving an alias reaches a running agent within the registry cache's
//! time to live and every trace records the version it used.
//!
//! Variables a template can use: `question` (the user's message), `context` (the numbered
//! sources retrieved for it, empty without memory) and the agent file's `[variables]`.

use std::sync::Arc;

use serde_json::{Map, Value};
use sextant_memory::{RetrievedChunk, format_sources};
use sextant_tracker::conventions as sc;
use sextant_tracker::prompts::{
    PromptRegistry, PromptTemplate, PromptUri, PromptVersionRef, RegistryError, RenderedMessage,
    RenderedPrompt,
};
use tracing::Instrument;
use tracing::field::Empty;

use crate::agent::mark_failed;
use crate::chat::{Message, Role};
use crate::memory::question_with_sources;

/// Where an agent's prompts come from.
#[derive(Clone)]
pub struct AgentPrompts {
    /// The registry (usually behind a cache).
    pub registry: Arc<dyn PromptRegistry>,
    /// The system prompt, if it comes from the registry.
    pub system: Option<PromptUri>,
    /// The template of the turn's messages (text: the user message; chat: its messages, whose
    /// system messages become the system prompt), if any.
    pub template: Option<PromptUri>,
    /// Extra variables for both.
    pub variables: Map<String, Value>,
}

/// The messages a turn starts from, and the prompt versions that made them.
#[derive(Debug, Clone, Default)]
pub struct ConstructedPrompt {
    /// The system prompt, if the registry gave one.
    pub system: Option<String>,
    /// The messages after the history: few-shot turns and the user's message, last.
    pub messages: Vec<Message>,
    /// The versions used, system prompt first.
    pub versions: Vec<PromptVersionRef>,
}

impl AgentPrompts {
    /// Resolves and renders the prompts for `question` with `sources` (retrieved context).
    /// `capture_content` records variables and the rendered result on the spans.
    pub async fn construct(
        &self,
        question: &str,
        sources: Option<&[RetrievedChunk]>,
        capture_content: bool,
    ) -> Result<ConstructedPrompt, RegistryError> {
        let mut variables = self.variables.clone();
        variables.insert("question".into(), Value::String(question.to_owned()));
        let context = sources.map(format_sources).unwrap_or_default();
        variables.insert("context".into(), Value::String(context));
        let variables = Value::Object(variables);

        let mut constructed = ConstructedPrompt::default();
        if let Some(uri) = &self.system {
            let (_, rendered) = self.render(uri, &variables, capture_content).await?;
            constructed.versions.push(version_of(&rendered));
            constructed.system = Some(rendered.text());
        }
        let Some(uri) = &self.template else {
            constructed.messages.push(user_message(question, sources));
            return Ok(constructed);
        };
        let (template, rendered) = self.render(uri, &variables, capture_content).await?;
        let uses_context = template.variables().contains("context");
        constructed.versions.push(version_of(&rendered));
        let mut system_parts = Vec::new();
        for RenderedMessage { role, content } in rendered.messages() {
            match role.as_str() {
                "system" | "developer" => system_parts.push(content),
                "assistant" => constructed
                    .messages
                    .push(Message::assistant(content, Vec::new())),
                _ => constructed.messages.push(Message::user(content)),
            }
        }
        if !system_parts.is_empty() {
            constructed.system = Some(system_parts.join("\n\n"));
        }
        // A template that does not place the sources itself gets them around its last user message.
        if !uses_context
            && let Some(chunks) = sources
            && let Some(last) = constructed
                .messages
                .iter_mut()
                .rev()
                .find(|m| m.role == Role::User)
        {
            last.content = question_with_sources(&last.content, chunks);
        }
        if !constructed.messages.iter().any(|m| m.role == Role::User) {
            constructed.messages.push(user_message(question, sources));
        }
        Ok(constructed)
    }

    /// One registry lookup and render, traced as `prompt {name}`: the version's template and what
    /// it rendered to.
    async fn render(
        &self,
        uri: &PromptUri,
        variables: &Value,
        capture_content: bool,
    ) -> Result<(PromptTemplate, RenderedPrompt), RegistryError> {
        let span = tracing::info_span!(
            sc::span_name::PROMPT,
            { sc::OTEL_NAME } = %format!("{} {}", sc::span_name::PROMPT, uri.name),
            { sc::OTEL_KIND } = "internal",
            { sc::OTEL_STATUS_CODE } = Empty,
            { sc::OTEL_STATUS_DESCRIPTION } = Empty,
            { sc::GEN_AI_PROMPT_NAME } = %uri.name,
            { sc::SEXTANT_PROMPT_VERSION } = Empty,
            { sc::SEXTANT_PROMPT_ALIAS } = uri.alias_name(),
            { sc::SEXTANT_PROMPT_URI } = Empty,
            { sc::MLFLOW_SPAN_INPUTS } = Empty,
            { sc::MLFLOW_SPAN_OUTPUTS } = Empty,
            { sc::ERROR_TYPE } = Empty,
        );
        if capture_content {
            let inputs = serde_json::json!({ "uri": uri.to_string(), "variables": variables });
            span.record(sc::MLFLOW_SPAN_INPUTS, inputs.to_string());
        }
        let result = async {
            let version = self.registry.load(uri).await?;
            let rendered = version.render(variables)?;
            Ok::<_, RegistryError>((version.template, rendered))
        }
        .instrument(span.clone())
        .await;
        match &result {
            Ok((_, rendered)) => {
                span.record(sc::SEXTANT_PROMPT_VERSION, i64::from(rendered.version));
                span.record(
                    sc::SEXTANT_PROMPT_URI,
                    PromptUri::version(&rendered.name, rendered.version).to_string(),
                );
                if capture_content {
                    span.record(
                        sc::MLFLOW_SPAN_OUTPUTS,
                        serde_json::to_string(&rendered.messages()).unwrap_or_default(),
                    );
                }
            }
            Err(error) => mark_failed(&span, error.error_type(), &error.to_string()),
        }
        result
    }
}

fn version_of(rendered: &RenderedPrompt) -> PromptVersionRef {
    PromptVersionRef {
        name: rendered.name.clone(),
        version: rendered.version,
    }
}

/// The value of [`sc::MLFLOW_LINKED_PROMPTS`]: the versions as MLflow lists linked prompts.
pub(crate) fn linked_prompts(versions: &[PromptVersionRef]) -> String {
    let list: Vec<Value> = versions
        .iter()
        .map(|v| serde_json::json!({ "name": v.name, "version": v.version.to_string() }))
        .collect();
    sextant_tracker::mlflow::python_json(&Value::Array(list))
}

/// The user's message: the question, with the sources when there are any.
pub(crate) fn user_message(question: &str, sources: Option<&[RetrievedChunk]>) -> Message {
    match sources {
        Some(chunks) => Message::user(question_with_sources(question, chunks)),
        None => Message::user(question),
    }
}

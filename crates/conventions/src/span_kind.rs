//! Classifying a span by its operation or name into the kinds MLflow and OpenInference render.

use crate::{operation, span_name};

/// What a span is, in the terms that MLflow and OpenInference (Phoenix) render.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GenAiSpanKind {
    /// An agent turn (`invoke_agent`).
    Agent,
    /// A chat or completion call to a model (`chat`).
    ChatModel,
    /// A tool call (`execute_tool`).
    Tool,
    /// A retrieval or vector search.
    Retriever,
    /// Computing embeddings.
    Embedding,
    /// Reranking documents.
    Reranker,
    /// Prompt construction and other parsing steps.
    Parser,
    /// Any other step.
    Chain,
}

impl GenAiSpanKind {
    /// The `mlflow.spanType` value.
    pub fn mlflow_span_type(self) -> &'static str {
        match self {
            Self::Agent => "AGENT",
            Self::ChatModel => "CHAT_MODEL",
            Self::Tool => "TOOL",
            Self::Retriever => "RETRIEVER",
            Self::Embedding => "EMBEDDING",
            Self::Reranker => "RERANKER",
            Self::Parser => "PARSER",
            Self::Chain => "CHAIN",
        }
    }

    /// The `openinference.span.kind` value (OpenInference has no parser kind: a parser is a chain).
    pub fn openinference_kind(self) -> &'static str {
        match self {
            Self::Agent => "AGENT",
            Self::ChatModel => "LLM",
            Self::Tool => "TOOL",
            Self::Retriever => "RETRIEVER",
            Self::Embedding => "EMBEDDING",
            Self::Reranker => "RERANKER",
            Self::Parser | Self::Chain => "CHAIN",
        }
    }

    /// Classifies a span from its `gen_ai.operation.name` value and, when that is absent or
    /// unknown, from the first word of its span name.
    ///
    /// ```
    /// use sextant_conventions::GenAiSpanKind;
    /// assert_eq!(GenAiSpanKind::classify(Some("chat"), "chat gpt-4o"), GenAiSpanKind::ChatModel);
    /// assert_eq!(GenAiSpanKind::classify(None, "prompt rag-system"), GenAiSpanKind::Parser);
    /// assert_eq!(GenAiSpanKind::classify(None, "plan_query"), GenAiSpanKind::Chain);
    /// ```
    pub fn classify(operation_name: Option<&str>, span_name: &str) -> Self {
        operation_name
            .and_then(Self::from_operation_name)
            .or_else(|| Self::from_operation_name(first_word(span_name)))
            .or_else(|| Self::from_span_name(span_name))
            .unwrap_or(Self::Chain)
    }

    /// The kind a `gen_ai.operation.name` value stands for, if it is one we know.
    pub fn from_operation_name(operation_name: &str) -> Option<Self> {
        match operation_name {
            operation::CHAT | operation::TEXT_COMPLETION | operation::GENERATE_CONTENT => {
                Some(Self::ChatModel)
            }
            operation::INVOKE_AGENT | operation::CREATE_AGENT => Some(Self::Agent),
            operation::EXECUTE_TOOL => Some(Self::Tool),
            operation::EMBEDDINGS => Some(Self::Embedding),
            operation::RETRIEVAL => Some(Self::Retriever),
            _ => None,
        }
    }

    fn from_span_name(span_name: &str) -> Option<Self> {
        match first_word(span_name) {
            span_name::PROMPT => Some(Self::Parser),
            span_name::RERANK => Some(Self::Reranker),
            span_name::VECTOR_SEARCH => Some(Self::Retriever),
            _ => None,
        }
    }
}

fn first_word(span_name: &str) -> &str {
    span_name.split_whitespace().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_map_to_span_kinds() {
        let cases = [
            (
                Some("chat"),
                "chat m",
                GenAiSpanKind::ChatModel,
                "CHAT_MODEL",
                "LLM",
            ),
            (
                Some("invoke_agent"),
                "invoke_agent a",
                GenAiSpanKind::Agent,
                "AGENT",
                "AGENT",
            ),
            (
                Some("execute_tool"),
                "execute_tool t",
                GenAiSpanKind::Tool,
                "TOOL",
                "TOOL",
            ),
            (
                Some("embeddings"),
                "embeddings m",
                GenAiSpanKind::Embedding,
                "EMBEDDING",
                "EMBEDDING",
            ),
            (
                Some("retrieval"),
                "retrieval c",
                GenAiSpanKind::Retriever,
                "RETRIEVER",
                "RETRIEVER",
            ),
            (None, "prompt rag", GenAiSpanKind::Parser, "PARSER", "CHAIN"),
            (
                None,
                "rerank",
                GenAiSpanKind::Reranker,
                "RERANKER",
                "RERANKER",
            ),
            (
                None,
                "vector_search docs",
                GenAiSpanKind::Retriever,
                "RETRIEVER",
                "RETRIEVER",
            ),
            (None, "plan_query", GenAiSpanKind::Chain, "CHAIN", "CHAIN"),
            (
                Some("unheard_of"),
                "chat m",
                GenAiSpanKind::ChatModel,
                "CHAT_MODEL",
                "LLM",
            ),
        ];
        for (operation, name, kind, mlflow, openinference) in cases {
            let classified = GenAiSpanKind::classify(operation, name);
            assert_eq!(classified, kind, "{operation:?} {name}");
            assert_eq!(classified.mlflow_span_type(), mlflow);
            assert_eq!(classified.openinference_kind(), openinference);
        }
    }
}

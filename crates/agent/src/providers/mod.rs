//! Chat-model providers: one module per backend, each converting between its wire types and
//! [`crate::chat`]'s types, and [`build`], which makes the one an agent configuration names.

mod config;
#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "ollama")]
pub mod ollama;
#[cfg(feature = "openai")]
pub mod openai;

pub use config::{LocalSettings, OllamaSettings, OpenAiSettings, ProvidersConfig};

use std::sync::Arc;

use crate::build_context::BuildContext;
use crate::chat::ChatModel;
#[cfg_attr(
    not(any(feature = "local", feature = "ollama", feature = "openai")),
    allow(unused_imports)
)]
use crate::config::{ModelConfig, ProviderKind};
use crate::error::ChatError;
use crate::retry::ResilientChatModel;

/// The chat model that `model` names, wrapped in the configured retries and per-call timeout.
///
/// The `local` provider pulls its model file on first use (with a progress bar on a terminal).
// Built without any provider, every arm is the error: the rest is unreachable there.
#[cfg_attr(
    not(any(feature = "local", feature = "ollama", feature = "openai")),
    allow(unreachable_code, unused_variables)
)]
pub async fn build(
    model: &ModelConfig,
    context: &BuildContext,
) -> Result<Arc<dyn ChatModel>, ChatError> {
    let policy = context.retry.policy();
    let inner: Arc<dyn ChatModel> = match model.provider {
        #[cfg(feature = "openai")]
        ProviderKind::Openai => {
            let settings = &context.providers.openai;
            let base_url = model.base_url.as_deref().unwrap_or(&settings.base_url);
            let api_key = context
                .providers
                .openai_key(base_url, model.api_key_env.as_deref())
                .map_err(|message| ChatError::Request {
                    provider: "openai".into(),
                    message,
                })?;
            Arc::new(
                openai::OpenAiChatModel::new(base_url, api_key, &model.name)
                    .with_extra_body(model.extra_body.clone().unwrap_or_default()),
            )
        }
        #[cfg(feature = "ollama")]
        ProviderKind::Ollama => {
            let host = model
                .base_url
                .as_deref()
                .unwrap_or(&context.providers.ollama.host);
            Arc::new(ollama::OllamaChatModel::new(host, &model.name)?)
        }
        #[cfg(feature = "local")]
        ProviderKind::Local => {
            let options = local::LocalModelOptions {
                threads: context.providers.local.threads,
                ..Default::default()
            };
            let cache = context
                .model_cache()
                .map_err(|e| ChatError::Local(e.to_string()))?;
            Arc::new(local::LocalChatModel::load_from_cache(&cache, options).await?)
        }
        #[allow(unreachable_patterns)]
        provider => return Err(ChatError::Unsupported(provider.feature())),
    };
    Ok(Arc::new(ResilientChatModel::new(inner, policy)))
}

/// Runs `producer` on a Tokio task and exposes what it sends as a [`ChatStream`]; dropping the
/// stream closes the channel, which tells the producer to stop.
#[cfg(any(feature = "ollama", feature = "openai"))]
pub(crate) fn spawn_chat_stream<F, Fut>(producer: F) -> crate::chat::ChatStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<crate::chat::ChatChunk, ChatError>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(producer(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// An error and its causes on one line: transport errors hide the useful part (refused, DNS, TLS)
/// in their sources.
#[cfg(any(feature = "ollama", feature = "openai"))]
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

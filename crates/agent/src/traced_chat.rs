//! One model call traced the GenAI way: a `chat {model}` client span with the request's
//! settings, token usage, finish reasons, content (when captured) and error status, and the
//! `gen_ai.client.*` duration and token metrics, and the call's cost by the price table. The agent loop, the session summariser and the
//! LLM judges all call the model through [`traced_chat`], so their spans read the same.

use std::time::Instant;

use futures::StreamExt;
use sextant_tracker::conventions as sc;
use sextant_tracker::{GenAiMetricAttributes, GenAiMetrics};
use tracing::Instrument;
use tracing::field::Empty;

use crate::agent::mark_failed;
use crate::chat::{ChatChunk, ChatModel, ChatRequest, ChatResponse, Message};
use crate::error::ChatError;
use crate::prices::PriceTable;
use crate::span_content;

/// Calls `model` with `request` inside a `chat {model}` span (a child of the current span),
/// streaming content pieces to `on_content` when given; records `metrics`. The response's usage
/// carries its cost when `prices` has the model.
pub(crate) async fn traced_chat(
    model: &dyn ChatModel,
    metrics: &GenAiMetrics,
    prices: &PriceTable,
    capture_content: bool,
    request: &ChatRequest,
    on_content: Option<&(dyn Fn(&str) + Send + Sync)>,
) -> Result<ChatResponse, ChatError> {
    let model_name = model.model();
    let span = tracing::info_span!(
        sc::operation::CHAT,
        { sc::OTEL_NAME } = %format!("{} {model_name}", sc::operation::CHAT),
        { sc::OTEL_KIND } = "client",
        { sc::OTEL_STATUS_CODE } = Empty,
        { sc::OTEL_STATUS_DESCRIPTION } = Empty,
        { sc::GEN_AI_OPERATION_NAME } = sc::operation::CHAT,
        { sc::GEN_AI_PROVIDER_NAME } = %model.provider(),
        { sc::GEN_AI_REQUEST_MODEL } = %model_name,
        { sc::GEN_AI_REQUEST_TEMPERATURE } = Empty,
        { sc::GEN_AI_REQUEST_MAX_TOKENS } = Empty,
        { sc::GEN_AI_REQUEST_TOP_P } = Empty,
        { sc::GEN_AI_REQUEST_FREQUENCY_PENALTY } = Empty,
        { sc::GEN_AI_REQUEST_PRESENCE_PENALTY } = Empty,
        { sc::GEN_AI_REQUEST_SEED } = Empty,
        { sc::GEN_AI_OUTPUT_TYPE } = request.options.output_schema.as_ref().map(|_| "json"),
        { sc::GEN_AI_RESPONSE_MODEL } = Empty,
        { sc::GEN_AI_RESPONSE_ID } = Empty,
        { sc::GEN_AI_RESPONSE_FINISH_REASONS } = Empty,
        { sc::GEN_AI_USAGE_INPUT_TOKENS } = Empty,
        { sc::GEN_AI_USAGE_OUTPUT_TOKENS } = Empty,
        { sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS } = Empty,
        { sc::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS } = Empty,
        { sc::SEXTANT_USAGE_COST } = Empty,
        { sc::SEXTANT_USAGE_COST_CURRENCY } = Empty,
        { sc::MLFLOW_LLM_COST } = Empty,
        { sc::GEN_AI_INPUT_MESSAGES } = Empty,
        { sc::GEN_AI_OUTPUT_MESSAGES } = Empty,
        { sc::GEN_AI_SYSTEM_INSTRUCTIONS } = Empty,
        { sc::GEN_AI_TOOL_DEFINITIONS } = Empty,
        { sc::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK } = Empty,
        { sc::ERROR_TYPE } = Empty,
    );
    if let Some(t) = request.options.temperature {
        span.record(sc::GEN_AI_REQUEST_TEMPERATURE, f64::from(t));
    }
    let options = &request.options;
    if let Some(n) = options.max_tokens {
        span.record(sc::GEN_AI_REQUEST_MAX_TOKENS, i64::from(n));
    }
    for (key, value) in [
        (sc::GEN_AI_REQUEST_TOP_P, options.top_p),
        (
            sc::GEN_AI_REQUEST_FREQUENCY_PENALTY,
            options.frequency_penalty,
        ),
        (
            sc::GEN_AI_REQUEST_PRESENCE_PENALTY,
            options.presence_penalty,
        ),
    ] {
        if let Some(value) = value {
            span.record(key, f64::from(value));
        }
    }
    if let Some(seed) = options.seed {
        span.record(sc::GEN_AI_REQUEST_SEED, seed as i64);
    }

    if capture_content {
        let (system, rest): (Vec<&Message>, Vec<&Message>) = request
            .messages
            .iter()
            .partition(|m| m.role == crate::Role::System);
        if let Some(system) = system.first() {
            span.record(
                sc::GEN_AI_SYSTEM_INSTRUCTIONS,
                span_content::system_instructions(&system.content),
            );
        }
        let rest: Vec<Message> = rest.into_iter().cloned().collect();
        span.record(
            sc::GEN_AI_INPUT_MESSAGES,
            span_content::input_messages(&rest),
        );
        if !request.tools.is_empty() {
            span.record(
                sc::GEN_AI_TOOL_DEFINITIONS,
                span_content::tool_definitions(&request.tools),
            );
        }
    }

    let started = Instant::now();
    let mut result = async {
        match on_content {
            None => model.chat(request).await,
            Some(sink) => {
                let mut stream = model.chat_stream(request).await?;
                let mut first_chunk = None;
                while let Some(item) = stream.next().await {
                    match item? {
                        ChatChunk::Content(piece) => {
                            first_chunk.get_or_insert_with(|| started.elapsed());
                            sink(&piece);
                        }
                        ChatChunk::Done(response) => {
                            let ttfc = first_chunk.unwrap_or_else(|| started.elapsed());
                            tracing::Span::current().record(
                                sc::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
                                ttfc.as_secs_f64(),
                            );
                            return Ok(response);
                        }
                    }
                }
                Err(ChatError::InvalidResponse {
                    provider: model.provider().into(),
                    message: "the stream ended without a final response".into(),
                })
            }
        }
    }
    .instrument(span.clone())
    .await;
    let elapsed = started.elapsed();

    let mut attributes = GenAiMetricAttributes {
        operation_name: sc::operation::CHAT,
        provider_name: model.provider(),
        request_model: Some(model_name),
        response_model: None,
    };
    let mut error_type = None;
    match &mut result {
        Ok(response) => {
            let cost = prices.cost(
                model.provider(),
                &response.model,
                model_name,
                &response.usage,
            );
            response.usage.cost_nanos = cost.map(|cost| cost.total_nanos());
            record_usage(&span, &response.usage, cost, &prices.currency);
            span.record(sc::GEN_AI_RESPONSE_MODEL, response.model.as_str());
            if let Some(id) = &response.id {
                span.record(sc::GEN_AI_RESPONSE_ID, id.as_str());
            }
            span.record(
                sc::GEN_AI_RESPONSE_FINISH_REASONS,
                span_content::finish_reasons(&response.finish_reason),
            );
            if capture_content {
                span.record(
                    sc::GEN_AI_OUTPUT_MESSAGES,
                    span_content::output_messages(response),
                );
            }
            attributes.response_model = Some(response.model.as_str());
            if let Some(cost) = response.usage.cost() {
                metrics.record_cost(&attributes, cost, &prices.currency);
            }
            metrics.record_token_usage(
                &attributes,
                Some(response.usage.input_tokens),
                Some(response.usage.output_tokens),
            );
        }
        Err(error) => {
            mark_failed(&span, &error.error_type(), &error.to_string());
            error_type = Some(error.error_type());
        }
    }
    metrics.record_operation_duration(&attributes, elapsed, error_type.as_deref());
    result
}

/// Usage and cost on a chat span: the GenAI token counts (cached and reasoning ones where the
/// provider gave them), `sextant.usage.cost` with its currency, and MLflow's `mlflow.llm.cost`
/// (`{"input_cost", "output_cost", "total_cost"}`, which MLflow reads as US dollars, so only for a
/// USD table) so MLflow shows the cost Sextant computed instead of guessing its own.
fn record_usage(
    span: &tracing::Span,
    usage: &crate::chat::Usage,
    cost: Option<crate::prices::Cost>,
    currency: &str,
) {
    span.record(sc::GEN_AI_USAGE_INPUT_TOKENS, usage.input_tokens);
    span.record(sc::GEN_AI_USAGE_OUTPUT_TOKENS, usage.output_tokens);
    if usage.cached_input_tokens > 0 {
        span.record(
            sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
            usage.cached_input_tokens,
        );
    }
    if usage.reasoning_tokens > 0 {
        span.record(
            sc::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
            usage.reasoning_tokens,
        );
    }
    let Some(cost) = cost else {
        return;
    };
    let units = |nanos: u64| nanos as f64 / 1e9;
    span.record(sc::SEXTANT_USAGE_COST, units(cost.total_nanos()));
    span.record(sc::SEXTANT_USAGE_COST_CURRENCY, currency);
    if currency == "USD" {
        span.record(
            sc::MLFLOW_LLM_COST,
            serde_json::json!({
                "input_cost": units(cost.input_nanos),
                "output_cost": units(cost.output_nanos),
                "total_cost": units(cost.total_nanos()),
            })
            .to_string(),
        );
    }
}

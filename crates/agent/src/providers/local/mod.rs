//! The embedded chat model: SmolLM2-135M-Instruct (Q4_1 GGUF) run in-process on the CPU by Sextant's
//! own llama engine (the `sextant-llama` crate).
//!
//! It needs no server and no network once its file is in the [`ModelCache`]. The tokenizer is rebuilt
//! from the GGUF metadata ([`LocalTokenizer`]); prompts are ChatML, with tools described in the
//! system message in SmolLM2's own function-calling convention (signatures as a JSON list in
//! `<tools></tools>`, calls as `<tool_call>[{"name": …, "arguments": {…}}]</tool_call>`, results as
//! `<tool_response>` blocks in a `tool` turn).
//!
//! # When the model calls a tool
//!
//! A 135M-parameter model does not reliably volunteer a well-formed tool call, so the decision is
//! made by policy and the call is written under constraints:
//!
//! * **a tool call** when the request has tools and `tool_choice` is [`ToolChoice::Required`], or
//!   [`ToolChoice::Auto`] and the last message is a user message (no tool result yet in this turn);
//! * **text** with [`ToolChoice::None`] (the tools are then left out of the prompt), and with
//!   [`ToolChoice::Auto`] after a tool result or an assistant message (the tools stay described, so
//!   the model sees the whole multi-step conversation).
//!
//! A tool call is generated token by token by constrained decoding driven by the tool's JSON Schema:
//! the structure (`<tool_call>[\n{"name": "` …) is fed to the model without sampling, the tool name is
//! chosen among the request's tool names, and each property value is sampled under a mask for its
//! type (strings, numbers, integers, booleans, enums, nested objects, arrays). The arguments are
//! therefore always valid JSON that validates against the schema's types and required properties.
//! Only one call is produced per response.
//!
//! # Threads
//!
//! Generation runs on a blocking thread inside a dedicated rayon pool of
//! [`LocalModelOptions::threads`] threads (default: `SEXTANT_THREADS`, else all cores), one request at
//! a time; the engine's matrix products and attention share out their rows over that pool.

mod chatml;
mod constrained;
mod routing;
mod tokenizer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use candle_core::quantized::gguf_file;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

pub use tokenizer::LocalTokenizer;
use tokenizer::Utf8Decoder;

use crate::chat::{
    ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, Role, ToolCall,
    ToolChoice, Usage,
};
use crate::error::ChatError;
use crate::model_files::{ModelCache, SMOLLM2_135M_INSTRUCT, SMOLLM2_GGUF};

/// The provider name recorded as `gen_ai.provider.name`.
pub const PROVIDER: &str = "sextant.local";

/// The model name reported for the default GGUF file.
pub const DEFAULT_MODEL_NAME: &str = "SmolLM2-135M-Instruct";

/// Tokens generated when a request sets no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 512;

/// Prompt tokens fed to the model per forward pass (bounds the attention matrix's memory).
const PROMPT_CHUNK: usize = 512;

/// How the embedded model is run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalModelOptions {
    /// Inference threads; `None` takes `SEXTANT_THREADS`, else every core.
    pub threads: Option<usize>,
    /// Tokens generated when a request sets no `max_tokens` (default [`DEFAULT_MAX_TOKENS`]).
    pub max_tokens: Option<u32>,
    /// Context window in tokens; `None` takes the GGUF's `context_length`, and no value exceeds it.
    pub context_length: Option<usize>,
    /// The name [`ChatModel::model`] reports; `None` derives it from the file name.
    pub model_name: Option<String>,
}

impl LocalModelOptions {
    /// The thread count these options resolve to.
    pub fn resolved_threads(&self) -> usize {
        self.threads
            .or_else(|| {
                std::env::var("SEXTANT_THREADS")
                    .ok()
                    .and_then(|value| value.trim().parse().ok())
            })
            .filter(|threads| *threads > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
    }
}

fn local(message: impl std::fmt::Display) -> ChatError {
    ChatError::Local(message.to_string())
}

/// SmolLM2-135M-Instruct run in-process: a [`ChatModel`] that needs no server.
///
/// ```no_run
/// # async fn demo() -> Result<(), sextant_agent::ChatError> {
/// use sextant_agent::providers::local::{LocalChatModel, LocalModelOptions};
/// use sextant_agent::{ChatModel, ChatRequest, Message};
/// let model = LocalChatModel::load_default(LocalModelOptions::default()).await?;
/// let request = ChatRequest { messages: vec![Message::user("Name a colour.")], ..Default::default() };
/// println!("{}", model.chat(&request).await?.content);
/// # Ok(()) }
/// ```
pub struct LocalChatModel {
    engine: Arc<Mutex<Engine>>,
    tokenizer: Arc<LocalTokenizer>,
    pool: Arc<rayon::ThreadPool>,
    name: String,
    threads: usize,
    context_length: usize,
    default_max_tokens: u32,
}

impl std::fmt::Debug for LocalChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChatModel")
            .field("model", &self.name)
            .field("threads", &self.threads)
            .field("context_length", &self.context_length)
            .finish_non_exhaustive()
    }
}

impl LocalChatModel {
    /// Loads a llama-architecture GGUF file (blocking: reads the whole file).
    pub fn load(
        gguf_path: impl AsRef<Path>,
        options: LocalModelOptions,
    ) -> Result<Self, ChatError> {
        let path = gguf_path.as_ref();
        let mut file = std::fs::File::open(path)
            .map_err(|err| local(format!("cannot open {}: {err}", path.display())))?;
        let content = gguf_file::Content::read(&mut file).map_err(|err| {
            local(format!(
                "{} is not a readable GGUF file: {err}",
                path.display()
            ))
        })?;
        let tokenizer = Arc::new(LocalTokenizer::from_gguf(&content)?);
        let model = sextant_llama::Llama::from_gguf(&content, &mut file).map_err(|err| {
            local(format!(
                "cannot load the weights of {}: {err}",
                path.display()
            ))
        })?;
        let trained_context = model.hyper().context_length;
        let context_length = options
            .context_length
            .unwrap_or(trained_context)
            .clamp(1, trained_context);

        let im_end = tokenizer.token_id("<|im_end|>").ok_or_else(|| {
            local("the GGUF vocabulary has no <|im_end|> token: it is not a ChatML model")
        })?;
        let threads = options.resolved_threads();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|index| format!("sextant-local-{index}"))
            .build()
            .map_err(|err| local(format!("cannot start {threads} inference threads: {err}")))?;
        let name = options
            .model_name
            .clone()
            .unwrap_or_else(|| model_name_for(path));
        Ok(Self {
            engine: Arc::new(Mutex::new(Engine {
                model,
                tokenizer: Arc::clone(&tokenizer),
                im_end,
            })),
            tokenizer,
            pool: Arc::new(pool),
            name,
            threads,
            context_length,
            default_max_tokens: options.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        })
    }

    /// Makes sure the default model is in the cache (fetching it if needed, see
    /// [`ModelCache::ensure`]) and loads it.
    pub async fn load_default(options: LocalModelOptions) -> Result<Self, ChatError> {
        let cache = ModelCache::from_env().map_err(local)?;
        Self::load_from_cache(&cache, options).await
    }

    /// Like [`LocalChatModel::load_default`], with a given cache.
    pub async fn load_from_cache(
        cache: &ModelCache,
        options: LocalModelOptions,
    ) -> Result<Self, ChatError> {
        let dir = cache.ensure(&SMOLLM2_135M_INSTRUCT).await.map_err(local)?;
        let path = dir.join(SMOLLM2_GGUF);
        tokio::task::spawn_blocking(move || Self::load(path, options))
            .await
            .map_err(|err| local(format!("loading stopped: {err}")))?
    }

    /// The tokenizer rebuilt from the GGUF metadata.
    pub fn tokenizer(&self) -> &LocalTokenizer {
        &self.tokenizer
    }

    /// The context window in tokens (prompt plus generated).
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// The inference threads of this model's pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs one request on a blocking thread, sending text pieces to `pieces` when given.
    async fn run(
        &self,
        request: &ChatRequest,
        pieces: Option<mpsc::UnboundedSender<Result<ChatChunk, ChatError>>>,
    ) -> Result<ChatResponse, ChatError> {
        let job = Job::new(request, self.default_max_tokens, self.context_length)?;
        let engine = Arc::clone(&self.engine);
        let pool = Arc::clone(&self.pool);
        let name = self.name.clone();
        let span = tracing::debug_span!("local_generation", model = %name);
        // A caller that stops waiting (a timeout, a client gone) stops the generation at the next
        // token instead of leaving it to hold the engine and the turn's spans open.
        let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
        let cancelled = Arc::clone(&cancel.0);
        spawn_traced(span, move || {
            let mut guard = engine
                .lock()
                .map_err(|_| local("an earlier generation panicked; reload the model"))?;
            let engine: &mut Engine = &mut guard;
            pool.install(|| job.run(engine, &name, pieces, Some(cancelled)))
        })
        .await
        .map_err(|err| local(format!("generation stopped: {err}")))?
    }
}

/// Runs `work` on the blocking pool inside `span`, under the caller's tracing dispatcher. The pool's
/// threads have none of their own unless a global one is set; without it, closing `span` there
/// would not reach the caller's subscriber and the parent `chat` span would never be released.
fn spawn_traced<T: Send + 'static>(
    span: tracing::Span,
    work: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    tokio::task::spawn_blocking(move || {
        tracing::dispatcher::with_default(&dispatch, move || {
            let _entered = span.enter();
            work()
        })
    })
}

/// `SmolLM2-135M-Instruct.Q4_1.gguf` → `SmolLM2-135M-Instruct`.
fn model_name_for(path: &Path) -> String {
    let file = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    if file == SMOLLM2_GGUF {
        return DEFAULT_MODEL_NAME.to_string();
    }
    file.split('.')
        .next()
        .filter(|stem| !stem.is_empty())
        .unwrap_or(DEFAULT_MODEL_NAME)
        .to_string()
}

#[async_trait]
impl ChatModel for LocalChatModel {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.name
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ChatError> {
        self.run(request, None).await
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ChatError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let job = Job::new(request, self.default_max_tokens, self.context_length)?;
        let engine = Arc::clone(&self.engine);
        let pool = Arc::clone(&self.pool);
        let name = self.name.clone();
        let span = tracing::debug_span!("local_generation", model = %name);
        spawn_traced(span, move || {
            let result = match engine.lock() {
                Ok(mut guard) => {
                    let engine: &mut Engine = &mut guard;
                    pool.install(|| job.run(engine, &name, Some(sender.clone()), None))
                }
                Err(_) => Err(local("an earlier generation panicked; reload the model")),
            };
            // A closed receiver means the caller stopped listening: nothing left to tell.
            let _ = sender.send(result.map(ChatChunk::Done));
        });
        Ok(Box::pin(
            tokio_stream::wrappers::UnboundedReceiverStream::new(receiver),
        ))
    }
}

/// The model weights and what a forward pass needs; one generation at a time holds it.
struct Engine {
    model: sextant_llama::Llama,
    tokenizer: Arc<LocalTokenizer>,
    im_end: u32,
}

impl Engine {
    /// Feeds `tokens` at `pos` and returns the logits after the last one.
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, ChatError> {
        self.model
            .forward(tokens, pos)
            .map_err(|err| local(format!("inference failed: {err}")))
    }
}

/// Prompt markup that ends a text answer: the model starting a tool call, echoing a tool result or a
/// RAG source block, or a turn marker written as text. None of it is ever part of an answer.
const MARKUP_STOPS: [&str; 7] = [
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<|im_",
    "<source ",
    "</source>",
];

/// What a request asks the model for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    /// A text answer.
    Text,
    /// A tool call, to this tool of the request when it is known.
    ToolCall(Option<usize>),
    /// The router decides between a text answer and a tool call (see `routing.rs`).
    Route,
}

/// One request, validated and rendered, ready to run on the engine.
struct Job {
    step: Step,
    /// The conversation; its prompt is rendered once the step is known.
    messages: Vec<crate::chat::Message>,
    tools: Vec<crate::chat::ToolDefinition>,
    max_tokens: usize,
    context_length: usize,
    stop: Vec<String>,
    penalties: Penalties,
    sampler: Sampler,
    /// The schema a text answer is decoded under, when the request names one.
    output_schema: Option<serde_json::Value>,
}

impl Job {
    fn new(
        request: &ChatRequest,
        default_max_tokens: u32,
        context_length: usize,
    ) -> Result<Self, ChatError> {
        if request.messages.is_empty() {
            return Err(ChatError::Request {
                provider: PROVIDER.into(),
                message: "the request has no messages".into(),
            });
        }
        let options = &request.options;
        let last_role = request.messages.last().map(|message| message.role);
        let named = chatml::last_question(&request.messages)
            .and_then(|(_, question)| routing::mentioned_tool(question, &request.tools));
        let step = if request.tools.is_empty() {
            Step::Text
        } else {
            match options.tool_choice {
                ToolChoice::None => Step::Text,
                ToolChoice::Required => Step::ToolCall(named),
                // A question the user just asked: call the tool it names, else let the router choose.
                ToolChoice::Auto if last_role == Some(Role::User) => {
                    named.map_or(Step::Route, |index| Step::ToolCall(Some(index)))
                }
                // After tool results (or anything else): answer.
                ToolChoice::Auto => Step::Text,
            }
        };
        Ok(Self {
            step,
            messages: request.messages.clone(),
            tools: request.tools.clone(),
            max_tokens: options.max_tokens.unwrap_or(default_max_tokens).max(1) as usize,
            context_length,
            stop: options
                .stop
                .iter()
                .filter(|stop| !stop.is_empty())
                .cloned()
                .chain(MARKUP_STOPS.iter().map(|stop| (*stop).to_owned()))
                .collect(),
            penalties: Penalties {
                frequency: options.frequency_penalty.unwrap_or(0.0),
                presence: options.presence_penalty.unwrap_or(0.0),
            },
            sampler: Sampler::new(options.temperature, options.top_p, options.seed),
            output_schema: options.output_schema.as_ref().map(|o| o.schema.clone()),
        })
    }

    fn run(
        self,
        engine: &mut Engine,
        model_name: &str,
        pieces: Option<mpsc::UnboundedSender<Result<ChatChunk, ChatError>>>,
        cancelled: Option<Arc<AtomicBool>>,
    ) -> Result<ChatResponse, ChatError> {
        let tokenizer = Arc::clone(&engine.tokenizer);
        let mut routing_tokens = 0;
        let step = match self.step {
            Step::Route => {
                let question =
                    chatml::last_question(&self.messages).map_or("", |(_, question)| question);
                let routed = routing::route(engine, question, &self.tools, self.context_length)?;
                routing_tokens = routed.prompt_tokens;
                match routed.route {
                    routing::Route::Answer => Step::Text,
                    routing::Route::Tool(index) => Step::ToolCall(Some(index)),
                }
            }
            step => step,
        };
        // A text step after tool results answers from them (see `chatml::render_answer`).
        let after_tools = self
            .messages
            .last()
            .is_some_and(|message| message.role == Role::Tool);
        let (prompt, answer_prefix) = match step {
            Step::ToolCall(tool) => (chatml::render_call(&self.messages, &self.tools, tool), None),
            // A typed answer starts with its JSON, not with the usual answer prefix.
            _ if after_tools && self.output_schema.is_some() => {
                (chatml::render_answer(&self.messages), None)
            }
            _ if after_tools => (
                chatml::render_answer(&self.messages),
                answer_prefix(&self.messages),
            ),
            _ => (chatml::render_plain(&self.messages), None),
        };
        let prompt_tokens = prompt.encode(&tokenizer)?;
        if prompt_tokens.len() >= self.context_length {
            return Err(ChatError::Request {
                provider: PROVIDER.into(),
                message: format!(
                    "the prompt has {} tokens but the model's context holds {}; shorten the conversation",
                    prompt_tokens.len(),
                    self.context_length
                ),
            });
        }
        let limit = self
            .max_tokens
            .min(self.context_length - prompt_tokens.len());
        let mut session = Session::start(
            engine,
            &prompt_tokens,
            self.sampler,
            self.context_length,
            limit,
        )?;
        session.cancelled = cancelled;

        let mut response = ChatResponse {
            content: String::new(),
            tool_calls: Vec::new(),
            usage: Usage::default(),
            finish_reason: FinishReason::Stop,
            model: model_name.to_string(),
            id: None,
        };
        if let Step::ToolCall(tool) = step {
            let (name, arguments) =
                constrained::generate_tool_call(&mut session, &self.tools, tool)?;
            response.tool_calls.push(ToolCall {
                id: "call_0".into(),
                name,
                arguments: arguments.to_string(),
            });
            response.finish_reason = FinishReason::ToolCalls;
        } else if let Some(schema) = &self.output_schema {
            let value = constrained::generate_value(&mut session, schema)?;
            response.content = value.to_string();
            if let Some(pieces) = &pieces {
                let _ = pieces.send(Ok(ChatChunk::Content(response.content.clone())));
            }
        } else {
            let (content, finish_reason) = generate_text(
                &mut session,
                answer_prefix.as_deref(),
                &self.stop,
                self.penalties,
                pieces.as_ref(),
            )?;
            response.content = content;
            response.finish_reason = finish_reason;
        }
        response.usage = Usage {
            input_tokens: (routing_tokens + prompt_tokens.len()) as u64,
            output_tokens: session.generated as u64,
            ..Usage::default()
        };
        Ok(response)
    }
}

/// The state of one generation: position in the KV cache, the latest logits, forced text not yet
/// fed, and how many tokens were produced.
pub(crate) struct Session<'a> {
    engine: &'a mut Engine,
    pos: usize,
    logits: Vec<f32>,
    sampler: Sampler,
    /// Forced text waiting to be fed; fed as one span so it tokenizes as naturally as possible.
    pending: String,
    /// Tokens produced after the prompt (sampled or forced).
    pub(crate) generated: usize,
    context_length: usize,
    limit: usize,
    /// Set when the caller stopped waiting.
    cancelled: Option<Arc<AtomicBool>>,
}

/// Sets the flag when dropped: the future that owns it finished or was dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl<'a> Session<'a> {
    /// Feeds the prompt, computing only the tokens after the part the KV cache already holds (the
    /// start of the previous prompt it shares, such as the system message of a conversation).
    fn start(
        engine: &'a mut Engine,
        prompt: &[u32],
        sampler: Sampler,
        context_length: usize,
        limit: usize,
    ) -> Result<Self, ChatError> {
        let reused = engine.model.reusable_prefix(prompt);
        let mut session = Self {
            engine,
            pos: reused,
            logits: Vec::new(),
            sampler,
            pending: String::new(),
            generated: 0,
            context_length,
            limit,
            cancelled: None,
        };
        for chunk in prompt[reused..].chunks(PROMPT_CHUNK) {
            session.feed_tokens(chunk)?;
        }
        Ok(session)
    }

    pub(crate) fn tokenizer(&self) -> Arc<LocalTokenizer> {
        Arc::clone(&self.engine.tokenizer)
    }

    /// Whether the output budget (max tokens or context) is spent.
    pub(crate) fn exhausted(&self) -> bool {
        self.generated >= self.limit || self.pos >= self.context_length
    }

    fn feed_tokens(&mut self, tokens: &[u32]) -> Result<(), ChatError> {
        if tokens.is_empty() {
            return Ok(());
        }
        if self.pos + tokens.len() > self.context_length {
            return Err(local(format!(
                "the context of {} tokens is full ({} used, {} more needed)",
                self.context_length,
                self.pos,
                tokens.len()
            )));
        }
        self.logits = self.engine.forward(tokens, self.pos)?;
        self.pos += tokens.len();
        Ok(())
    }

    /// Queues text the model must "say" without sampling; it is tokenized as text, so a tool name or
    /// enum value that spells a control token stays text.
    pub(crate) fn force(&mut self, text: &str) {
        self.pending.push_str(text);
    }

    /// Feeds the queued forced text.
    fn flush(&mut self) -> Result<(), ChatError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let text = std::mem::take(&mut self.pending);
        let tokens = self.engine.tokenizer.encode(&text)?;
        self.generated += tokens.len();
        self.feed_tokens(&tokens)
    }

    /// Samples the next token among those `allowed` (after feeding any forced text). `None` when no
    /// token is allowed.
    pub(crate) fn sample(
        &mut self,
        allowed: &dyn Fn(u32) -> bool,
    ) -> Result<Option<u32>, ChatError> {
        self.flush()?;
        Ok(self.sampler.pick(&self.logits, allowed))
    }

    /// The model's favourite next token, unconstrained (after feeding any forced text).
    pub(crate) fn preferred(&mut self) -> Result<Option<u32>, ChatError> {
        self.flush()?;
        Ok(argmax(&self.logits, &|_| true))
    }

    /// Accepts a sampled token: counts it and feeds it.
    pub(crate) fn accept(&mut self, token: u32) -> Result<(), ChatError> {
        self.generated += 1;
        self.feed_tokens(&[token])
    }
}

/// Penalties on tokens the answer already holds (OpenAI's semantics): each logit is lowered by
/// `frequency` times the token's count so far plus `presence` once it has appeared. Prompt tokens
/// are not counted, so copying from a source or a tool result is never penalised.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Penalties {
    frequency: f32,
    presence: f32,
}

impl Penalties {
    fn active(self) -> bool {
        self.frequency != 0.0 || self.presence != 0.0
    }

    fn apply(self, logits: &mut [f32], counts: &HashMap<u32, u32>) {
        for (&token, &count) in counts {
            if let Some(logit) = logits.get_mut(token as usize) {
                *logit -= self.frequency * count as f32 + self.presence;
            }
        }
    }
}

/// Sentences shorter than this (in bytes, trimmed) may repeat: "Yes." twice is not a loop.
const LOOP_SENTENCE_MIN: usize = 12;
/// Fragments repeated back to back are loops from this length (bytes) up to the next.
const LOOP_RUN_MIN: usize = 6;
const LOOP_RUN_MAX: usize = 64;

/// Watches an answer for a sentence it already wrote, or a fragment it writes three times in a row
/// (`2026-12-03, 2026-12-03, 2026-12-03, …`): a small model that starts repeating itself does not
/// stop until the token limit. The repeat is cut and generation ends; text that could be the start
/// of a repeat is held back from the stream until it is known not to be.
#[derive(Debug, Default)]
struct LoopGuard {
    /// The answer's completed sentences, normalised.
    sentences: Vec<String>,
    /// Where the sentence being written starts in the text.
    start: usize,
}

impl LoopGuard {
    fn normalise(sentence: &str) -> String {
        sentence
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    }

    /// After text was added: `Err(at)` when the sentence just completed repeats an earlier one or a
    /// fragment was written a third time in a row (the answer should end at `at`); else how many
    /// trailing bytes to hold back from the stream.
    fn check(&mut self, text: &str) -> Result<usize, usize> {
        let run_held = Self::repeated_run(text)?;
        self.check_sentence(text)
            .map(|sentence_held| sentence_held.max(run_held))
    }

    /// Consecutive copies of one fragment of `LOOP_RUN_MIN..=LOOP_RUN_MAX` bytes with a letter or
    /// digit in it at the end of `text`: a third copy is a loop (`Err` at the second copy's start);
    /// from the second copy on, the run after the first copy is held back.
    fn repeated_run(text: &str) -> Result<usize, usize> {
        let bytes = text.as_bytes();
        let mut held = 0;
        for period in LOOP_RUN_MIN..=LOOP_RUN_MAX.min(bytes.len() / 2) {
            // How many trailing bytes equal the byte one period earlier.
            let repeated = (period..bytes.len())
                .rev()
                .take_while(|&at| bytes[at] == bytes[at - period])
                .count();
            if repeated < period {
                continue;
            }
            let first = &bytes[bytes.len() - repeated - period..bytes.len() - repeated];
            if !first.iter().any(u8::is_ascii_alphanumeric) {
                continue; // `---|---|---|` and other rules
            }
            let mut second = bytes.len() - repeated;
            if repeated >= 2 * period {
                while !text.is_char_boundary(second) {
                    second += 1;
                }
                return Err(second);
            }
            held = held.max(repeated);
        }
        Ok(held)
    }

    fn check_sentence(&mut self, text: &str) -> Result<usize, usize> {
        let current = &text[self.start..];
        let sentence = Self::normalise(current);
        if current.ends_with(['.', '!', '?', '\n']) {
            if sentence.len() >= LOOP_SENTENCE_MIN && self.sentences.contains(&sentence) {
                return Err(self.start);
            }
            if !sentence.is_empty() {
                self.sentences.push(sentence);
            }
            self.start = text.len();
            return Ok(0);
        }
        let may_repeat = !sentence.is_empty()
            && self.sentences.iter().any(|earlier| {
                earlier.len() >= LOOP_SENTENCE_MIN && earlier.starts_with(&sentence)
            });
        Ok(if may_repeat { current.len() } else { 0 })
    }
}

/// What the answer after tool calls starts with, when the turn's only tool result is a number:
/// `The answer is 87.`, which the model then continues. Told that a calculator returned 87, the
/// 135M model still "computes" `12 * 7 + 3 = 19` itself in about one answer in five, whatever the
/// wording (issue #19's measurements); a number the tool computed is the answer, so it is written
/// for the model. Any other result (text, JSON, an error) is left to the model.
fn answer_prefix(messages: &[crate::chat::Message]) -> Option<String> {
    let (at, _) = chatml::last_question(messages)?;
    let mut results = messages[at..]
        .iter()
        .filter(|message| message.role == Role::Tool);
    let (Some(result), None) = (results.next(), results.next()) else {
        return None;
    };
    let number = result.content.trim();
    serde_json::from_str::<serde_json::Number>(number)
        .ok()
        .map(|_| format!("The answer is {number}."))
}

/// Free text generation until `<|im_end|>`, end of sequence, a stop sequence, a repeated sentence
/// or the token limit; the text starts with `prefix` when given, fed to the model as its own.
fn generate_text(
    session: &mut Session<'_>,
    prefix: Option<&str>,
    stop: &[String],
    penalties: Penalties,
    pieces: Option<&mpsc::UnboundedSender<Result<ChatChunk, ChatError>>>,
) -> Result<(String, FinishReason), ChatError> {
    let tokenizer = session.tokenizer();
    let (im_end, eos) = (session.engine.im_end, tokenizer.eos_id);
    let mut decoder = Utf8Decoder::default();
    let mut text = String::new();
    let mut sent = 0;
    let mut counts: HashMap<u32, u32> = HashMap::new();
    let mut guard = LoopGuard::default();
    if let Some(prefix) = prefix {
        session.force(prefix);
        text.push_str(prefix);
        let _ = guard.check(&text);
    }
    let send = |text: &str, sent: &mut usize, upto: usize| -> bool {
        if upto > *sent {
            if let Some(pieces) = pieces
                && pieces
                    .send(Ok(ChatChunk::Content(text[*sent..upto].to_string())))
                    .is_err()
            {
                return false;
            }
            *sent = upto;
        }
        true
    };

    let finish = loop {
        if session.exhausted() {
            break FinishReason::Length;
        }
        if session
            .cancelled
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            // Nobody waits for the answer any more.
            break FinishReason::Stop;
        }
        session.flush()?;
        if penalties.active() {
            penalties.apply(&mut session.logits, &counts);
        }
        let Some(token) = session.sample(&|_| true)? else {
            break FinishReason::Stop;
        };
        if token == im_end || token == eos {
            session.generated += 1;
            break FinishReason::Stop;
        }
        if tokenizer.is_special(token) {
            // Another control token (`<|im_start|>`, `<file_sep>` …) would start a new turn or
            // document: the answer is over.
            session.generated += 1;
            break FinishReason::Stop;
        }
        *counts.entry(token).or_default() += 1;
        text.push_str(&decoder.push(tokenizer.token_bytes(token)));
        if let Some(at) = stop
            .iter()
            .filter_map(|stop| text.find(stop.as_str()))
            .min()
        {
            text.truncate(at);
            session.generated += 1;
            break FinishReason::Stop;
        }
        let held_for_loop = match guard.check(&text) {
            Ok(held) => held,
            Err(at) => {
                text.truncate(at);
                session.generated += 1;
                break FinishReason::Stop;
            }
        };
        // Text that could be the start of a stop sequence waits until it is known not to be.
        let held = stop
            .iter()
            .map(|stop| partial_suffix(&text, stop))
            .max()
            .unwrap_or(0)
            .max(held_for_loop);
        if !send(&text, &mut sent, text.len() - held) {
            // The stream's receiver is gone: nobody wants the rest.
            session.generated += 1;
            break FinishReason::Stop;
        }
        session.accept(token)?;
    };
    text.push_str(&decoder.finish());
    if let Some(at) = stop
        .iter()
        .filter_map(|stop| text.find(stop.as_str()))
        .min()
    {
        text.truncate(at);
    }
    let end = text.trim_end().len();
    text.truncate(end.max(sent.min(text.len())));
    send(&text, &mut sent, text.len());
    Ok((text, finish))
}

/// The length of the longest suffix of `text` that is a proper prefix of `stop`, on a char boundary.
fn partial_suffix(text: &str, stop: &str) -> usize {
    (1..stop.len().min(text.len() + 1))
        .rev()
        .find(|&len| {
            text.is_char_boundary(text.len() - len) && stop.starts_with(&text[text.len() - len..])
        })
        .unwrap_or(0)
}

fn argmax(logits: &[f32], allowed: &dyn Fn(u32) -> bool) -> Option<u32> {
    let mut best: Option<(u32, f32)> = None;
    for (id, &logit) in logits.iter().enumerate() {
        let id = id as u32;
        if logit.is_nan() || !allowed(id) {
            continue;
        }
        if best.is_none_or(|(_, top)| logit > top) {
            best = Some((id, logit));
        }
    }
    best.map(|(id, _)| id)
}

/// Greedy when the temperature is 0 or unset, else temperature and nucleus (top-p) sampling.
pub(crate) struct Sampler {
    temperature: Option<f32>,
    top_p: f32,
    rng: StdRng,
}

impl Sampler {
    fn new(temperature: Option<f32>, top_p: Option<f32>, seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            temperature: temperature.filter(|temperature| *temperature > 1e-6),
            top_p: top_p.filter(|p| *p > 0.0 && *p < 1.0).unwrap_or(1.0),
            rng,
        }
    }

    fn pick(&mut self, logits: &[f32], allowed: &dyn Fn(u32) -> bool) -> Option<u32> {
        let Some(temperature) = self.temperature else {
            return argmax(logits, allowed);
        };
        let mut candidates: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(id, logit)| !logit.is_nan() && allowed(*id as u32))
            .map(|(id, logit)| (id as u32, *logit / temperature))
            .collect();
        let top = candidates
            .iter()
            .map(|(_, logit)| *logit)
            .fold(f32::NEG_INFINITY, f32::max);
        if candidates.is_empty() || !top.is_finite() {
            return candidates.first().map(|(id, _)| *id);
        }
        for candidate in &mut candidates {
            candidate.1 = (candidate.1 - top).exp();
        }
        candidates.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        let total: f32 = candidates.iter().map(|(_, weight)| weight).sum();
        let mut kept = 0.0;
        let mut cut = candidates.len();
        for (index, (_, weight)) in candidates.iter().enumerate() {
            kept += weight;
            if kept >= self.top_p * total {
                cut = index + 1;
                break;
            }
        }
        candidates.truncate(cut);
        let mut target = self.rng.random::<f32>() * kept.min(total);
        for (id, weight) in &candidates {
            if target < *weight {
                return Some(*id);
            }
            target -= weight;
        }
        candidates.last().map(|(id, _)| *id)
    }
}

/// Where the default model's GGUF file is in `cache` (whether or not it is there yet).
pub fn default_gguf_path(cache: &ModelCache) -> PathBuf {
    cache.model_dir(&SMOLLM2_135M_INSTRUCT).join(SMOLLM2_GGUF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_partial_stop_sequences() {
        assert_eq!(partial_suffix("hello wo", "world"), 2);
        assert_eq!(partial_suffix("hello", "world"), 0);
        assert_eq!(partial_suffix("é", "éa"), 2);
    }

    /// Feeds `pieces` to a guard as tokens would arrive; what it decided at the end.
    fn guard_over(pieces: &[&str]) -> (String, Result<usize, usize>) {
        let mut guard = LoopGuard::default();
        let mut text = String::new();
        let mut last = Ok(0);
        for piece in pieces {
            text.push_str(piece);
            last = guard.check(&text);
            if let Err(at) = last {
                text.truncate(at);
                break;
            }
        }
        (text, last)
    }

    #[test]
    fn a_repeated_sentence_ends_the_answer_before_it() {
        let (text, last) = guard_over(&[
            "The answer is 87.",
            " It is the result.",
            " The answer",
            " is 87.",
        ]);
        assert_eq!(text.trim_end(), "The answer is 87. It is the result.");
        assert!(last.is_err());
        // Held back while it could be a repeat, released once it is not.
        let (_, held) = guard_over(&["The answer is 87.", " The answer"]);
        assert_eq!(held, Ok(" The answer".len()));
        let (_, held) = guard_over(&["The answer is 87.", " The answer was"]);
        assert_eq!(held, Ok(0));
        // Short sentences may repeat.
        let (text, last) = guard_over(&["Yes.", " Yes.", " Done"]);
        assert_eq!((text.as_str(), last), ("Yes. Yes. Done", Ok(0)));
    }

    #[test]
    fn a_fragment_written_three_times_in_a_row_ends_the_answer() {
        let (text, last) = guard_over(&[
            "Paris, 14.6,",
            " 2026-12-03,",
            " 2026-12-03,",
            " 2026-12-03,",
            " 2026",
        ]);
        // The run starts where the repetition does, one period back: at the comma before it.
        assert_eq!(text, "Paris, 14.6, 2026-12-03");
        assert!(last.is_err());
        // The second copy (from the comma before it) is held back while it may become a loop,
        // released when it does not.
        let (_, held) = guard_over(&["Paris, 2026-12-03,", " 2026-12-03,"]);
        assert_eq!(held, Ok(", 2026-12-03,".len()));
        let (_, held) = guard_over(&["Paris, 2026-12-03,", " 2026-12-03, and Rome"]);
        assert_eq!(held, Ok(0));
        // Rules, short words and ordinary text are not loops.
        let (text, last) = guard_over(&["|---|---|---|---|", " very very very good"]);
        assert_eq!(
            (text.as_str(), last),
            ("|---|---|---|---| very very very good", Ok(0))
        );
    }

    #[test]
    fn only_a_single_numeric_tool_result_starts_the_answer() {
        use crate::chat::Message;
        let call = ToolCall {
            id: "call_0".into(),
            name: "calculator".into(),
            arguments: "{}".into(),
        };
        let turn = |results: &[&str]| {
            let mut messages = vec![
                Message::user("What is 12 * 7 + 3?"),
                Message::assistant("", vec![call.clone()]),
            ];
            messages.extend(results.iter().map(|r| Message::tool_result(&call, *r)));
            answer_prefix(&messages)
        };
        assert_eq!(turn(&["87"]).as_deref(), Some("The answer is 87."));
        assert_eq!(turn(&[" -1.75\n"]).as_deref(), Some("The answer is -1.75."));
        assert_eq!(turn(&["error: unexpected `t`"]), None);
        assert_eq!(turn(&[r#"{"timezone": "UTC"}"#]), None);
        assert_eq!(turn(&["87", "88"]), None);
        // No tool result since the question: nothing to start with.
        assert_eq!(turn(&[]), None);
    }

    #[test]
    fn penalties_lower_only_tokens_already_written() {
        let penalties = Penalties {
            frequency: 0.5,
            presence: 1.0,
        };
        let mut logits = vec![3.0, 3.0, 3.0];
        let counts = HashMap::from([(1, 2), (2, 1)]);
        penalties.apply(&mut logits, &counts);
        assert_eq!(logits, vec![3.0, 1.0, 1.5]);
        assert!(!Penalties::default().active());
    }

    #[test]
    fn greedy_sampling_respects_the_mask() {
        let mut sampler = Sampler::new(None, None, None);
        assert_eq!(sampler.pick(&[0.0, 3.0, 1.0], &|id| id != 1), Some(2));
        let mut sampler = Sampler::new(Some(0.7), Some(0.9), Some(7));
        assert_eq!(sampler.pick(&[0.0, 30.0, 1.0], &|id| id != 0), Some(1));
    }
}

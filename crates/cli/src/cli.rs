//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Sextant: an agent runtime that observes itself.
#[derive(Debug, Parser)]
#[command(name = "sextant", version, about, long_about = None)]
pub struct Cli {
    /// A configuration file overriding the built-in defaults (configs/sextant.toml).
    #[arg(long, global = true, env = "SEXTANT_CONFIG")]
    pub config: Option<PathBuf>,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask an agent one question; prints the answer and the turn's span tree.
    Run(RunArgs),
    /// Talk with an agent, turn after turn, streaming its answers; resumes a session by id.
    Chat(ChatArgs),
    /// Evaluate an agent over a dataset with code scorers and LLM judges; logs a tracking run.
    Eval(EvalArgs),
    /// Serve agents over HTTP: OpenAI-compatible chat completions, Sextant's invoke API, traces,
    /// health and Prometheus metrics ([serve] in the configuration).
    Serve(ServeArgs),
    /// Serve the agents, `search_memory` and the prompt registry's prompts as an MCP server over
    /// stdin/stdout (for an MCP client that spawns `sextant mcp`; `sextant serve` offers the same
    /// over HTTP at /mcp).
    Mcp,
    /// API keys for `sextant serve` ([serve.auth]).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Stored conversations.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Read the local trace store: list, show, search, and give feedback on traces.
    #[command(subcommand)]
    Traces(TracesCommand),
    /// Evaluation datasets built from traces, in versions (`datasets:/NAME` for `sextant eval`).
    #[command(subcommand)]
    Datasets(DatasetsCommand),
    /// Replay recorded turns against the agent as it is now, without model calls: reports the
    /// first divergence of each (a regression suite that runs offline); exits 1 if any diverged.
    Replay(ReplayArgs),
    /// Durable turns: list them, decide the tool calls that wait for approval, resume a turn
    /// after a crash or a decision ([state] in the configuration).
    #[command(subcommand)]
    Turns(TurnsCommand),
    /// The span export pipeline: what each remote sink's spool holds, and sending it now.
    #[command(subcommand)]
    Telemetry(TelemetryCommand),
    /// The model registry (agent configurations, versions, aliases, stages) and the default
    /// model files.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Tracking runs: list, show (with a metric's history), compare.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Tracking experiments.
    #[command(subcommand)]
    Experiments(ExperimentsCommand),
    /// Read files (text, Markdown, HTML, PDF) into a memory collection; unchanged files are skipped.
    Ingest(IngestArgs),
    /// Inspect and search memory collections.
    #[command(subcommand)]
    Memory(MemoryCommand),
    /// The prompt registry: versioned prompts and their aliases (embedded, or MLflow with
    /// SEXTANT_TRACKING_URI).
    #[command(subcommand)]
    Prompts(PromptsCommand),
}

/// `sextant prompts …`.
#[derive(Debug, Subcommand)]
pub enum PromptsCommand {
    /// List prompts with their latest version and aliases.
    List {
        /// Only names containing this text.
        #[arg(long)]
        name: Option<String>,
        /// Only prompts with this tag, `KEY=VALUE` (repeatable).
        #[arg(long = "tag", value_parser = parse_key_value)]
        tags: Vec<(String, String)>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a prompt (NAME: its versions) or one version (NAME/3, NAME@production, prompts:/…).
    Show {
        /// The prompt, optionally with /VERSION or @ALIAS.
        prompt: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sync prompt files (a .toml file or a directory of them) to the registry: a version is
    /// registered only where its template changed; aliases follow the files.
    Push {
        /// A prompt file or a directory of them (e.g. configs/prompts/).
        path: PathBuf,
        /// Report what would change without writing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Register a new version of NAME from a file: text, or a JSON list of {role, content}
    /// messages (a chat prompt).
    Register {
        /// The prompt's name.
        name: String,
        /// The template file.
        #[arg(long, short = 'f')]
        file: PathBuf,
        /// The commit message.
        #[arg(long, short = 'm')]
        message: Option<String>,
        /// A version tag, `KEY=VALUE` (repeatable).
        #[arg(long = "tag", value_parser = parse_key_value)]
        tags: Vec<(String, String)>,
        /// Also point this alias at the new version.
        #[arg(long)]
        alias: Option<String>,
    },
    /// Point ALIAS of NAME at VERSION, or remove it with --delete.
    Alias {
        /// The prompt's name.
        name: String,
        /// The alias, e.g. production.
        alias: String,
        /// The version it should point at.
        #[arg(required_unless_present = "delete")]
        version: Option<u32>,
        /// Remove the alias.
        #[arg(long, conflicts_with = "version")]
        delete: bool,
    },
    /// Show a unified diff of two versions of NAME.
    Diff {
        /// The prompt's name.
        name: String,
        /// The old version.
        from: u32,
        /// The new version.
        to: u32,
    },
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}

/// `sextant ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files or directories (searched recursively for .txt, .md, .html and .pdf).
    #[arg(required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// The collection to fill (created if missing).
    #[arg(long, short = 'c', default_value = "kb")]
    pub collection: String,
    /// Print one JSON object with the counts instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `sextant memory …`.
#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// A collection's size and dimension.
    Info {
        /// The collection.
        collection: String,
    },
    /// Retrieve the chunks an agent would get for a query (embed, search, rerank).
    Search {
        /// The collection.
        collection: String,
        /// The query.
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
        /// How many chunks.
        #[arg(long, short = 'k')]
        top_k: Option<usize>,
        /// Payload conditions, e.g. `source=docs/memory.md,chunk_index=0`.
        #[arg(long)]
        filter: Option<String>,
        /// Print the chunks as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a collection and its points.
    Delete {
        /// The collection.
        collection: String,
    },
}

/// `sextant eval`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvalArgs {
    /// `compare`, or nothing to run an evaluation.
    #[command(subcommand)]
    pub command: Option<EvalCommand>,
    /// The agent: a file or a `models:/` URI (default: the built-in assistant).
    #[arg(long)]
    pub agent: Option<String>,
    /// Rows of {inputs, expectations}: .jsonl, .json, .csv, .yaml, or a stored dataset
    /// `datasets:/NAME` (its newest version) or `datasets:/NAME/VERSION` (`sextant datasets`).
    #[arg(long, required_unless_present = "replay")]
    pub dataset: Option<PathBuf>,
    /// Instead of a dataset, replay stored turns as a regression suite (no model calls; exits 1
    /// on a divergence): `agent=NAME[,since=2026-12-01][,limit=N]`, the same as `sextant replay
    /// --agent-name NAME …`.
    #[arg(long, conflicts_with = "dataset")]
    pub replay: Option<String>,
    /// Replace the agent's system prompt: text, or a registry URI (`prompts:/name/2`) — to
    /// evaluate one prompt version against another.
    #[arg(long)]
    pub system_prompt: Option<String>,
    /// Replace the agent's turn template with a registry URI (`prompts:/qa-prompt@staging`).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Scorers, comma-separated: is_concise[:WORDS], is_definitive, uses_citations, is_grounded,
    /// exact_match, latency_under:MS, tool_called:NAME, and the judges correctness, guidelines,
    /// relevance_to_query, retrieval_groundedness.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "is_concise,is_definitive"
    )]
    pub scorers: Vec<String>,
    /// The judges' model: an agent file or `models:/` URI whose model judges (default: the
    /// evaluated agent's model).
    #[arg(long)]
    pub judge: Option<String>,
    /// Rows answered at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// The tracking experiment (default: [tracking] experiment).
    #[arg(long)]
    pub experiment: Option<String>,
    /// Do not log a tracking run (nor the assessments on the traces).
    #[arg(long)]
    pub no_log: bool,
    /// Print the whole report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sextant eval …`.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Two evaluation runs side by side: per-scorer pass rates, the rows whose verdict changed,
    /// and an HTML page with a chart of the per-scorer results.
    Compare {
        /// The first (baseline) evaluation run.
        run_a: String,
        /// The second evaluation run.
        run_b: String,
        /// Where to write the HTML chart (default: `eval-compare-<A>-<B>.html`).
        #[arg(long)]
        html: Option<PathBuf>,
        /// Do not write the HTML chart.
        #[arg(long, conflicts_with = "html")]
        no_html: bool,
        /// Print the comparison as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `sextant keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new random API key: prints the key once (it is stored nowhere) and the `[[keys]]`
    /// entry holding its SHA-256 digest, or appends that entry to `--file`.
    New {
        /// The principal's user id (`user.id` on its turns, the owner of its sessions and traces).
        #[arg(long)]
        user: String,
        /// Its roles: user (default), service (acts for end users it names), admin (reads every
        /// trace). Repeatable.
        #[arg(long = "role", value_enum)]
        roles: Vec<KeyRole>,
        /// Append the entry to this keys file (`[serve.auth] keys_file`), creating it.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
}

/// A role of an API key.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KeyRole {
    /// Talks to agents as itself.
    User,
    /// A backend acting for its end users.
    Service,
    /// Reads every trace.
    Admin,
}

/// `sextant serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen, e.g. 127.0.0.1:8080 or 0.0.0.0:8080 (default: [serve] addr); port 0
    /// picks a free port (the address is printed).
    #[arg(long)]
    pub addr: Option<String>,
}

/// `sextant chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The agent: a file or a `models:/` URI (default: the built-in assistant). A resumed session
    /// keeps talking to the agent given here.
    #[arg(long)]
    pub agent: Option<String>,
    /// Resume this session.
    #[arg(long)]
    pub session: Option<String>,
    /// Who is talking (`user.id` on every turn's trace).
    #[arg(long)]
    pub user: Option<String>,
}

/// `sextant sessions …`.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions, most recently active first.
    List {
        /// How many.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replay a session: each turn's question, answer and trace id.
    Show {
        /// The session id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `sextant replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Trace ids (or turn ids) of recorded turns (`sextant turns list` shows them).
    #[arg(required_unless_present = "agent_name", conflicts_with = "agent_name")]
    pub ids: Vec<String>,
    /// Replay the completed turns of the agent with this name instead (newest first).
    #[arg(long)]
    pub agent_name: Option<String>,
    /// With --agent-name: only turns written at or after this time (2026-12-01 or RFC 3339).
    #[arg(long, requires = "agent_name")]
    pub since: Option<String>,
    /// With --agent-name: at most this many turns.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// The agent to replay with (a file or `models:/` URI); default: the one each turn recorded.
    #[arg(long)]
    pub agent: Option<String>,
    /// Refresh the recordings instead: run each selected turn's question again on the live
    /// model, recording a new turn (the newest recording of a question is the one replayed).
    #[arg(long)]
    pub record: bool,
    /// Print JSON reports.
    #[arg(long)]
    pub json: bool,
}

impl ReplayArgs {
    /// The arguments `sextant eval --replay FILTER` stands for (`agent=NAME[,since=…][,limit=N]`);
    /// the error names the part it does not understand.
    pub fn from_filter(filter: &str, agent: Option<String>, json: bool) -> Result<Self, String> {
        let mut args = ReplayArgs {
            ids: Vec::new(),
            agent_name: None,
            since: None,
            limit: 50,
            agent,
            record: false,
            json,
        };
        for part in filter.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("agent", name)) => args.agent_name = Some(name.trim().to_owned()),
                Some(("since", since)) => args.since = Some(since.trim().to_owned()),
                Some(("limit", limit)) => {
                    args.limit = limit
                        .trim()
                        .parse()
                        .map_err(|_| format!("--replay: `{part}`: the limit is not a number"))?;
                }
                _ => {
                    return Err(format!(
                        "--replay: `{part}` is not agent=NAME, since=DATE or limit=N"
                    ));
                }
            }
        }
        if args.agent_name.is_none() {
            return Err("--replay needs agent=NAME".into());
        }
        Ok(args)
    }
}

/// `sextant turns …`.
#[derive(Debug, Subcommand)]
pub enum TurnsCommand {
    /// List turns, most recently written first.
    List {
        /// Only turns waiting for approval.
        #[arg(long, conflicts_with = "status")]
        pending: bool,
        /// Only turns in this status: running, awaiting_approval, completed, failed.
        #[arg(long, value_parser = parse_turn_status)]
        status: Option<sextant_agent::turn_state::TurnStatus>,
        /// How many.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One turn: where it is, its tool calls, and the calls waiting for a decision.
    Show {
        /// The turn id.
        id: String,
        /// Print the whole stored state as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a call that waits (as written, or with `--edit` arguments); when nothing else
    /// waits, the turn goes on here.
    Approve {
        /// The turn id.
        id: String,
        /// The call id (`sextant turns show ID` lists them).
        call: String,
        /// Run it with these arguments instead (a JSON object, checked against the tool's schema).
        #[arg(long)]
        edit: Option<String>,
        #[command(flatten)]
        decide: DecideArgs,
    },
    /// Deny a call that waits; the model is told why.
    Deny {
        /// The turn id.
        id: String,
        /// The call id.
        call: String,
        /// What the model is told.
        #[arg(long, short = 'm')]
        message: Option<String>,
        #[command(flatten)]
        decide: DecideArgs,
    },
    /// Go on with a turn from its last checkpoint: after a crash (finished calls are not
    /// repeated), a failed step, or decisions made with `--no-resume`.
    Resume {
        /// The turn id.
        id: String,
        #[command(flatten)]
        run: ResumeArgs,
    },
}

/// How `sextant turns approve|deny` decides.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Who decides (recorded on the decision's span and assessment; default: $USER).
    #[arg(long)]
    pub by: Option<String>,
    /// Only record the decision; another process (or `sextant turns resume`) goes on.
    #[arg(long)]
    pub no_resume: bool,
    #[command(flatten)]
    pub run: ResumeArgs,
}

/// How a turn is resumed.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The agent to resume with (a file or `models:/` URI); default: the one the turn recorded.
    #[arg(long)]
    pub agent: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Do not print the span tree.
    #[arg(long)]
    pub no_tree: bool,
}

fn parse_turn_status(text: &str) -> Result<sextant_agent::turn_state::TurnStatus, String> {
    sextant_agent::turn_state::TurnStatus::parse(text).ok_or_else(|| {
        format!("`{text}` is not a turn status: running, awaiting_approval, completed or failed")
    })
}

/// `sextant run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent: a file, or a registered version (`models:/rag-agent@production`,
    /// `models:/rag-agent/2`). Default: configs/agents/assistant.toml, built in.
    #[arg(long, conflicts_with = "workflow")]
    pub agent: Option<String>,
    /// Run a workflow file (`configs/workflows/research.toml`) instead of an agent: the question
    /// is its input; the tree is rooted at `invoke_workflow`, and the run has per-node metrics.
    #[arg(long)]
    pub workflow: Option<std::path::PathBuf>,
    /// The experiment the run is logged to (default: `[tracking] experiment`).
    #[arg(long)]
    pub experiment: Option<String>,
    /// Do not log this execution as a tracking run.
    #[arg(long)]
    pub no_log: bool,
    /// Print one JSON object (answer, trace_id, usage, tool calls …) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Do not print the span tree.
    #[arg(long)]
    pub no_tree: bool,
    /// Stream the answer as it is generated.
    #[arg(long)]
    pub stream: bool,
    /// The question.
    #[arg(required = true, num_args = 1..)]
    pub question: Vec<String>,
}

/// `sextant traces …`.
#[derive(Debug, Subcommand)]
pub enum TracesCommand {
    /// List recent traces, newest first.
    List {
        /// How many.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one trace's spans as a tree (or JSON).
    Show {
        /// The trace id or a unique prefix of it; default: the latest trace.
        id: Option<String>,
        /// Print the spans as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find traces by a filter: `status = 'ERROR' and duration_ms > 2000 and
    /// attributes.gen_ai.request.model = 'llama3.2' and feedback.thumbs = false` (fields:
    /// status, duration_ms, timestamp, tokens, input_tokens, output_tokens, cost, name,
    /// trace_id, session, user, agent, span.name, prompt.NAME, attributes.KEY,
    /// root.attributes.KEY, tags.KEY, feedback.NAME; joined by AND).
    Search {
        /// The filter; empty matches every trace.
        #[arg(default_value = "")]
        filter: String,
        /// `FIELD [ASC|DESC]`: timestamp (default, newest first), duration_ms, tokens, cost, name.
        #[arg(long)]
        order_by: Option<String>,
        /// How many per page.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        /// The token a previous page printed, for the next page.
        #[arg(long)]
        page_token: Option<String>,
        /// Print JSON (`{"traces": [...], "next_page_token": ...}`).
        #[arg(long)]
        json: bool,
    },
    /// Attach feedback to a trace as a HUMAN assessment: `sextant traces feedback ID thumbs
    /// false --rationale "wrong unit"`. It goes to the tracking store (MLflow when that is the
    /// backend) and is searchable as `feedback.NAME`.
    Feedback {
        /// The trace id or a unique prefix of it.
        id: String,
        /// What is judged: `thumbs`, `correct`, `rating` …
        name: String,
        /// The verdict: true/false, a number, or a label.
        value: String,
        /// Why.
        #[arg(long)]
        rationale: Option<String>,
        /// Who gives it (default: the operating system user).
        #[arg(long)]
        by: Option<String>,
    },
}

/// `sextant datasets …`.
#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// Build a dataset from the traces a filter finds (`sextant traces search`'s language): one
    /// row per turn, its question as the input, linked to its trace; stored as the next version
    /// of NAME.
    Create {
        /// The dataset's name (letters, digits, `-`, `_`, `.`).
        name: String,
        /// Which traces, e.g. `agent = 'assistant' and feedback.thumbs = true`.
        #[arg(long)]
        from_traces: String,
        /// Where each row's expected response comes from: `none`, `answer` (the turn's own
        /// answer: pick good turns with the filter) or `assessment:NAME` (the newest label of a
        /// feedback, e.g. a reviewer's correction).
        #[arg(long, default_value = "none")]
        expected: String,
        /// At most this many rows (newest traces first).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// The datasets and their newest versions.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One dataset's versions, or one version's rows (`NAME/VERSION`).
    Show {
        /// `NAME` or `NAME/VERSION`.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `sextant telemetry …`.
#[derive(Debug, Subcommand)]
pub enum TelemetryCommand {
    /// What each remote trace sink's spool holds: unsent spans, bytes, the oldest unsent
    /// batch, and the sink's last error.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send what earlier processes left in the spools to the configured trace backends now, and
    /// wait until they took it (or the timeout passed).
    Flush {
        /// How long to wait, e.g. 30s or 2m.
        #[arg(long, default_value = "60s", value_parser = parse_wait)]
        timeout: std::time::Duration,
    },
}

/// `sextant models …`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List registered models with their latest version and aliases.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a model's versions, or one version (NAME/3, NAME@production, NAME/Production).
    Show {
        /// The model, optionally with /VERSION, @ALIAS or /STAGE (a models:/ URI works too).
        model: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Register an agent file (its registry prompts pinned to their current versions) as the next
    /// version of NAME.
    Register {
        /// The model's name, e.g. rag-agent.
        name: String,
        /// The agent file.
        #[arg(long)]
        from: PathBuf,
        /// A description of this version.
        #[arg(long, short = 'm')]
        message: Option<String>,
    },
    /// Point an alias at a version and/or move it to a stage.
    Promote {
        /// The model's name.
        name: String,
        /// The version.
        version: u32,
        /// The alias to point at it, e.g. production.
        #[arg(long)]
        alias: Option<String>,
        /// The stage to move it to (None, Staging, Production, Archived).
        #[arg(long)]
        stage: Option<String>,
        /// With --stage Staging/Production: archive the versions already in that stage.
        #[arg(long)]
        archive_existing: bool,
    },
    /// Move a version to the Archived stage.
    Archive {
        /// The model's name.
        name: String,
        /// The version.
        version: u32,
    },
    /// Download the default model files (or the named ones) into the model cache.
    Pull {
        /// Model names (see `sextant models files`); default: all.
        names: Vec<String>,
    },
    /// List the default model files and whether they are present.
    Files,
}

/// `sextant runs …`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// The experiment (default: `[tracking] experiment`).
        #[arg(long)]
        experiment: Option<String>,
        /// MLflow's filter syntax, e.g. "params.model = 'x' and metrics.latency_ms < 900".
        #[arg(long, default_value = "")]
        filter: String,
        /// Order, e.g. "metrics.latency_ms DESC" (repeatable).
        #[arg(long = "order-by")]
        order_by: Vec<String>,
        /// How many.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a run: params, metrics, tags, artifacts; --metric plots a metric's history.
    Show {
        /// The run id.
        run_id: String,
        /// Plot this metric's history in the terminal.
        #[arg(long)]
        metric: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print two runs' params and metrics side by side.
    Compare {
        /// The first run.
        a: String,
        /// The second run.
        b: String,
    },
}

/// `sextant experiments …`.
#[derive(Debug, Subcommand)]
pub enum ExperimentsCommand {
    /// List the experiments.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A wait such as `30s`, `500ms` or `2m`.
fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    sextant_tracker::parse_duration(text)
        .ok_or_else(|| format!("'{text}' is not a duration: write e.g. 30s, 500ms or 2m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eval_replay_filter_is_the_replay_selection_it_names() {
        let args = ReplayArgs::from_filter("agent=assistant, since=2026-12-01,limit=7", None, true)
            .unwrap();
        assert_eq!(args.agent_name.as_deref(), Some("assistant"));
        assert_eq!(args.since.as_deref(), Some("2026-12-01"));
        assert_eq!((args.limit, args.json), (7, true));
        for (filter, needle) in [
            ("since=2026-12-01", "needs agent=NAME"),
            ("agent=a,limit=many", "not a number"),
            ("agent=a,tag=prod", "`tag=prod` is not"),
        ] {
            let error = ReplayArgs::from_filter(filter, None, false).unwrap_err();
            assert!(error.contains(needle), "{filter}: {error}");
        }
    }
}

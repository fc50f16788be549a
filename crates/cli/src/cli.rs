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
    /// Read the local trace store.
    #[command(subcommand)]
    Traces(TracesCommand),
    /// Manage the default model files.
    #[command(subcommand)]
    Models(ModelsCommand),
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

/// `sextant run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent file (default: configs/agents/assistant.toml, built in).
    #[arg(long)]
    pub agent: Option<PathBuf>,
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
}

/// `sextant models …`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download the default models (or the named ones) into the model cache.
    Pull {
        /// Model names (see `sextant models list`); default: all.
        names: Vec<String>,
    },
    /// List the default models and whether they are present.
    List,
}

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

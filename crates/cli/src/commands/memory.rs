//! `sextant memory`: inspect and search collections.

use sextant_memory::{Filter, Retriever};
use sextant_runtime::Runtime;

use crate::cli::MemoryCommand;

pub async fn memory(runtime: &Runtime, command: MemoryCommand) -> anyhow::Result<()> {
    let store = runtime.vector_store()?;
    match command {
        MemoryCommand::Info { collection } => match store.collection_info(&collection).await? {
            Some(info) => println!(
                "{}: {} points of {} dimensions in the {} store",
                info.name,
                info.points,
                info.dimension,
                store.backend()
            ),
            None => anyhow::bail!(
                "collection `{collection}` does not exist in the {} store",
                store.backend()
            ),
        },
        MemoryCommand::Search {
            collection,
            query,
            top_k,
            filter,
            json,
        } => {
            let mut options = runtime.config().memory.retrieval.clone();
            if let Some(top_k) = top_k {
                options.top_k = top_k;
                options.candidates = options.candidates.max(top_k);
            }
            if let Some(filter) = filter {
                options.filter = Some(Filter::parse(&filter).map_err(anyhow::Error::msg)?);
            }
            let retriever = Retriever::new(runtime.embedder().await?, store, collection, options);
            let chunks = retriever.retrieve(&query.join(" ")).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&chunks)?);
            } else if chunks.is_empty() {
                println!("no matching chunks");
            } else {
                for (i, chunk) in chunks.iter().enumerate() {
                    println!(
                        "[{}] {:.3}  {}  ({} #{})",
                        i + 1,
                        chunk.score,
                        chunk.label(),
                        chunk.source,
                        chunk.chunk_index
                    );
                    let preview: String =
                        chunk.text.split_whitespace().collect::<Vec<_>>().join(" ");
                    let preview: String = preview.chars().take(200).collect();
                    println!("    {preview}");
                }
            }
        }
        MemoryCommand::Delete { collection } => {
            if store.delete_collection(&collection).await? {
                println!("deleted collection `{collection}`");
            } else {
                println!("collection `{collection}` did not exist");
            }
        }
    }
    Ok(())
}

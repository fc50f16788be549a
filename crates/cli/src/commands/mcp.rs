//! `sextant mcp`: the service's agents, memory and prompts as an MCP server over stdio. Stdout
//! belongs to the protocol: everything else goes to stderr.

use sextant_runtime::{Runtime, SextantConfig};
use sextant_server::Server;

pub async fn mcp(config: SextantConfig) -> anyhow::Result<()> {
    let run = sextant_runtime::RunSpec {
        experiment: config.tracking.experiment.clone(),
        run_name: Some("sextant mcp".into()),
        tags: [("sextant.kind".to_owned(), "mcp_server".to_owned())].into(),
        ..Default::default()
    };
    let runtime = Runtime::builder(config)
        .run_best_effort(run)
        .start()
        .await?;
    Server::new(runtime)?.serve_mcp_stdio().await?;
    Ok(())
}

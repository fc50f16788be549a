//! `sextant serve`: binds the address and hands the listener to the service library.

use anyhow::Context;
use sextant_runtime::{Runtime, SextantConfig};
use sextant_server::{ServeConfig, Server, shutdown_signal};

use crate::cli::ServeArgs;

pub async fn serve(config: SextantConfig, args: ServeArgs) -> anyhow::Result<()> {
    let settings: ServeConfig = config.section("serve")?;
    let addr = args.addr.unwrap_or_else(|| settings.addr.clone());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ([serve] addr / --addr)"))?;
    sextant_server::check_bind(&settings, listener.local_addr()?)?;
    let local_addr = listener.local_addr()?.to_string();
    let run = sextant_server::run_spec(&config, &local_addr);
    let runtime = Runtime::builder(config)
        .run_best_effort(run)
        .start()
        .await?;
    let server = Server::new(runtime)?;
    eprintln!(
        "sextant serve: listening on http://{local_addr}  (agents: {}; default {}; auth {})",
        server.agent_names().join(", "),
        server.default_agent(),
        if server.requires_key() {
            "API keys"
        } else {
            "off (loopback)"
        },
    );
    server.serve(listener, shutdown_signal()).await?;
    Ok(())
}

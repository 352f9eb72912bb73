//! `roost serve`: start a node and run it until told to stop.

use std::{path::Path, time::Instant};

use tokio::signal::unix::{SignalKind, signal};

use super::{load_config, open_store, runtime_for};
use crate::pipeline::Chains;

pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = load_config(config_path)?;
    let span = tracing::info_span!("node", name = %config.node.name);
    let _enter = span.enter();

    let store = open_store(&config).await?;
    let runtime = runtime_for(&config)?;
    let chains = Chains::load(&runtime, &config, Some(store.clone())).await?;

    tracing::info!(
        lists = config.lists.len(),
        plugins = chains.plugin_count(),
        database = %crate::store::redact(&config.node.database_url),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "node ready"
    );
    println!(
        "roost node {} ready: {} list(s), {} plugin(s) loaded in {} ms",
        config.node.name,
        config.lists.len(),
        chains.plugin_count(),
        started.elapsed().as_millis()
    );
    for list in &config.lists {
        let names: Vec<&str> = list.plugins.iter().map(|p| p.name.as_str()).collect();
        println!(
            "  {}: {}",
            list.address,
            if names.is_empty() {
                "(no plugins)".to_string()
            } else {
                names.join(" -> ")
            }
        );
    }

    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("stopping");
    store.close().await;
    Ok(())
}

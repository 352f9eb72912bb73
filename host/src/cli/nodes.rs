//! `roost nodes`: who is in the cluster and how each looks from its heartbeat.

use std::path::Path;

use super::{load_config, open_store};
use crate::{cluster::node_state, message::rfc3339, store::now_ms};

pub async fn show(config_path: &Path) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let store = open_store(&config).await?;
    let nodes = store.nodes().await?;
    if nodes.is_empty() {
        eprintln!("no node has run against this database yet");
    }
    let work = store.node_work().await?;
    println!("NAME\tSTATE\tLAST HEARTBEAT\tVERSION\tHOST\tPID\tSTARTED\tWORKING ON");
    for n in nodes {
        let age = (now_ms() - n.heartbeat_at).max(0) as f64 / 1000.0;
        let w = work.get(&n.name).cloned().unwrap_or_default();
        println!(
            "{}\t{}\t{:.1}s ago\t{}\t{}\t{}\t{}\t{} processing, {} batches, {} scheduled",
            n.name,
            node_state(&n, config.node.heartbeat, config.node.lease),
            age,
            n.version,
            n.hostname,
            n.pid,
            rfc3339(n.started_at),
            w.processing,
            w.batches,
            w.schedules
        );
    }
    Ok(())
}

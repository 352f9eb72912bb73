//! `roost lists` and `roost migrate`.

use std::path::Path;

use super::{load_config, open_store};
use crate::config::FailurePolicy;

pub async fn migrate(config_path: &Path) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    open_store(&config).await?;
    println!(
        "database {} is up to date",
        crate::store::redact(&config.node.database_url)
    );
    Ok(())
}

pub async fn show(config_path: &Path) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    if config.lists.is_empty() {
        println!("no lists in {}", config.node.lists_dir.display());
        return Ok(());
    }
    for list in &config.lists {
        let policy = match list.on_plugin_error {
            FailurePolicy::Hold => "hold",
            FailurePolicy::Accept => "accept",
            FailurePolicy::Reject => "reject",
        };
        println!("{} ({})", list.address, list.name);
        println!(
            "  file: {}  on_plugin_error: {policy}  limits: {}ms, {} MiB",
            list.file.display(),
            list.limits.timeout.as_millis(),
            list.limits.memory >> 20
        );
        if list.plugins.is_empty() {
            println!("  plugins: (none)");
        }
        for (i, p) in list.plugins.iter().enumerate() {
            let keys: Vec<&str> = p.config.keys().map(String::as_str).collect();
            println!("  {}. {}  [{}]", i + 1, p.name, keys.join(", "));
        }
    }
    Ok(())
}

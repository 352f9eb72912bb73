//! `roost plugin check FILE.wasm`.

use std::path::Path;

use super::UsageError;
use crate::plugins::{Runtime, RuntimeOptions};

pub async fn check(file: &Path) -> anyhow::Result<()> {
    let runtime = Runtime::new(RuntimeOptions {
        instances: 4,
        max_memory: 256 << 20,
        cache_dir: None,
        reuse_instances: true,
    })?;
    // Every reason a file is not a usable plugin is the user's to fix: exit 2, one line.
    let plugin = runtime
        .load(file)
        .await
        .map_err(|e| UsageError(e.to_string()))?;
    println!("name:    {}", plugin.name);
    println!("version: {}", plugin.version);
    println!("hooks:   {}", plugin.hook_names().join(", "));
    if !plugin.schedules.is_empty() {
        let s: Vec<String> = plugin
            .schedules
            .iter()
            .map(|s| format!("{} every {}s", s.name, s.every_seconds))
            .collect();
        println!("schedules: {}", s.join(", "));
    }
    println!("sha256:  {}", plugin.digest);
    Ok(())
}

//! Configuration: the node's `roost.toml` and one `lists/NAME.toml` per list.
//!
//! Every file is parsed strictly (unknown keys are errors) and every error names the file,
//! the line and the key, so a node never starts with a setting it silently ignored.

mod delivery;
mod error;
mod list;
mod node;
mod parse;
mod plugin;
pub mod units;

use std::path::{Path, PathBuf};

pub use delivery::{DeliveryConfig, DomainLimits, HttpConfig, HttpLimits};
pub use error::ConfigError;
pub use list::{DkimConfig, FailurePolicy, ListConfig, PluginLimits};
pub use node::{NodeConfig, SmtpConfig};
pub use plugin::PluginUse;

/// A node's whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub node: NodeConfig,
    /// In file-name order.
    pub lists: Vec<ListConfig>,
}

impl Config {
    /// Read `roost.toml` and every `*.toml` in its lists directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let node = node::load_node(path)?;
        let lists = load_lists(&node)?;
        Ok(Config { node, lists })
    }

    pub fn list(&self, address_or_name: &str) -> Option<&ListConfig> {
        let wanted = address_or_name.to_ascii_lowercase();
        self.lists
            .iter()
            .find(|l| l.address == wanted || l.local_part() == wanted)
    }
}

fn load_lists(node: &NodeConfig) -> Result<Vec<ListConfig>, ConfigError> {
    let dir = &node.lists_dir;
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Read {
        file: dir.clone(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut lists: Vec<ListConfig> = Vec::with_capacity(files.len());
    for file in files {
        let list = list::load_list(&file, &node.plugin_dir, node.plugin_max_memory)?;
        if let Some(other) = lists.iter().find(|l| l.address == list.address) {
            return Err(ConfigError::invalid(
                &file,
                format!(
                    "address {} is already used by {}",
                    list.address,
                    other.file.display()
                ),
            ));
        }
        lists.push(list);
    }
    Ok(lists)
}

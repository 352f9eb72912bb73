//! A `[[plugin]]` entry: which component to run and its own table of settings.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::ConfigError;

#[derive(Debug, Deserialize)]
pub(super) struct PluginEntry {
    #[serde(rename = "use")]
    use_: String,
    /// Every other key belongs to the plugin, which checks it itself (`check-config`).
    #[serde(flatten)]
    config: toml::Table,
}

/// A plugin in a chain, resolved to its component file.
#[derive(Debug, Clone)]
pub struct PluginUse {
    /// As written after `use =`.
    pub name: String,
    /// The component file.
    pub path: PathBuf,
    /// The plugin's own keys.
    pub config: toml::Table,
    /// Where the entry stands, for error messages: the file, its line, its position.
    pub file: PathBuf,
    pub line: usize,
    pub index: usize,
}

impl PluginUse {
    pub(super) fn resolve(
        entry: PluginEntry,
        (file, text): (&Path, &str),
        line: usize,
        index: usize,
        base: &Path,
        plugin_dir: &Path,
    ) -> Result<Self, ConfigError> {
        let key = format!("plugin[{index}].use");
        let name = entry.use_.trim().to_string();
        let use_line = key_line(text, line, "use");
        if name.is_empty() {
            return Err(ConfigError::at(file, use_line, key, "must name a plugin"));
        }
        // A bare name is a bundled plugin in [plugins] dir; anything path-like is a file
        // relative to the list file.
        let path = if name.ends_with(".wasm") || name.contains('/') {
            base.join(&name)
        } else {
            plugin_dir.join(format!("{name}.wasm"))
        };
        if !path.is_file() {
            return Err(ConfigError::at(
                file,
                use_line,
                key,
                format!(
                    "plugin `{name}` not found: no file {} (build bundled plugins with `make plugins`)",
                    path.display()
                ),
            ));
        }
        Ok(PluginUse {
            name,
            path,
            config: entry.config,
            file: file.to_path_buf(),
            line,
            index,
        })
    }

    /// The plugin's table as TOML text, as the `config` import hands it over.
    pub fn config_toml(&self) -> String {
        toml::to_string(&self.config).unwrap_or_default()
    }

    /// The line of one of the plugin's own keys in the list file, for errors found by the
    /// plugin's `check-config` (which sees the table, not the file).
    pub fn line_of_key(&self, text: &str, key: &str) -> usize {
        key_line(text, self.line, key)
    }
}

/// The line of `key = ...` in the table that starts at line `table_line` (1-based), or the
/// table's own line when the key is not found there.
fn key_line(text: &str, table_line: usize, key: &str) -> usize {
    text.lines()
        .enumerate()
        .skip(table_line)
        .take_while(|(_, l)| !l.trim_start().starts_with('['))
        .find(|(_, l)| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(table_line, |(i, _)| i + 1)
}

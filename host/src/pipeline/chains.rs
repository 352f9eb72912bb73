use std::{collections::HashMap, sync::Arc};

use crate::{
    config::{Config, ConfigError, PluginLimits, PluginUse},
    plugins::{Bound, LoadError, Runtime},
    store::Store,
};

/// Why the plugin chains could not be set up. Both kinds stop a node from starting.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}:{}: plugin `{}`: {source}", use_.file.display(), use_.line, use_.name)]
    Load {
        use_: Box<PluginUse>,
        #[source]
        source: LoadError,
    },
}

/// Every list's chain of bound plugins, plus the node-level plugins.
pub struct Chains {
    pub node: Vec<Bound>,
    /// By list address.
    pub lists: HashMap<String, Arc<Vec<Bound>>>,
}

impl Chains {
    /// Load every plugin the config names, bind it to its list, and have it check its own
    /// settings. A bad plugin or setting is reported with the list file, line and key.
    pub async fn load(
        runtime: &Runtime,
        config: &Config,
        store: Option<Store>,
    ) -> Result<Chains, SetupError> {
        let node = bind_all(
            runtime,
            "",
            &config.node.plugins,
            PluginLimits::default(),
            &store,
        )
        .await?;
        let mut lists = HashMap::new();
        for list in &config.lists {
            let chain =
                bind_all(runtime, &list.address, &list.plugins, list.limits, &store).await?;
            lists.insert(list.address.clone(), Arc::new(chain));
        }
        Ok(Chains { node, lists })
    }

    /// Distinct plugins loaded, for the start-up summary.
    pub fn plugin_count(&self) -> usize {
        let mut digests: Vec<&str> = self
            .node
            .iter()
            .chain(self.lists.values().flat_map(|c| c.iter()))
            .map(|b| b.plugin.digest.as_str())
            .collect();
        digests.sort_unstable();
        digests.dedup();
        digests.len()
    }
}

async fn bind_all(
    runtime: &Runtime,
    list: &str,
    uses: &[PluginUse],
    limits: PluginLimits,
    store: &Option<Store>,
) -> Result<Vec<Bound>, SetupError> {
    let mut chain = Vec::with_capacity(uses.len());
    for u in uses {
        let plugin = runtime
            .load(&u.path)
            .await
            .map_err(|source| SetupError::Load {
                use_: Box::new(u.clone()),
                source,
            })?;
        let bound = runtime.bind(plugin, list, u.config_toml(), limits, store.clone());
        if let Err(e) = runtime.check_config(&bound).await {
            return Err(config_error(u, &e.failure.to_string()).into());
        }
        chain.push(bound);
    }
    Ok(chain)
}

/// Point a plugin's complaint about its settings at the key in the list file when the
/// complaint names one (serde says "unknown field `tagg`").
fn config_error(u: &PluginUse, complaint: &str) -> ConfigError {
    let complaint = complaint
        .strip_prefix("returned an error: ")
        .unwrap_or(complaint);
    let text = std::fs::read_to_string(&u.file).unwrap_or_default();
    let named = complaint
        .split('`')
        .nth(1)
        .filter(|k| u.config.contains_key(*k));
    let (line, key) = match named {
        Some(k) => (u.line_of_key(&text, k), format!("plugin[{}].{k}", u.index)),
        None => (u.line, format!("plugin[{}]", u.index)),
    };
    ConfigError::at(
        &u.file,
        line,
        key,
        format!("plugin `{}`: {complaint}", u.name),
    )
}

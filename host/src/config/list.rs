//! A list's file, `lists/NAME.toml`: its address, owners, limits and plugin chain.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use toml::Spanned;

use super::{
    error::{ConfigError, line_col},
    parse::read_toml,
    plugin::{PluginEntry, PluginUse},
    units::{Size, Span},
};

/// What to do with a post when a plugin fails (trap, timeout, memory cap, bad answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Keep the post for the owner (fail closed: never lost, never sent unchecked).
    #[default]
    Hold,
    /// Go on as if the plugin had said `continue`.
    Accept,
    /// Refuse the post.
    Reject,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListFile {
    address: Spanned<String>,
    name: Option<String>,
    #[serde(default)]
    owners: Vec<String>,
    #[serde(default)]
    on_plugin_error: FailurePolicy,
    #[serde(default)]
    limits: LimitsFile,
    archive: Option<String>,
    dkim: Option<Spanned<DkimFile>>,
    #[serde(default)]
    plugin: Vec<Spanned<PluginEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DkimFile {
    selector: String,
    private_key: PathBuf,
    domain: Option<String>,
}

/// How the list signs its copies: `private_key` is PEM (RSA or Ed25519, PKCS#8 or PKCS#1),
/// checked when the config is loaded.
#[derive(Debug, Clone)]
pub struct DkimConfig {
    pub selector: String,
    /// The `d=` domain (default: the list's domain).
    pub domain: String,
    pub private_key: PathBuf,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    plugin_timeout: Option<Span>,
    plugin_memory: Option<Size>,
    kv_keys: Option<u64>,
    kv_bytes: Option<Size>,
}

/// Per-call limits for this list's plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    pub timeout: Duration,
    pub memory: u64,
    /// Keys and bytes of values each plugin may keep in `kv` for the list.
    pub kv_keys: u64,
    pub kv_bytes: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            timeout: Duration::from_millis(100),
            memory: 64 << 20,
            kv_keys: 100_000,
            kv_bytes: 256 << 20,
        }
    }
}

/// One list, resolved and checked.
#[derive(Debug, Clone)]
pub struct ListConfig {
    pub file: PathBuf,
    /// The posting address, lower-cased: `name@domain`.
    pub address: String,
    /// Display name (default: the local part of the address).
    pub name: String,
    pub owners: Vec<String>,
    pub on_plugin_error: FailurePolicy,
    pub limits: PluginLimits,
    pub plugins: Vec<PluginUse>,
    /// `List-Archive` URL, when the list has an archive.
    pub archive: Option<String>,
    pub dkim: Option<DkimConfig>,
}

impl ListConfig {
    /// The part of the address before `@`.
    pub fn local_part(&self) -> &str {
        self.address.split('@').next().unwrap_or(&self.address)
    }

    pub fn domain(&self) -> &str {
        self.address.split('@').nth(1).unwrap_or("")
    }
}

/// Suffixes that form a list's own addresses (README, "How mail is taken in"); a list name must not end in one.
const RESERVED_SUFFIXES: [&str; 4] = ["-request", "-owner", "-bounces", "-confirm"];

pub(super) fn load_list(
    file: &Path,
    plugin_dir: &Path,
    max_memory: u64,
) -> Result<ListConfig, ConfigError> {
    let (raw, text): (ListFile, String) = read_toml(file)?;
    let line_of = |span: std::ops::Range<usize>| line_col(&text, span.start).0;

    let address_line = line_of(raw.address.span());
    let address = raw.address.into_inner().trim().to_ascii_lowercase();
    check_list_address(&address).map_err(|m| ConfigError::at(file, address_line, "address", m))?;

    for (i, owner) in raw.owners.iter().enumerate() {
        if !looks_like_address(owner) {
            return Err(ConfigError::at(
                file,
                1,
                format!("owners[{i}]"),
                format!("`{owner}` is not a mail address"),
            ));
        }
    }

    let defaults = PluginLimits::default();
    let limits = PluginLimits {
        timeout: raw.limits.plugin_timeout.map_or(defaults.timeout, |s| s.0),
        memory: raw.limits.plugin_memory.map_or(defaults.memory, |s| s.0),
        kv_keys: raw.limits.kv_keys.unwrap_or(defaults.kv_keys),
        kv_bytes: raw.limits.kv_bytes.map_or(defaults.kv_bytes, |s| s.0),
    };
    if limits.timeout.is_zero() {
        return Err(ConfigError::invalid(
            file,
            "limits.plugin_timeout must be more than 0",
        ));
    }
    if limits.memory < 1 << 20 || limits.memory > max_memory {
        return Err(ConfigError::invalid(
            file,
            format!(
                "limits.plugin_memory must be between 1MiB and the node's plugins.max_memory ({})",
                Size(max_memory)
            ),
        ));
    }

    let base = file.parent().unwrap_or(Path::new("."));
    let plugins = raw
        .plugin
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let line = line_of(entry.span());
            PluginUse::resolve(entry.into_inner(), (file, &text), line, i, base, plugin_dir)
        })
        .collect::<Result<Vec<_>, _>>()?;

    let archive = match raw.archive {
        Some(url)
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') =>
        {
            return Err(ConfigError::invalid(
                file,
                format!("archive: `{url}` must be an http:// or https:// URL"),
            ));
        }
        a => a,
    };
    let dkim = match raw.dkim {
        None => None,
        Some(d) => {
            let line = line_of(d.span());
            let d = d.into_inner();
            let private_key = base.join(&d.private_key);
            crate::delivery::dkim::load_key(&private_key)
                .map_err(|m| ConfigError::at(file, line, "dkim.private_key", m))?;
            if d.selector.is_empty()
                || !d
                    .selector
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(ConfigError::at(
                    file,
                    line,
                    "dkim.selector",
                    format!("`{}` is not a DKIM selector", d.selector),
                ));
            }
            Some(DkimConfig {
                selector: d.selector,
                domain: d
                    .domain
                    .map(|d| d.to_ascii_lowercase())
                    .unwrap_or_else(|| address.split('@').nth(1).unwrap_or_default().to_string()),
                private_key,
            })
        }
    };

    let name = raw
        .name
        .unwrap_or_else(|| address.split('@').next().unwrap_or_default().to_string());
    Ok(ListConfig {
        file: file.to_path_buf(),
        address,
        name,
        owners: raw.owners,
        on_plugin_error: raw.on_plugin_error,
        limits,
        plugins,
        archive,
        dkim,
    })
}

fn looks_like_address(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !s.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
        }
        None => false,
    }
}

fn check_list_address(address: &str) -> Result<(), String> {
    let Some((local, domain)) = address.split_once('@') else {
        return Err(format!(
            "`{address}` is not an address of the form name@domain"
        ));
    };
    let ok_local = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok_local {
        return Err(format!(
            "list name `{local}` may only hold letters, digits, `.`, `_` and `-` (no `+`: it starts a VERP or confirmation token)"
        ));
    }
    if let Some(suffix) = RESERVED_SUFFIXES.iter().find(|s| local.ends_with(*s)) {
        return Err(format!(
            "list name `{local}` ends in `{suffix}`, which Roost uses for the list's own addresses"
        ));
    }
    let ok_domain = domain.contains('.')
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !ok_domain {
        return Err(format!("`{domain}` is not a domain name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_addresses() {
        assert!(check_list_address("announce@lists.example.org").is_ok());
        assert!(check_list_address("announce").is_err());
        assert!(check_list_address("a+b@example.org").is_err());
        assert!(check_list_address("news-request@example.org").is_err());
        assert!(check_list_address("news@localhost").is_err());
    }
}

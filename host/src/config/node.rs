//! The node's file, `roost.toml`: who this node is, its database, where plugins and lists are.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use toml::Spanned;

use super::{
    delivery::{
        DeliveryConfig, DeliverySection, HttpConfig, HttpSection, delivery_config, http_config,
    },
    error::{ConfigError, line_col},
    parse::read_toml,
    plugin::{PluginEntry, PluginUse},
    units::{Size, Span},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NodeFile {
    #[serde(default)]
    node: NodeSection,
    #[serde(default)]
    database: DatabaseSection,
    #[serde(default)]
    plugins: PluginsSection,
    #[serde(default)]
    lists: ListsSection,
    #[serde(default)]
    smtp: SmtpSection,
    #[serde(default)]
    cluster: ClusterSection,
    #[serde(default)]
    delivery: DeliverySection,
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    plugin: Vec<Spanned<PluginEntry>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ClusterSection {
    lease: Option<Span>,
    heartbeat: Option<Span>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SmtpSection {
    listen: Option<Vec<String>>,
    max_message_size: Option<Size>,
    max_recipients: Option<u32>,
    max_sessions: Option<u32>,
    max_errors: Option<u32>,
    max_line_length: Option<u32>,
    idle_timeout: Option<Span>,
    max_session_time: Option<Span>,
    max_sessions_per_ip: Option<u32>,
    max_data_memory: Option<Size>,
    tls: Option<TlsSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: PathBuf,
    key: PathBuf,
}

/// SMTP intake settings.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub listen: Vec<SocketAddr>,
    /// Announced with SIZE and enforced (552).
    pub max_message_size: u64,
    /// RCPT commands accepted per transaction (452 beyond).
    pub max_recipients: u32,
    /// Sessions at once (421 beyond).
    pub max_sessions: u32,
    /// Protocol errors a session may make before it is closed (421).
    pub max_errors: u32,
    /// Longest line of message data, CRLF included (RFC 5321 asks for 1000 at least).
    pub max_line_length: u32,
    pub idle_timeout: Duration,
    /// Longest a session may last, however busy (421 4.4.2 then): a client that drips
    /// commands or data cannot hold a slot for ever.
    pub max_session_time: Duration,
    /// Sessions at once from one client address (421 4.7.0 beyond).
    pub max_sessions_per_ip: u32,
    /// Message data held in memory by all sessions together; a message that would pass it
    /// is refused with 452 4.3.1 (try later).
    pub max_data_memory: u64,
    /// STARTTLS certificate chain and key (PEM files); none: no STARTTLS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NodeSection {
    name: Option<String>,
    hostname: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DatabaseSection {
    url: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PluginsSection {
    dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    instances: Option<u32>,
    max_memory: Option<Size>,
    reuse_instances: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListsSection {
    dir: Option<PathBuf>,
}

/// The node's settings, resolved: relative paths are relative to the config file.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub file: PathBuf,
    pub name: String,
    pub hostname: String,
    /// Where the node runs: the machine's own host name (not the configured EHLO name) and
    /// its PID namespace.
    pub machine: String,
    pub database_url: String,
    pub plugin_dir: PathBuf,
    pub plugin_cache_dir: PathBuf,
    /// Plugin instances that may run at once on this node (the pooling allocator's slots).
    pub plugin_instances: u32,
    /// The largest `plugin_memory` any list may ask for.
    pub plugin_max_memory: u64,
    /// Reuse a healthy plugin instance for later calls of the same list (default true).
    pub plugin_reuse_instances: bool,
    pub lists_dir: PathBuf,
    /// Node-level plugins (server-wide routes and schedules).
    pub plugins: Vec<PluginUse>,
    pub smtp: SmtpConfig,
    pub delivery: DeliveryConfig,
    pub http: HttpConfig,
    /// How long claimed work stays with a node that stopped renewing it (also how long a
    /// silent node keeps its name).
    pub lease: Duration,
    /// How often the node proves it is alive.
    pub heartbeat: Duration,
}

pub(super) fn load_node(file: &Path) -> Result<NodeConfig, ConfigError> {
    let (raw, text): (NodeFile, String) = read_toml(file)?;
    let base = file.parent().unwrap_or(Path::new("."));
    let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

    let host = system_hostname();
    // Containers on one host share its name but not its processes: the PID namespace tells
    // them apart, so a live node in another container is never taken for a dead one.
    let machine = match std::fs::read_link("/proc/self/ns/pid") {
        Ok(ns) => format!("{host} {}", ns.display()),
        Err(_) => host.clone(),
    };
    let name = env_or("ROOST_NODE_NAME", raw.node.name).unwrap_or_else(|| host.clone());
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ConfigError::invalid(
            file,
            format!("node.name `{name}` must be 1-64 letters, digits, `-`, `_` or `.`"),
        ));
    }
    let hostname = raw.node.hostname.unwrap_or(host);

    let url = env_or("ROOST_DATABASE_URL", raw.database.url)
        .unwrap_or_else(|| "sqlite://roost.db".to_string());
    let database_url = resolve_sqlite_url(&url, base);
    if !(database_url.starts_with("sqlite:")
        || database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://"))
    {
        return Err(ConfigError::invalid(
            file,
            "database.url must start with sqlite:// or postgres://",
        ));
    }

    let plugin_dir = rel(raw.plugins.dir.unwrap_or_else(|| "plugins".into()));
    let plugin_cache_dir = rel(raw
        .plugins
        .cache_dir
        .unwrap_or_else(|| ".roost/plugin-cache".into()));
    let plugin_instances = raw.plugins.instances.unwrap_or(128);
    if !(1..=10_000).contains(&plugin_instances) {
        return Err(ConfigError::invalid(
            file,
            "plugins.instances must be between 1 and 10000",
        ));
    }
    let plugin_max_memory = raw.plugins.max_memory.map_or(1 << 30, |s| s.0);
    if !((1 << 20)..=(4u64 << 30)).contains(&plugin_max_memory) {
        return Err(ConfigError::invalid(
            file,
            "plugins.max_memory must be between 1MiB and 4GiB",
        ));
    }
    let lists_dir = rel(raw.lists.dir.unwrap_or_else(|| "lists".into()));

    let plugins = raw
        .plugin
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let line = line_col(&text, entry.span().start).0;
            PluginUse::resolve(
                entry.into_inner(),
                (file, &text),
                line,
                i,
                base,
                &plugin_dir,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;

    let smtp = smtp_config(file, raw.smtp, &rel)?;
    let delivery = delivery_config(file, raw.delivery)?;
    let http = http_config(file, raw.http)?;

    let lease = raw.cluster.lease.map_or(Duration::from_secs(30), |s| s.0);
    if lease < Duration::from_secs(1) {
        return Err(ConfigError::invalid(
            file,
            "cluster.lease must be at least 1s",
        ));
    }
    let heartbeat = raw
        .cluster
        .heartbeat
        .map_or(Duration::from_secs(5).min(lease / 2), |s| s.0);
    if heartbeat.is_zero() || heartbeat * 2 > lease {
        return Err(ConfigError::invalid(
            file,
            "cluster.heartbeat must be more than 0 and at most half of cluster.lease",
        ));
    }

    Ok(NodeConfig {
        machine,
        smtp,
        delivery,
        http,
        lease,
        heartbeat,
        file: file.to_path_buf(),
        name,
        hostname,
        database_url,
        plugin_dir,
        plugin_cache_dir,
        plugin_instances,
        plugin_max_memory,
        plugin_reuse_instances: raw.plugins.reuse_instances.unwrap_or(true),
        lists_dir,
        plugins,
    })
}

fn smtp_config(
    file: &Path,
    raw: SmtpSection,
    rel: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<SmtpConfig, ConfigError> {
    let bad =
        |key: &str, message: String| ConfigError::invalid(file, format!("smtp.{key}: {message}"));
    let listen = raw
        .listen
        .unwrap_or_else(|| vec!["127.0.0.1:2525".to_string()])
        .iter()
        .map(|a| {
            a.parse::<SocketAddr>().map_err(|_| {
                bad(
                    "listen",
                    format!("`{a}` is not an address:port such as 127.0.0.1:2525"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let max_message_size = raw.max_message_size.map_or(25_000_000, |s| s.0);
    if !(1_000..=1 << 30).contains(&max_message_size) {
        return Err(bad(
            "max_message_size",
            "must be between 1KB and 1GiB".into(),
        ));
    }
    let in_range =
        |key: &str, v: Option<u32>, default: u32, range: std::ops::RangeInclusive<u32>| {
            let v = v.unwrap_or(default);
            if range.contains(&v) {
                Ok(v)
            } else {
                Err(bad(
                    key,
                    format!("must be between {} and {}", range.start(), range.end()),
                ))
            }
        };
    let tls = match raw.tls {
        Some(t) => {
            let (cert, key) = (rel(t.cert), rel(t.key));
            for p in [&cert, &key] {
                if !p.is_file() {
                    return Err(bad("tls", format!("no file {}", p.display())));
                }
            }
            Some((cert, key))
        }
        None => None,
    };
    Ok(SmtpConfig {
        listen,
        max_message_size,
        max_recipients: in_range("max_recipients", raw.max_recipients, 100, 1..=10_000)?,
        max_sessions: in_range("max_sessions", raw.max_sessions, 500, 1..=100_000)?,
        max_errors: in_range("max_errors", raw.max_errors, 10, 1..=1_000)?,
        max_line_length: in_range(
            "max_line_length",
            raw.max_line_length,
            10_000,
            1_000..=1_000_000,
        )?,
        idle_timeout: raw.idle_timeout.map_or(Duration::from_secs(300), |s| s.0),
        max_session_time: match raw.max_session_time {
            Some(Span(d)) if d.is_zero() => {
                return Err(bad("max_session_time", "must be more than 0".into()));
            }
            Some(Span(d)) => d,
            None => Duration::from_secs(30 * 60),
        },
        max_sessions_per_ip: in_range(
            "max_sessions_per_ip",
            raw.max_sessions_per_ip,
            // A big provider's outbound MTA opens many sessions to a busy list server
            // (Postfix alone allows 20 per destination): room for a few of them at once.
            50,
            1..=100_000,
        )?,
        max_data_memory: match raw.max_data_memory {
            Some(Size(n)) if n < max_message_size => {
                return Err(bad(
                    "max_data_memory",
                    format!("must be at least max_message_size ({max_message_size} bytes)"),
                ));
            }
            Some(Size(n)) => n,
            None => (1u64 << 30).max(max_message_size),
        },
        tls,
    })
}

/// Secrets and per-node values may come from the environment instead of the file.
fn env_or(var: &str, value: Option<String>) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty()).or(value)
}

/// `sqlite://roost.db` means a file next to the config, not in whatever directory the node
/// happened to be started from.
fn resolve_sqlite_url(url: &str, base: &Path) -> String {
    match url.strip_prefix("sqlite://") {
        Some(rest) if !rest.starts_with('/') && !rest.starts_with(':') => {
            let (path, query) = rest
                .split_once('?')
                .map_or((rest, None), |(p, q)| (p, Some(q)));
            let full = base.join(path);
            match query {
                Some(q) => format!("sqlite://{}?{q}", full.display()),
                None => format!("sqlite://{}", full.display()),
            }
        }
        _ => url.to_string(),
    }
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

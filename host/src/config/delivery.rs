//! `[delivery]` and `[http]` of `roost.toml`: how copies leave the node, and the public base
//! of the links they carry.

use std::{collections::HashMap, net::SocketAddr, path::Path, time::Duration};

use serde::Deserialize;

use super::{
    error::ConfigError,
    units::{Size, Span},
};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct DeliverySection {
    smarthost: Option<String>,
    nameservers: Option<Vec<String>>,
    mx_port: Option<u16>,
    concurrency: Option<u32>,
    per_domain_connections: Option<u32>,
    per_domain_rate: Option<f64>,
    batch_size: Option<u32>,
    retry_base: Option<Span>,
    retry_max: Option<Span>,
    max_age: Option<Span>,
    connect_timeout: Option<Span>,
    command_timeout: Option<Span>,
    starttls: Option<bool>,
    #[serde(default)]
    domain: HashMap<String, DomainSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainSection {
    connections: Option<u32>,
    rate: Option<f64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpSection {
    listen: Option<String>,
    public_url: Option<String>,
    api_token: Option<String>,
    max_connections: Option<u32>,
    header_timeout: Option<Span>,
    idle_timeout: Option<Span>,
    request_timeout: Option<Span>,
    max_body: Option<Size>,
    metrics_listen: Option<String>,
    events_retention: Option<Span>,
}

/// Limits for one destination domain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DomainLimits {
    /// Connections open at once to the domain.
    pub connections: u32,
    /// Copies per second to the domain; 0: no limit.
    pub rate: f64,
}

/// How this node sends copies.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Send everything to this `host:port` instead of looking up MX records.
    pub smarthost: Option<(String, u16)>,
    /// DNS servers for MX and DMARC lookups; empty: the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Port of MX hosts (25; tests point it at a local receiver).
    pub mx_port: u16,
    /// Outbound SMTP sessions at once on this node.
    pub concurrency: u32,
    /// Limits for any domain without its own `[delivery.domain."NAME"]`.
    pub default_limits: DomainLimits,
    pub domains: HashMap<String, DomainLimits>,
    /// Recipients per unit of work (one domain, one post).
    pub batch_size: u32,
    /// First retry after a temporary failure; each later one waits twice as long, up to
    /// `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A recipient still failing this long after the post was accepted is given up.
    pub max_age: Duration,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Use STARTTLS when the receiver offers it (without checking its certificate, as
    /// opportunistic TLS does).
    pub starttls: bool,
}

impl Default for DeliveryConfig {
    /// The settings of a `roost.toml` without `[delivery]`.
    fn default() -> Self {
        match delivery_config(Path::new("roost.toml"), DeliverySection::default()) {
            Ok(c) => c,
            Err(e) => unreachable!("the defaults are valid: {e}"),
        }
    }
}

impl DeliveryConfig {
    pub fn limits(&self, domain: &str) -> DomainLimits {
        self.domains
            .get(domain)
            .copied()
            .unwrap_or(self.default_limits)
    }
}

/// The HTTP surface.
#[derive(Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Base of the links in copies (unsubscribe, tracking), without a trailing `/`.
    pub public_url: String,
    /// Bearer token of the REST API (`ROOST_API_TOKEN` overrides); none: the API is off.
    pub api_token: Option<String>,
    pub limits: HttpLimits,
    /// Serve `/metrics` here only (not on `listen`), for a port that only the monitoring
    /// can reach.
    pub metrics_listen: Option<SocketAddr>,
    /// Tracking and plugin events older than this are deleted (their counts are kept).
    pub events_retention: Duration,
}

/// What one HTTP client may hold of the node (SECURITY.md explains each).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HttpLimits {
    /// Connections open at once; beyond it a new one gets 503 and is closed.
    pub max_connections: u32,
    /// Time to send a request's header (each request of a kept-alive connection too);
    /// then the connection is closed.
    pub header_timeout: Duration,
    /// A connection on which nothing moves this long is closed.
    pub idle_timeout: Duration,
    /// Time to read a request's body and answer it; then 408.
    pub request_timeout: Duration,
    /// Largest request body on any route; beyond it 413.
    pub max_body: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_body: 1 << 20,
        }
    }
}

/// The token is a secret: never printed.
impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("api_token", &self.api_token.as_ref().map(|_| "(set)"))
            .field("limits", &self.limits)
            .field("metrics_listen", &self.metrics_listen)
            .field("events_retention", &self.events_retention)
            .finish()
    }
}

pub(super) fn delivery_config(
    file: &Path,
    raw: DeliverySection,
) -> Result<DeliveryConfig, ConfigError> {
    let bad = |key: &str, message: String| {
        ConfigError::invalid(file, format!("delivery.{key}: {message}"))
    };
    let smarthost = match raw.smarthost {
        None => None,
        Some(s) => Some(host_port(&s).ok_or_else(|| {
            bad(
                "smarthost",
                format!("`{s}` is not host:port such as 127.0.0.1:2526"),
            )
        })?),
    };
    let nameservers = raw
        .nameservers
        .unwrap_or_default()
        .iter()
        .map(|s| {
            s.parse::<SocketAddr>()
                .or_else(|_| {
                    s.parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| bad("nameservers", format!("`{s}` is not an IP address[:port]")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let count = |key: &str, v: Option<u32>, default: u32, max: u32| {
        let v = v.unwrap_or(default);
        if (1..=max).contains(&v) {
            Ok(v)
        } else {
            Err(bad(key, format!("must be between 1 and {max}")))
        }
    };
    let rate = |key: &str, v: Option<f64>| {
        let v = v.unwrap_or(0.0);
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(bad(
                key,
                "must be a number of copies per second, 0 for no limit".into(),
            ))
        }
    };
    let default_limits = DomainLimits {
        connections: count(
            "per_domain_connections",
            raw.per_domain_connections,
            8,
            1_000,
        )?,
        rate: rate("per_domain_rate", raw.per_domain_rate)?,
    };
    let mut domains = HashMap::new();
    for (name, d) in raw.domain {
        let key = format!("domain.\"{name}\"");
        domains.insert(
            name.to_ascii_lowercase(),
            DomainLimits {
                connections: count(
                    &format!("{key}.connections"),
                    d.connections,
                    default_limits.connections,
                    1_000,
                )?,
                rate: match d.rate {
                    None => default_limits.rate,
                    r => rate(&format!("{key}.rate"), r)?,
                },
            },
        );
    }
    let span = |v: Option<Span>, default: u64| v.map_or(Duration::from_secs(default), |s| s.0);
    let retry_base = span(raw.retry_base, 60);
    let retry_max = span(raw.retry_max, 4 * 3600);
    if retry_base.is_zero() || retry_max < retry_base {
        return Err(bad(
            "retry_base",
            "must be more than 0 and at most retry_max".into(),
        ));
    }
    Ok(DeliveryConfig {
        smarthost,
        nameservers,
        mx_port: raw.mx_port.unwrap_or(25),
        concurrency: count("concurrency", raw.concurrency, 64, 10_000)?,
        default_limits,
        domains,
        batch_size: count("batch_size", raw.batch_size, 100, 10_000)?,
        retry_base,
        retry_max,
        max_age: span(raw.max_age, 5 * 86_400),
        connect_timeout: span(raw.connect_timeout, 30),
        command_timeout: span(raw.command_timeout, 120),
        starttls: raw.starttls.unwrap_or(true),
    })
}

pub(super) fn http_config(file: &Path, raw: HttpSection) -> Result<HttpConfig, ConfigError> {
    let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
        ConfigError::invalid(
            file,
            format!("http.listen: `{listen_text}` is not an address:port such as 127.0.0.1:8080"),
        )
    })?;
    let public_url = raw
        .public_url
        .unwrap_or_else(|| format!("http://{listen}"))
        .trim_end_matches('/')
        .to_string();
    if !(public_url.starts_with("http://") || public_url.starts_with("https://"))
        || public_url.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
    {
        return Err(ConfigError::invalid(
            file,
            format!("http.public_url: `{public_url}` must be an http:// or https:// URL"),
        ));
    }
    let api_token = std::env::var("ROOST_API_TOKEN")
        .ok()
        .or(raw.api_token)
        .filter(|t| !t.trim().is_empty());
    if let Some(t) = &api_token
        && (t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(ConfigError::invalid(
            file,
            "http.api_token must be at least 16 characters without spaces",
        ));
    }
    let defaults = HttpLimits::default();
    let span = |key: &str, v: Option<Span>, default: Duration| match v {
        Some(Span(d)) if d.is_zero() => Err(ConfigError::invalid(
            file,
            format!("http.{key}: must be more than 0"),
        )),
        Some(Span(d)) => Ok(d),
        None => Ok(default),
    };
    let limits = HttpLimits {
        max_connections: match raw.max_connections {
            Some(n) if !(1..=1_000_000).contains(&n) => {
                return Err(ConfigError::invalid(
                    file,
                    "http.max_connections: must be between 1 and 1000000",
                ));
            }
            Some(n) => n,
            None => defaults.max_connections,
        },
        header_timeout: span(
            "header_timeout",
            raw.header_timeout,
            defaults.header_timeout,
        )?,
        idle_timeout: span("idle_timeout", raw.idle_timeout, defaults.idle_timeout)?,
        request_timeout: span(
            "request_timeout",
            raw.request_timeout,
            defaults.request_timeout,
        )?,
        max_body: match raw.max_body {
            Some(Size(n)) if !(1024..=1 << 30).contains(&n) => {
                return Err(ConfigError::invalid(
                    file,
                    "http.max_body: must be between 1KiB and 1GiB",
                ));
            }
            Some(Size(n)) => n,
            None => defaults.max_body,
        },
    };
    let metrics_listen = match raw.metrics_listen {
        None => None,
        Some(a) => Some(a.parse::<SocketAddr>().map_err(|_| {
            ConfigError::invalid(
                file,
                format!("http.metrics_listen: `{a}` is not an address:port such as 127.0.0.1:9090"),
            )
        })?),
    };
    if metrics_listen == Some(listen) {
        return Err(ConfigError::invalid(
            file,
            "http.metrics_listen: must differ from http.listen",
        ));
    }
    let events_retention = match raw.events_retention {
        Some(Span(d)) if d < Duration::from_secs(3600) => {
            return Err(ConfigError::invalid(
                file,
                "http.events_retention: must be at least 1h",
            ));
        }
        Some(Span(d)) => d,
        None => Duration::from_secs(400 * 86_400),
    };
    Ok(HttpConfig {
        listen,
        public_url,
        api_token,
        limits,
        metrics_listen,
        events_retention,
    })
}

/// `host:port`, the host a name or an address (`[v6]:port` too).
fn host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.trim().rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0).then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    #[test]
    fn smarthosts_are_host_and_port() {
        assert_eq!(
            super::host_port("127.0.0.1:2526"),
            Some(("127.0.0.1".into(), 2526))
        );
        assert_eq!(super::host_port("[::1]:25"), Some(("::1".into(), 25)));
        assert_eq!(super::host_port("relay.example.org"), None);
        assert_eq!(super::host_port("relay:0"), None);
    }
}

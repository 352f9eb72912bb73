//! Where copies for a domain go (a smarthost, or the domain's MX hosts), and the DMARC
//! policy of an author's domain. DNS answers are cached for a few minutes per node.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use hickory_resolver::{
    TokioResolver,
    config::{NameServerConfig, ResolverConfig, ResolverOpts},
    net::runtime::TokioRuntimeProvider,
    proto::rr::RData,
};

use crate::config::DeliveryConfig;

/// How long a route or a policy is reused before it is looked up again.
const CACHE_FOR: Duration = Duration::from_secs(300);

/// Why a domain cannot be reached.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RouteError {
    /// The domain does not exist or says it takes no mail (null MX): give up.
    #[error("{0}")]
    Permanent(String),
    /// DNS did not answer: try later.
    #[error("{0}")]
    Temporary(String),
}

/// Where DNS questions go: the configured servers, or else the system's
/// (`/etc/resolv.conf`); in both cases with short timeouts (two tries of two seconds), as a
/// lookup must not hold a batch or a post for long. Shared by delivery (MX, DMARC) and the
/// sender checks (`pipeline::auth`). `None` when there is no system configuration either.
pub fn dns_config(nameservers: &[SocketAddr]) -> Option<(ResolverConfig, ResolverOpts)> {
    let (servers, mut opts) = if nameservers.is_empty() {
        hickory_resolver::system_conf::read_system_conf().ok()?
    } else {
        let servers = nameservers
            .iter()
            .map(|addr| {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                ns
            })
            .collect();
        (
            ResolverConfig::from_name_servers(servers),
            ResolverOpts::default(),
        )
    };
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    Some((servers, opts))
}

/// An author domain's DMARC policy, as far as From rewriting cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dmarc {
    /// No record, or `p=none`.
    None,
    /// `p=quarantine` or `p=reject`: a list copy would fail DMARC, so From is rewritten.
    Strict,
}

type Route = Result<Vec<SocketAddr>, RouteError>;

pub struct Router {
    resolver: Option<TokioResolver>,
    smarthost: Option<(String, u16)>,
    mx_port: u16,
    routes: Mutex<HashMap<String, (Instant, Route)>>,
    policies: Mutex<HashMap<String, (Instant, Dmarc)>>,
}

impl Router {
    pub fn new(config: &DeliveryConfig) -> Router {
        let resolver = dns_config(&config.nameservers).and_then(|(servers, opts)| {
            TokioResolver::builder_with_config(servers, TokioRuntimeProvider::default())
                .with_options(opts)
                .build()
                .ok()
        });
        if resolver.is_none() {
            tracing::warn!("no DNS resolver: MX and DMARC lookups will fail");
        }
        Router {
            resolver,
            smarthost: config.smarthost.clone(),
            mx_port: config.mx_port,
            routes: Mutex::new(HashMap::new()),
            policies: Mutex::new(HashMap::new()),
        }
    }

    /// The addresses to try for `domain`, best first.
    pub async fn route(&self, domain: &str) -> Result<Vec<SocketAddr>, RouteError> {
        if let Ok(cache) = self.routes.lock()
            && let Some((at, r)) = cache.get(domain)
            && at.elapsed() < CACHE_FOR
        {
            return r.clone();
        }
        let result = match &self.smarthost {
            Some((host, port)) => self.host_addrs(host, *port).await,
            None => self.mx_addrs(domain).await,
        };
        // A temporary failure is not cached: the next batch asks again.
        if !matches!(result, Err(RouteError::Temporary(_)))
            && let Ok(mut cache) = self.routes.lock()
        {
            cache.insert(domain.to_string(), (Instant::now(), result.clone()));
        }
        result
    }

    async fn mx_addrs(&self, domain: &str) -> Result<Vec<SocketAddr>, RouteError> {
        let resolver = self.resolver()?;
        let fqdn = format!("{domain}.");
        let hosts: Vec<(u16, String)> = match resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => {
                let mut mx: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                        _ => None,
                    })
                    .collect();
                mx.sort();
                mx
            }
            Err(e) if e.is_nx_domain() => {
                return Err(RouteError::Permanent(format!(
                    "5.1.2 domain {domain} does not exist"
                )));
            }
            // No MX: the domain itself is the mail host (RFC 5321 5.1).
            Err(e) if e.is_no_records_found() => vec![(0, fqdn.clone())],
            Err(e) => {
                return Err(RouteError::Temporary(format!(
                    "4.4.3 MX lookup for {domain} failed: {e}"
                )));
            }
        };
        if hosts.len() == 1 && (hosts[0].1 == "." || hosts[0].1.is_empty()) {
            return Err(RouteError::Permanent(format!(
                "5.1.10 {domain} accepts no mail (null MX)"
            )));
        }
        let mut addrs = Vec::new();
        let mut last_error = None;
        for (_, host) in hosts {
            match resolver.lookup_ip(host.as_str()).await {
                Ok(ips) => addrs.extend(ips.iter().map(|ip| SocketAddr::new(ip, self.mx_port))),
                Err(e) => last_error = Some(format!("{host}: {e}")),
            }
        }
        if addrs.is_empty() {
            return Err(RouteError::Temporary(format!(
                "4.4.3 no address for the mail hosts of {domain}: {}",
                last_error.unwrap_or_default()
            )));
        }
        Ok(addrs)
    }

    async fn host_addrs(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, RouteError> {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        match tokio::net::lookup_host((host, port)).await {
            Ok(addrs) => Ok(addrs.collect()),
            Err(e) => Err(RouteError::Temporary(format!(
                "4.4.3 cannot resolve smarthost {host}: {e}"
            ))),
        }
    }

    fn resolver(&self) -> Result<&TokioResolver, RouteError> {
        self.resolver
            .as_ref()
            .ok_or_else(|| RouteError::Temporary("4.4.3 no DNS resolver configured".into()))
    }

    /// The DMARC policy of `domain`, falling back to its parent (a simple stand-in for the
    /// organisational domain). Lookup failures count as no policy: a copy is then sent
    /// as the author wrote it, as other list servers do.
    pub async fn dmarc(&self, domain: &str) -> Dmarc {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty() {
            return Dmarc::None;
        }
        if let Ok(cache) = self.policies.lock()
            && let Some((at, p)) = cache.get(&domain)
            && at.elapsed() < CACHE_FOR
        {
            return *p;
        }
        let mut policy = self.dmarc_record(&domain).await;
        if policy.is_none() {
            let labels: Vec<&str> = domain.split('.').collect();
            if labels.len() > 2 {
                let parent = labels[labels.len() - 2..].join(".");
                policy = self.dmarc_record(&parent).await;
            }
        }
        let policy = policy.unwrap_or(Dmarc::None);
        if let Ok(mut cache) = self.policies.lock() {
            cache.insert(domain, (Instant::now(), policy));
        }
        policy
    }

    async fn dmarc_record(&self, domain: &str) -> Option<Dmarc> {
        let resolver = self.resolver.as_ref()?;
        let lookup = resolver
            .txt_lookup(format!("_dmarc.{domain}.").as_str())
            .await
            .ok()?;
        lookup.answers().iter().find_map(|r| match &r.data {
            RData::TXT(txt) => {
                let text: String = txt
                    .txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part).into_owned())
                    .collect();
                parse_dmarc(&text)
            }
            _ => None,
        })
    }
}

/// The `p=` of a DMARC record; `None` when `text` is not one.
fn parse_dmarc(text: &str) -> Option<Dmarc> {
    let mut tags = text.split(';').map(|t| t.trim());
    if !tags.next()?.eq_ignore_ascii_case("v=DMARC1") {
        return None;
    }
    for tag in tags {
        if let Some((k, v)) = tag.split_once('=')
            && k.trim().eq_ignore_ascii_case("p")
        {
            let v = v.trim().to_ascii_lowercase();
            return Some(if v == "quarantine" || v == "reject" {
                Dmarc::Strict
            } else {
                Dmarc::None
            });
        }
    }
    Some(Dmarc::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmarc_records() {
        assert_eq!(parse_dmarc("v=DMARC1; p=reject"), Some(Dmarc::Strict));
        assert_eq!(
            parse_dmarc("v=DMARC1;p=quarantine;pct=100"),
            Some(Dmarc::Strict)
        );
        assert_eq!(parse_dmarc("v=DMARC1; p=none"), Some(Dmarc::None));
        assert_eq!(parse_dmarc("v=spf1 -all"), None);
    }
}

//! Who really sent a post: DKIM, SPF and DMARC checked once per post before the plugins
//! run (mail-auth), as an `Authentication-Results:` field on top of the post the plugins
//! see. Fields of that name that claim to come from this host are taken out of what the
//! plugins see first, so a sender cannot forge a pass. A lookup that does not answer in
//! time gives that post `temperror`, which lists that act on failures hold.

use std::{net::IpAddr, time::Duration};

use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator, Parameters,
    common::headers::HeaderWriter, dmarc::verify::DmarcParameters, spf::verify::SpfParameters,
};

use crate::{message, store::StoredMessage};

/// The most all checks of one post may take (less on a node whose processing lease is
/// short: a post's checks must end well inside the lease, see `Authenticator::new`).
const BUDGET: Duration = Duration::from_secs(3);

pub struct Authenticator {
    inner: Option<MessageAuthenticator>,
    /// The authserv-id: this node's host name.
    hostname: String,
    /// The most one post's checks may take.
    budget: Duration,
    /// Until when a check running out of time is not logged again (one line per outage,
    /// not one per post).
    quiet_until: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long after logging a check that ran out of time the next one is not logged.
const LOG_EVERY: Duration = Duration::from_secs(60);

impl Authenticator {
    /// `lease`: processing's lease. A post's checks take at most a sixth of it, so a round
    /// of processing that checks its posts still ends inside the lease.
    pub fn new(
        nameservers: &[std::net::SocketAddr],
        hostname: &str,
        lease: Duration,
    ) -> Authenticator {
        // The same resolver settings as delivery's (the crates share hickory's types).
        let inner = crate::delivery::route::dns_config(nameservers)
            .and_then(|(servers, opts)| MessageAuthenticator::new(servers, opts).ok());
        Authenticator {
            inner,
            hostname: hostname.to_string(),
            budget: BUDGET.min(lease / 6),
            quiet_until: std::sync::Mutex::new(None),
        }
    }

    /// The post's raw bytes as the plugins get them: this host's `Authentication-Results:`
    /// on top, any that claimed to be this host's removed.
    pub async fn annotate(&self, m: &StoredMessage) -> Vec<u8> {
        let mut raw = m.raw.clone();
        let forged: Vec<(usize, usize)> = message::fields(&raw)
            .into_iter()
            .filter(|f| {
                f.name.eq_ignore_ascii_case("authentication-results")
                    && f.value
                        .split(';')
                        .next()
                        .is_some_and(|id| id.trim().eq_ignore_ascii_case(&self.hostname))
            })
            .map(|f| (f.start, f.end))
            .collect();
        message::remove_ranges(&mut raw, &forged);
        // Every post is checked on its own: a check that runs out of time is `temperror`
        // for that post alone, which a list that acts on failures holds. (Skipping the
        // checks of every post for a while after one timed out let anything through.)
        let checked = match tokio::time::timeout(self.budget, self.results(m)).await {
            Ok(r) => r,
            Err(_) => {
                // Checks run out of time together when DNS stops answering: one line.
                let log = self.quiet_until.lock().is_ok_and(|mut q| {
                    let now = std::time::Instant::now();
                    let log = q.is_none_or(|until| until <= now);
                    if log {
                        *q = Some(now + LOG_EVERY);
                    }
                    log
                });
                if log {
                    tracing::warn!(
                        "sender checks ran out of time (is DNS answering?); such posts get temperror"
                    );
                }
                None
            }
        };
        let field = match checked {
            Some(field) => field,
            None => message::field_line(
                "Authentication-Results",
                &format!(
                    "{}; dkim=temperror; spf=temperror; dmarc=temperror",
                    self.hostname
                ),
            ),
        };
        tracing::debug!(results = %String::from_utf8_lossy(&field), "authentication");
        message::prepend_field(&mut raw, &field);
        raw
    }

    async fn results(&self, m: &StoredMessage) -> Option<Vec<u8>> {
        let auth = self.inner.as_ref()?;
        let verifiable = dkim_bounded(&m.raw);
        let msg = AuthenticatedMessage::parse(&verifiable)?;
        let ip: IpAddr = m.client_ip.parse().ok()?;
        let helo = m.helo.as_str();
        let dkim = auth.verify_dkim(Parameters::new(&msg)).await;
        let spf = auth
            .verify_spf(Parameters::new(SpfParameters::verify_mail_from(
                ip,
                helo,
                &self.hostname,
                &m.mail_from,
            )))
            .await;
        let mail_from_domain = m.mail_from.rsplit_once('@').map_or(helo, |(_, d)| d);
        let dmarc = auth
            .verify_dmarc(Parameters::new(DmarcParameters::new(
                &msg,
                &dkim,
                mail_from_domain,
                &spf,
            )))
            .await;
        let from = msg.from.first().map(String::as_str).unwrap_or("");
        let results = AuthenticationResults::new(&self.hostname)
            .with_dkim_results(&dkim, from)
            .with_spf_mailfrom_result(&spf, ip, &m.mail_from, helo);
        let mut field = Vec::new();
        results.write_header(&mut field);
        while field.ends_with(b"\r\n") {
            field.truncate(field.len() - 2);
        }
        // DMARC by RFC 7489 6.6.2: with a record, no aligned pass is a fail (mail-auth's own
        // summary says `none` when neither SPF nor DKIM gave any result at all).
        let verdict = if dmarc.dmarc_record().is_none() {
            "none"
        } else if [dmarc.spf_result(), dmarc.dkim_result()]
            .iter()
            .any(|r| matches!(r, DmarcResult::Pass))
        {
            "pass"
        } else if [dmarc.spf_result(), dmarc.dkim_result()]
            .iter()
            .any(|r| matches!(r, DmarcResult::TempError(_)))
        {
            "temperror"
        } else {
            "fail"
        };
        // The domain comes from the post: only name characters go into the field.
        let domain: String = from
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect();
        field.extend_from_slice(
            format!(
                ";\r\n\tdmarc={verdict} header.from={domain} policy.dmarc={}\r\n",
                dmarc.policy()
            )
            .as_bytes(),
        );
        Some(field)
    }
}

/// DKIM signatures verified at most, and the longest one verified. Verifying a signature
/// costs the square of its `h=` list plus that list times the header's fields (measured in
/// the library's code, not bounded there): a sender with a key of their own could otherwise
/// spend seconds of a processing thread on one post.
const MAX_SIGNATURES: usize = 5;
const MAX_SIGNATURE_BYTES: usize = 4096;
/// Past this many header fields, no signature is verified (DKIM gives `none`).
const MAX_FIELDS_FOR_DKIM: usize = 1000;

/// The post as DKIM verification sees it: signatures past [`MAX_SIGNATURES`], longer than
/// [`MAX_SIGNATURE_BYTES`], or in a header of more than [`MAX_FIELDS_FOR_DKIM`] fields
/// are left out. Borrowed when nothing is.
fn dkim_bounded(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let fields = message::fields(raw);
    let crowded = fields.len() > MAX_FIELDS_FOR_DKIM;
    let doomed: Vec<(usize, usize)> = fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("dkim-signature"))
        .enumerate()
        .filter(|(i, f)| crowded || *i >= MAX_SIGNATURES || f.end - f.start > MAX_SIGNATURE_BYTES)
        .map(|(_, f)| (f.start, f.end))
        .collect();
    if doomed.is_empty() {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut kept = raw.to_vec();
    message::remove_ranges(&mut kept, &doomed);
    std::borrow::Cow::Owned(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dkim_verifies_a_few_signatures_of_sane_size() {
        let sig = |n: usize| format!("DKIM-Signature: v=1; d=d{n}.example; h=from; b=x\r\n");
        let mut raw = String::new();
        for n in 0..8 {
            raw.push_str(&sig(n));
        }
        raw.push_str(&format!(
            "DKIM-Signature: v=1; h={}\r\n",
            "from:".repeat(2000)
        ));
        raw.push_str("From: a@example.org\r\n\r\nbody\r\n");
        let kept = dkim_bounded(raw.as_bytes());
        let kept = String::from_utf8_lossy(&kept);
        assert_eq!(kept.matches("DKIM-Signature:").count(), MAX_SIGNATURES);
        assert!(kept.contains("d4.example") && !kept.contains("d5.example"));
        assert!(kept.ends_with("From: a@example.org\r\n\r\nbody\r\n"));
        // A header of thousands of fields: nothing is verified.
        let crowded = format!(
            "{}{}\r\nbody",
            sig(0),
            "X-A: 1\r\n".repeat(MAX_FIELDS_FOR_DKIM)
        );
        assert!(!String::from_utf8_lossy(&dkim_bounded(crowded.as_bytes())).contains("DKIM"));
        let plain = b"From: a@example.org\r\n\r\nbody";
        assert!(matches!(dkim_bounded(plain), std::borrow::Cow::Borrowed(_)));
    }
}

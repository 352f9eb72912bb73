//! Sending one batch: the waiting recipients of one post at one domain, over one reused
//! connection, each copy filled from the template, edited by `on-deliver` plugins where a
//! list has them, signed, and paced by the domain's rate limit.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::Instrument;

use super::{
    Delivery,
    client::{ClientError, Connection},
    leases::Lease,
    prepare::Prepared,
    recorder::Record,
    route::RouteError,
    template::Slot,
};
use crate::{
    config::FailurePolicy,
    pipeline::edits,
    plugins::wit,
    store::{Batch, BatchEnd, DeliveryResult, Outcome, Recipient, now_ms},
    tokens::Purpose,
};

/// Connections opened for one batch after the first fails, before the rest waits.
const RECONNECTS: u32 = 2;

impl Delivery {
    /// Send a batch and hand every outcome, then the batch's end, to the recorder.
    /// `recipients`: the batch's waiting recipients when the claim loaded them.
    pub(super) async fn send_batch(
        self: Arc<Self>,
        batch: Batch,
        lease: Arc<Lease>,
        recipients: Option<Vec<Recipient>>,
    ) {
        let span = tracing::info_span!(
            "delivery",
            batch = batch.id,
            post = %batch.message_id,
            domain = %batch.domain,
            attempt = batch.attempts
        );
        let tx = self.recorder.clone();
        let end = self
            .run_batch(&batch, &lease, &tx, recipients)
            .instrument(span)
            .await;
        let _ = tx.send(Record::End(end)).await;
    }

    async fn run_batch(
        &self,
        batch: &Batch,
        lease: &Lease,
        tx: &mpsc::Sender<Record>,
        preloaded: Option<Vec<Recipient>>,
    ) -> BatchEnd {
        let retry = |reply: String| BatchEnd {
            batch: batch.id,
            retry_at: Some(now_ms() + self.backoff_ms(batch.attempts)),
            last_reply: Some(reply),
        };
        let post = match self.preparer.get(&batch.message_id).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot prepare the post");
                return retry(format!("4.3.0 {e}"));
            }
        };
        let recipients = match preloaded {
            Some(r) => r,
            None => match self.store.batch_recipients(batch).await {
                Ok(r) => r,
                Err(e) => return retry(format!("4.3.0 {e}")),
            },
        };
        let report = |r: &Recipient, outcome: Outcome| {
            Record::Result(DeliveryResult {
                recipient: r.id,
                list: post.list.address.clone(),
                message_id: post.id.clone(),
                member_id: r.member_id,
                address: r.address.clone(),
                outcome,
            })
        };
        let age = now_ms() - post.since;
        if age > i64::try_from(self.config.max_age.as_millis()).unwrap_or(i64::MAX) {
            for r in &recipients {
                let outcome = Outcome::Failed {
                    reply: "4.4.7 message expired: delivery kept failing".into(),
                    status: "4.4.7".into(),
                    expired: true,
                };
                let _ = tx.send(report(r, outcome)).await;
            }
            tracing::warn!(
                recipients = recipients.len(),
                "post expired for these recipients"
            );
            return BatchEnd {
                batch: batch.id,
                retry_at: None,
                last_reply: None,
            };
        }
        if recipients.is_empty() {
            return BatchEnd {
                batch: batch.id,
                retry_at: None,
                last_reply: None,
            };
        }
        let addrs = match self.router.route(&batch.domain).await {
            Ok(a) => a,
            Err(RouteError::Permanent(reason)) => {
                for r in &recipients {
                    let outcome = Outcome::Failed {
                        status: reason.split_whitespace().next().unwrap_or("5.0.0").into(),
                        reply: reason.clone(),
                        expired: false,
                    };
                    let _ = tx.send(report(r, outcome)).await;
                }
                return BatchEnd {
                    batch: batch.id,
                    retry_at: None,
                    last_reply: Some(reason),
                };
            }
            Err(RouteError::Temporary(reason)) => {
                for r in &recipients {
                    let _ = tx.send(report(r, Outcome::Deferred(reason.clone()))).await;
                }
                return retry(reason);
            }
        };
        let gate = self.limits.gate(&batch.domain);
        let session = gate.session().await;

        let mut conn: Option<Connection> = self.pool.take(&addrs);
        let mut reused = conn.is_some();
        let mut reconnects = 0;
        let mut deferred: Option<String> = None;
        let mut copy = Vec::with_capacity(post.template.len() + 1024);
        let mut i = 0;
        while i < recipients.len() {
            let r = &recipients[i];
            if !lease.may_send().await {
                // The lease went to another node, ran out, or we are stopping: the rest is
                // given back.
                tracing::info!(left = recipients.len() - i, "batch given up: lease lost");
                break;
            }
            let Some(c) = conn.as_mut() else {
                match self.connect(&addrs).await {
                    Ok(c) => {
                        conn = Some(c);
                        reused = false;
                        continue;
                    }
                    Err(e) => {
                        let reason = format!("4.4.1 {e}");
                        tracing::warn!(error = %e, "cannot connect");
                        for r in &recipients[i..] {
                            let _ = tx.send(report(r, Outcome::Deferred(reason.clone()))).await;
                        }
                        deferred = Some(reason);
                        break;
                    }
                }
            };
            copy.clear();
            let from = match self.copy_for(&post, r, &mut copy).await {
                Ok(from) => from,
                Err(reason) => {
                    let _ = tx.send(report(r, Outcome::Deferred(reason.clone()))).await;
                    deferred = Some(reason);
                    i += 1;
                    continue;
                }
            };
            gate.pace().await;
            match c.send(&from, &r.address, &copy).await {
                Ok(reply) => {
                    let usable = c.usable_after(&reply);
                    let outcome = if reply.is_positive() {
                        Outcome::Sent(reply.summary())
                    } else if reply.is_permanent() {
                        Outcome::Failed {
                            status: reply.status(),
                            reply: reply.summary(),
                            expired: false,
                        }
                    } else {
                        deferred = Some(reply.summary());
                        Outcome::Deferred(reply.summary())
                    };
                    let _ = tx.send(report(r, outcome)).await;
                    if !usable && let Some(c) = conn.take() {
                        crate::spawn(c.quit());
                    }
                    reused = false;
                    i += 1;
                }
                Err(e) => {
                    conn = None;
                    // An idle connection the server closed fails at once: nothing was
                    // sent on it, so the copy is simply tried on a new one.
                    if reused && matches!(e, ClientError::Io(_)) {
                        reused = false;
                        continue;
                    }
                    reconnects += 1;
                    let reason = format!("4.4.2 {e}");
                    tracing::warn!(error = %e, "connection failed during the batch");
                    let _ = tx.send(report(r, Outcome::Deferred(reason.clone()))).await;
                    deferred = Some(reason.clone());
                    i += 1;
                    if reconnects > RECONNECTS {
                        for r in &recipients[i..] {
                            let _ = tx.send(report(r, Outcome::Deferred(reason.clone()))).await;
                        }
                        break;
                    }
                }
            }
        }
        if let Some(c) = conn {
            self.pool.put(c);
        }
        drop(session);
        match deferred {
            Some(reply) => retry(reply),
            None if lease.stopped() => BatchEnd {
                batch: batch.id,
                retry_at: Some(now_ms()),
                last_reply: None,
            },
            None => BatchEnd {
                batch: batch.id,
                retry_at: None,
                last_reply: None,
            },
        }
    }

    /// Fill one copy into `out` and return its envelope sender (the VERP address). An
    /// error (a plugin failed under a fail-closed policy) defers this recipient.
    async fn copy_for(
        &self,
        post: &Prepared,
        r: &Recipient,
        out: &mut Vec<u8>,
    ) -> Result<String, String> {
        let member = r.member_id.and_then(|m| u64::try_from(m).ok()).unwrap_or(0);
        let rid = u64::try_from(r.id).unwrap_or(0);
        let (local, domain) = (post.list.local_part(), post.list.domain());
        let public = &self.public_url;
        let keys = &self.keys;
        post.template.fill(out, |slot, out| match slot {
            Slot::Address => out.extend_from_slice(one_line(&r.address).as_bytes()),
            Slot::Name => {
                out.extend_from_slice(one_line(r.name.as_deref().unwrap_or("")).as_bytes())
            }
            Slot::UnsubscribeUrl => {
                // The copy too: a bounce that quotes this link proves which copy it is about.
                let token = keys.sign(Purpose::Unsubscribe, &[member, rid]);
                out.extend_from_slice(format!("{public}/u/{token}").as_bytes());
            }
            Slot::OpenUrl => {
                let token = keys.sign(Purpose::Open, &[rid]);
                out.extend_from_slice(format!("{public}/t/o/{token}").as_bytes());
            }
            Slot::Link(n) if n as usize >= post.links.len() => {
                // A placeholder for a link nobody declared: left as written.
                out.extend_from_slice(format!("{{{{roost:link:{n}}}}}").as_bytes());
            }
            Slot::Link(n) => {
                let token = keys.sign(Purpose::Click, &[rid, u64::from(n)]);
                out.extend_from_slice(format!("{public}/t/c/{token}").as_bytes());
            }
        });
        if let Some(view) = &post.wit {
            let recipient = wit::Recipient {
                address: r.address.clone(),
                name: r.name.clone(),
            };
            for bound in &post.on_deliver {
                match self.runtime.on_deliver(bound, view, &recipient).await {
                    Ok(e) if e.is_empty() => {}
                    Ok(e) => *out = edits::apply(out, &e).0,
                    Err(e) => match post.list.on_plugin_error {
                        FailurePolicy::Accept => {
                            tracing::warn!(error = %e, "on-deliver failed; copy sent without its edits")
                        }
                        _ => return Err(format!("4.3.0 {e}")),
                    },
                }
            }
        }
        if let Some(signer) = &post.signer {
            match signer.sign(out) {
                Ok(field) => {
                    out.splice(0..0, field);
                }
                Err(e) => return Err(format!("4.3.0 DKIM signing failed: {e}")),
            }
        }
        let token = keys.sign(Purpose::Verp, &[rid, member]);
        Ok(format!("{local}-bounces+{token}@{domain}"))
    }

    /// Try each address in turn; STARTTLS first where offered, then plain text if the
    /// handshake fails (opportunistic TLS must never make mail undeliverable).
    async fn connect(&self, addrs: &[std::net::SocketAddr]) -> Result<Connection, ClientError> {
        let mut last = None;
        for &addr in addrs {
            match self.dialer.connect(addr, self.config.starttls).await {
                Ok(c) => return Ok(c),
                Err(ClientError::Tls(e)) => {
                    tracing::info!(error = %e, %addr, "STARTTLS failed; retrying without TLS");
                    match self.dialer.connect(addr, false).await {
                        Ok(c) => return Ok(c),
                        Err(e) => last = Some(e),
                    }
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClientError::Protocol("no address to connect to".into())))
    }

    /// Wait before the `attempts`-th retry: `retry_base`, doubling, up to `retry_max`.
    pub(super) fn backoff_ms(&self, attempts: i64) -> i64 {
        let base = self.config.retry_base.as_millis() as f64;
        let max = self.config.retry_max.as_millis() as f64;
        let exp = (attempts.clamp(1, 40) - 1) as i32;
        (base * 2f64.powi(exp)).min(max) as i64
    }
}

/// A value for a header or body: no line breaks or other control characters.
fn one_line(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

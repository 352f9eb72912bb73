//! Recorded bounces to the list's `on-bounce` plugins, each bounce once in the cluster: a
//! bounce is leased (like a job) by one node, handed to the plugins in chain order until
//! one handles it, then marked done. A node that dies part-way leaves the lease to lapse
//! and another node hands the same bounce (same id) again.

use std::{sync::Arc, time::Duration};

use tokio::sync::{Notify, watch};
use tracing::Instrument;

use crate::{
    pipeline::Chains,
    plugins::{Hook, Runtime, member_to_wit, wit},
    store::{BounceRow, Store},
};

/// Bounces claimed at once.
const BATCH: u32 = 64;
/// How long an idle handler waits when nobody wakes it.
const POLL: Duration = Duration::from_secs(1);

pub struct BounceHandler {
    pub store: Store,
    pub runtime: Arc<Runtime>,
    pub chains: Arc<Chains>,
    pub node: String,
    pub lease: Duration,
    /// Woken when bounces were recorded on this node.
    pub wake: Arc<Notify>,
}

impl BounceHandler {
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(30_000);
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.store.claim_bounces(&self.node, lease_ms, BATCH).await {
                Ok(rows) if !rows.is_empty() => {
                    self.handle_all(rows).await;
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot claim bounces"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
        if let Err(e) = self.store.release_bounces(&self.node).await {
            tracing::warn!(error = %e, "cannot release bounces at stop; their leases lapse");
        }
    }

    async fn handle_all(&self, rows: Vec<BounceRow>) {
        let mut handled = Vec::with_capacity(rows.len());
        let mut failed = Vec::new();
        for row in rows {
            let span =
                tracing::info_span!("bounce", id = row.id, list = %row.list, member = %row.address);
            match self.handle(&row).instrument(span).await {
                Handled::Yes => handled.push(row.id),
                Handled::Failed => failed.push(row.id),
                Handled::Later => {}
            }
        }
        for (ids, state) in [(handled, "handled"), (failed, "failed")] {
            if ids.is_empty() {
                continue;
            }
            if let Err(e) = self.store.finish_bounces(&self.node, &ids, state).await {
                tracing::warn!(error = %e, "cannot mark bounces done; they are handed again");
            }
        }
    }

    /// Hand one bounce to the plugins.
    async fn handle(&self, row: &BounceRow) -> Handled {
        let Some(chain) = self.chains.lists.get(&row.list) else {
            return Handled::Yes;
        };
        let plugins: Vec<_> = chain
            .iter()
            .filter(|b| b.plugin.implements(Hook::OnBounce))
            .collect();
        if plugins.is_empty() {
            return Handled::Yes;
        }
        let member = match self.store.member(&row.list, &row.address).await {
            Ok(m) => m.map(member_to_wit),
            Err(e) => {
                tracing::warn!(error = %e, "cannot look the member up; the bounce waits");
                return Handled::Later;
            }
        };
        let report = report(row, member);
        for bound in plugins {
            match self.runtime.on_bounce(bound, &report).await {
                Ok(wit::BounceAction::Handled) => return Handled::Yes,
                Ok(wit::BounceAction::Continue) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "on-bounce failed");
                    return Handled::Failed;
                }
            }
        }
        Handled::Yes
    }
}

enum Handled {
    Yes,
    /// A plugin failed on it: kept as `failed`, not retried (it would fail again).
    Failed,
    /// The database failed: the lease lapses and the bounce is handed again.
    Later,
}

fn report(row: &BounceRow, member: Option<wit::Member>) -> wit::BounceReport {
    wit::BounceReport {
        id: u64::try_from(row.id).unwrap_or(0),
        post_id: row.message_id.clone(),
        recipients: vec![wit::BouncedRecipient {
            address: row.address.clone(),
            action: row.action.clone(),
            status: row.status.clone(),
            diagnostic: row.diagnostic.clone(),
            temporary: row.temporary,
            reason: reason(&row.reason),
            member,
        }],
        format: row.format.clone(),
    }
}

fn reason(name: &str) -> wit::BounceReason {
    use wit::BounceReason as R;
    match name {
        "mailbox-unknown" => R::MailboxUnknown,
        "mailbox-full" => R::MailboxFull,
        "policy" => R::Policy,
        "dns-or-routing" => R::DnsOrRouting,
        "message-too-big" => R::MessageTooBig,
        "auto-reply" => R::AutoReply,
        "delay-notice" => R::DelayNotice,
        "complaint" => R::Complaint,
        _ => R::Unknown,
    }
}

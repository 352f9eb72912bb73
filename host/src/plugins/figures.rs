//! The `reports` import: read-only figures for report pages. A list's plugin sees its own
//! list's posts; a node-level plugin sees every list.

use std::time::Duration;

use super::{bindings::roost::list::reports, error::HostFailure, state::HostState};
use crate::{
    pipeline::edits,
    store::{self, now_ms},
};

/// Heartbeat and lease defaults, for node states when the node did not say (tests).
const DEFAULT_TIMING: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(30));

fn trap(what: &str, e: store::StoreError) -> wasmtime::Error {
    wasmtime::Error::new(HostFailure(format!("{what}: {e}")))
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn at(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

impl reports::Host for HostState {
    async fn post(&mut self, id: String) -> wasmtime::Result<Option<reports::PostFigures>> {
        let db = self.db()?;
        let Some(r) = db
            .post_report(&id)
            .await
            .map_err(|e| trap("reports.post", e))?
        else {
            return Ok(None);
        };
        if !self.scope.list.is_empty() && r.list != self.scope.list {
            return Ok(None);
        }
        let encoded = db
            .post_edits(&id)
            .await
            .map_err(|e| trap("reports.post", e))?;
        let urls = edits::tracked_links(encoded.as_deref());
        let links = r
            .links
            .iter()
            .map(|(n, c)| reports::LinkClicks {
                number: u32::try_from(*n).unwrap_or(0),
                url: usize::try_from(*n)
                    .ok()
                    .and_then(|i| urls.get(i))
                    .cloned()
                    .unwrap_or_default(),
                total: count(c.total),
                unique: count(c.unique),
            })
            .collect();
        let counts = |c: &store::Counts| reports::Counts {
            total: count(c.total),
            unique: count(c.unique),
        };
        Ok(Some(reports::PostFigures {
            opens: counts(&r.opens),
            clicks: counts(&r.clicks),
            id: r.id,
            list_address: r.list,
            subject: r.subject,
            received_at: at(r.received_at),
            recipients: count(r.recipients),
            delivered: count(r.delivered),
            deferred: count(r.deferred),
            waiting: count(r.waiting),
            bounced: count(r.bounced),
            unsubscribed: count(r.unsubscribed),
            prefetches: count(r.prefetches),
            links,
        }))
    }

    async fn recent_posts(&mut self, limit: u32) -> wasmtime::Result<Vec<reports::PostLine>> {
        let rows = self
            .db()?
            .recent_posts(&self.scope.list, limit)
            .await
            .map_err(|e| trap("reports.recent-posts", e))?;
        Ok(rows
            .into_iter()
            .map(|p| reports::PostLine {
                id: p.id,
                list_address: p.list,
                subject: p.subject,
                received_at: at(p.received_at),
                state: p.state,
            })
            .collect())
    }

    async fn nodes(&mut self) -> wasmtime::Result<Vec<reports::NodeLine>> {
        let db = self.db()?;
        let nodes = db.nodes().await.map_err(|e| trap("reports.nodes", e))?;
        let work = db.node_work().await.map_err(|e| trap("reports.nodes", e))?;
        let (heartbeat, lease) = self.timing.unwrap_or(DEFAULT_TIMING);
        Ok(nodes
            .into_iter()
            .map(|n| {
                let w = work.get(&n.name).cloned().unwrap_or_default();
                reports::NodeLine {
                    state: crate::cluster::node_state(&n, heartbeat, lease).to_string(),
                    last_heartbeat: at(n.heartbeat_at),
                    name: n.name,
                    version: n.version,
                    hostname: n.hostname,
                    processing: count(w.processing),
                    batches: count(w.batches),
                }
            })
            .collect())
    }

    async fn queue(&mut self) -> wasmtime::Result<Vec<reports::Destination>> {
        let lines = self
            .db()?
            .queue()
            .await
            .map_err(|e| trap("reports.queue", e))?;
        let now = now_ms();
        Ok(lines
            .into_iter()
            .map(|l| reports::Destination {
                domain: l.domain,
                recipients: count(l.recipients),
                batches: count(l.batches),
                sending: count(l.leased),
                next_attempt: at(l.next_attempt.max(now)),
                last_reply: l.last_reply,
            })
            .collect())
    }
}

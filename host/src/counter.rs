//! The event counts the reports read, kept up to date by every node: newly recorded events
//! are folded into `event_counts` about twice a second, each once in the cluster (see
//! `Store::count_new_events`). Clicks and opens then cost one row each on their way in,
//! and a report reads a few rows however many events a post drew.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::Store;

/// How often a node looks for events to count.
const INTERVAL: Duration = Duration::from_millis(500);
/// Events younger than this wait for the next round (see `count_new_events`).
const SETTLE_MS: i64 = 1_000;
/// Events counted in one transaction: small, because on SQLite the transaction holds the
/// one write lock the clicks' own commits wait for.
const ROUND: u32 = 2_000;
/// Between full rounds, room for the clicks' commits.
const BREATHE: Duration = Duration::from_millis(20);

pub async fn run(store: Store, mut shutdown: watch::Receiver<bool>) {
    loop {
        match store.count_new_events(SETTLE_MS, ROUND).await {
            // More are waiting: go on after a breath.
            Ok(n) if n == ROUND as usize => {
                tokio::time::sleep(BREATHE).await;
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot count events; the reports lag"),
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

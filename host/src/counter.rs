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
/// Events counted in one transaction.
const ROUND: u32 = 20_000;

pub async fn run(store: Store, mut shutdown: watch::Receiver<bool>) {
    loop {
        match store.count_new_events(SETTLE_MS, ROUND).await {
            // More are waiting: go on at once.
            Ok(n) if n == ROUND as usize => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot count events; the reports lag"),
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

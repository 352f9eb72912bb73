//! Group commit of delivery outcomes: every batch task hands its results here, and one
//! writer records whatever has gathered in one transaction. A copy's outcome reaches the
//! database within about `FLUSH` of its reply, so a node killed mid-fan-out repeats only
//! the copies of that last moment, and the database sees one commit for many copies.

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;

use super::leases::Leases;
use crate::store::{BatchEnd, DeliveryResult, Outcome, Store};

const FLUSH: Duration = Duration::from_millis(50);
const MAX_PENDING: usize = 2_000;

pub enum Record {
    Result(DeliveryResult),
    /// Sent after all of the batch's results, so they are recorded first.
    End(BatchEnd),
}

/// Run until every sender is dropped, then write what is left.
/// A batch whose end is written is released from `leases`.
pub async fn run(store: Store, node: String, leases: Arc<Leases>, mut rx: mpsc::Receiver<Record>) {
    let mut results = Vec::new();
    let mut ends = Vec::new();
    let mut open = true;
    while open || !results.is_empty() || !ends.is_empty() {
        if open {
            // Wait for the first record, then gather for a moment.
            if results.is_empty() && ends.is_empty() {
                match rx.recv().await {
                    Some(r) => push(r, &mut results, &mut ends),
                    None => open = false,
                }
            }
            let deadline = tokio::time::Instant::now() + FLUSH;
            while open && results.len() + ends.len() < MAX_PENDING {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(r)) => push(r, &mut results, &mut ends),
                    Ok(None) => open = false,
                    Err(_) => break,
                }
            }
        }
        if results.is_empty() && ends.is_empty() {
            continue;
        }
        match store.record_deliveries(&node, &results, &ends).await {
            Ok(()) => {
                count(&results);
                results.clear();
                leases.release(ends.drain(..).map(|e| e.batch));
            }
            Err(e) => {
                // Keep them: the copies were sent, and recording them is what stops a
                // repeat. The leases keep the batches ours meanwhile (renewed elsewhere).
                tracing::error!(error = %e, pending = results.len(), "cannot record deliveries; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn push(r: Record, results: &mut Vec<DeliveryResult>, ends: &mut Vec<BatchEnd>) {
    match r {
        Record::Result(r) => results.push(r),
        Record::End(e) => ends.push(e),
    }
}

fn count(results: &[DeliveryResult]) {
    use crate::metrics::{Counter, global};
    let (mut sent, mut deferred, mut failed) = (0, 0, 0);
    for r in results {
        match r.outcome {
            Outcome::Sent(_) => sent += 1,
            Outcome::Deferred(_) => deferred += 1,
            Outcome::Failed { .. } => failed += 1,
        }
    }
    global().add(Counter::CopiesDelivered, sent);
    global().add(Counter::CopiesDeferred, deferred);
    global().add(Counter::CopiesFailed, failed);
}

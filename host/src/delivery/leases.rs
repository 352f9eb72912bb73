//! The leases of the batches this node holds, as far as this node can be sure of them.
//!
//! A lease counts from the moment its claim or renewal was *asked*, not answered: a
//! database that stalls must not stretch it. A batch sends a copy only while its lease has a
//! third of it left; when renewals run late it waits for one rather than send on a lease
//! another node may already hold, and once the lease has run out it stops. A batch stays
//! held, and renewed, after its task ends until the recorder has committed its end: its
//! outcomes are in the database before any other node can read its recipients again.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// How often a batch whose renewal is late looks again.
const RECHECK: Duration = Duration::from_millis(20);

pub struct Leases {
    lease: Duration,
    /// What every lease's end is counted from.
    epoch: Instant,
    held: Mutex<HashMap<i64, Arc<Lease>>>,
}

/// Read before every copy: atomics, no lock.
pub struct Lease {
    stopped: AtomicBool,
    /// The lease's end, in µs after `epoch`.
    until: AtomicU64,
    epoch: Instant,
    margin: Duration,
}

impl Leases {
    pub fn new(lease: Duration) -> Leases {
        Leases {
            lease,
            epoch: Instant::now(),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// A batch claimed by a query asked at `asked`.
    pub fn hold(&self, batch: i64, asked: Instant) -> Arc<Lease> {
        let lease = Arc::new(Lease {
            stopped: AtomicBool::new(false),
            until: AtomicU64::new(micros(self.epoch, asked + self.lease)),
            epoch: self.epoch,
            margin: self.lease / 3,
        });
        if let Ok(mut held) = self.held.lock() {
            held.insert(batch, lease.clone());
        }
        lease
    }

    /// The batch's end is recorded: it is no longer ours to renew.
    pub fn release(&self, batches: impl IntoIterator<Item = i64>) {
        if let Ok(mut held) = self.held.lock() {
            for b in batches {
                held.remove(&b);
            }
        }
    }

    pub fn ids(&self) -> Vec<i64> {
        self.held
            .lock()
            .map_or_else(|_| Vec::new(), |h| h.keys().copied().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.held.lock().map_or(true, |h| h.is_empty())
    }

    /// A renewal of `asked` ids, asked at `at`, kept those in `kept`; the others are lost.
    pub fn renewed(&self, asked: &[i64], kept: &HashSet<i64>, at: Instant) {
        let Ok(held) = self.held.lock() else { return };
        for id in asked {
            let Some(lease) = held.get(id) else { continue };
            if kept.contains(id) {
                lease.extend(at + self.lease);
            } else {
                lease.stop();
            }
        }
    }

    /// Stop every batch (the node is stopping): each ends after its current copy.
    pub fn stop_all(&self) {
        if let Ok(held) = self.held.lock() {
            for lease in held.values() {
                lease.stop();
            }
        }
    }
}

impl Lease {
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    fn until(&self) -> Instant {
        self.epoch + Duration::from_micros(self.until.load(Ordering::Relaxed))
    }

    fn extend(&self, to: Instant) {
        self.until
            .fetch_max(micros(self.epoch, to), Ordering::Relaxed);
    }

    /// Whether the next copy may go out: at once while a third of the lease is left; after
    /// a wait when a renewal is late and then arrives; never once the batch is stopped or
    /// the lease has run out (then it is stopped too).
    pub async fn may_send(&self) -> bool {
        loop {
            if self.stopped() {
                return false;
            }
            let (until, now) = (self.until(), Instant::now());
            if until >= now + self.margin {
                return true;
            }
            if until <= now {
                tracing::warn!("batch lease ran out before its renewal came back; giving it up");
                self.stop();
                return false;
            }
            tokio::time::sleep(RECHECK.min(until - now)).await;
        }
    }
}

fn micros(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_late_renewal_holds_sending_and_a_lapsed_lease_stops_it() {
        let leases = Leases::new(Duration::from_millis(300));
        let lease = leases.hold(7, Instant::now());
        assert!(lease.may_send().await, "a fresh lease sends");

        // Two thirds of the lease gone and no renewal: the batch waits, then gives up.
        std::thread::sleep(Duration::from_millis(210));
        let waited = Instant::now();
        assert!(!lease.may_send().await);
        assert!(lease.stopped());
        assert!(
            waited.elapsed() >= Duration::from_millis(60),
            "{:?}",
            waited.elapsed()
        );
    }

    #[tokio::test]
    async fn a_renewal_extends_or_stops_what_it_asked_about() {
        let leases = Leases::new(Duration::from_millis(300));
        let kept = leases.hold(1, Instant::now());
        let lost = leases.hold(2, Instant::now());
        std::thread::sleep(Duration::from_millis(250));
        let at = Instant::now();
        leases.renewed(&[1, 2], &HashSet::from([1]), at);
        assert!(kept.may_send().await, "renewed: a whole lease again");
        assert!(!lost.may_send().await, "not kept: another node has it");
        leases.release([1, 2]);
        assert!(leases.is_empty());
    }

    #[tokio::test]
    async fn a_renewal_that_arrives_while_waiting_lets_the_batch_go_on() {
        let leases = Arc::new(Leases::new(Duration::from_millis(300)));
        let lease = leases.hold(1, Instant::now());
        std::thread::sleep(Duration::from_millis(220));
        let renewer = {
            let leases = leases.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(40)).await;
                leases.renewed(&[1], &HashSet::from([1]), Instant::now());
            })
        };
        assert!(lease.may_send().await);
        renewer.await.unwrap();
    }
}

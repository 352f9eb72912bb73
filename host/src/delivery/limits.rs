//! Per-destination limits for the whole cluster: sessions open at once to a domain, and
//! copies per second to it (10/s with 3 nodes gives at most 10/s in all).
//!
//! Both live in the database, but not one round trip per copy or per batch: a node leases
//! session slots (`session_slots`) and keeps them while it has batches for the domain,
//! handing them from batch to batch in memory, and gives back the ones idle for a couple of
//! seconds; rate tokens are taken a chunk at a time for the current second (`rate_windows`),
//! a tenth of the rate per chunk. If the database does not answer, a node falls back to its
//! own share: it keeps sending within the local caps.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    config::{DeliveryConfig, DomainLimits},
    store::Store,
};

/// How long to wait before asking again for a slot when all are taken.
const SLOT_WAIT: Duration = Duration::from_millis(200);
/// A slot this node holds but has not used for this long goes back to the cluster.
const SLOT_IDLE: Duration = Duration::from_secs(2);

/// The gate of one destination domain.
pub struct Gate {
    domain: String,
    limits: DomainLimits,
    local: Arc<Semaphore>,
    tokens: Mutex<Tokens>,
    /// Slots this node leases for the domain: in use (`None`), or idle since when.
    slots: Mutex<HashMap<i64, Option<std::time::Instant>>>,
    store: Store,
    node: String,
    lease_ms: i64,
}

/// Rate tokens this node holds for one second.
#[derive(Default)]
struct Tokens {
    second: i64,
    left: i64,
}

/// A session slot, held while a batch sends.
pub struct Session {
    _local: Option<OwnedSemaphorePermit>,
    slot: Option<i64>,
    gate: Arc<Gate>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // The slot stays leased by this node for its next batch to the domain; it goes
        // back to the cluster when it has been idle for a while (`Gate::reap`).
        if let Some(slot) = self.slot.take()
            && let Ok(mut slots) = self.gate.slots.lock()
        {
            slots.insert(slot, Some(std::time::Instant::now()));
        }
    }
}

fn now_seconds() -> (i64, Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let into = Duration::from_nanos(u64::from(now.subsec_nanos()));
    (i64::try_from(now.as_secs()).unwrap_or(i64::MAX), into)
}

impl Gate {
    /// A session slot of the domain, cluster-wide; waits while all are taken.
    pub async fn session(self: &Arc<Self>) -> Session {
        let local = self.local.clone().acquire_owned().await.ok();
        let session = |local, slot| Session {
            _local: local,
            slot,
            gate: self.clone(),
        };
        let idle = self.slots.lock().ok().and_then(|mut slots| {
            let slot = slots
                .iter()
                .find(|(_, idle)| idle.is_some())
                .map(|(s, _)| *s)?;
            slots.insert(slot, None);
            Some(slot)
        });
        if let Some(slot) = idle {
            return session(local, Some(slot));
        }
        let connections = i64::from(self.limits.connections);
        loop {
            match self
                .store
                .take_session_slot(&self.domain, connections, &self.node, self.lease_ms)
                .await
            {
                Ok(Some(slot)) => {
                    if let Ok(mut slots) = self.slots.lock() {
                        slots.insert(slot, None);
                    }
                    return session(local, Some(slot));
                }
                Ok(None) => tokio::time::sleep(SLOT_WAIT).await,
                Err(e) => {
                    tracing::warn!(error = %e, domain = %self.domain, "cannot take a session slot; using this node's own limit");
                    return session(local, None);
                }
            }
        }
    }

    /// Give back the slots idle for longer than [`SLOT_IDLE`].
    async fn reap(&self) {
        let stale: Vec<i64> = match self.slots.lock() {
            Ok(mut slots) => {
                let stale: Vec<i64> = slots
                    .iter()
                    .filter(|(_, idle)| idle.is_some_and(|t| t.elapsed() > SLOT_IDLE))
                    .map(|(s, _)| *s)
                    .collect();
                for s in &stale {
                    slots.remove(s);
                }
                stale
            }
            Err(_) => Vec::new(),
        };
        for slot in stale {
            if let Err(e) = self
                .store
                .release_session_slot(&self.domain, slot, &self.node)
                .await
            {
                tracing::warn!(error = %e, "cannot free a session slot; it frees when its lease runs out");
            }
        }
    }

    /// Wait until one more copy may go to the domain, cluster-wide.
    pub async fn pace(&self) {
        let rate = self.limits.rate;
        if rate <= 0.0 {
            return;
        }
        let limit = rate.ceil() as i64;
        let chunk = ((rate / 10.0).ceil() as i64).max(1);
        loop {
            let (second, into) = now_seconds();
            if let Ok(mut t) = self.tokens.lock()
                && t.second == second
                && t.left > 0
            {
                t.left -= 1;
                return;
            }
            match self
                .store
                .take_rate_tokens(&self.domain, second, chunk, limit)
                .await
            {
                Ok(0) => {
                    // This second is used up by the cluster: wait for the next.
                    tokio::time::sleep(Duration::from_secs(1).saturating_sub(into)).await;
                }
                Ok(granted) => {
                    if let Ok(mut t) = self.tokens.lock() {
                        if t.second != second {
                            *t = Tokens { second, left: 0 };
                        }
                        t.left += granted - 1;
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, domain = %self.domain, "cannot take rate tokens; pacing locally");
                    tokio::time::sleep(Duration::from_secs_f64(1.0 / rate)).await;
                    return;
                }
            }
        }
    }
}

impl Limits {
    /// Give back every gate's idle session slots (called from the delivery loop).
    pub async fn reap(&self) {
        let gates: Vec<Arc<Gate>> = match self.gates.lock() {
            Ok(g) => g.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        for g in gates {
            g.reap().await;
        }
    }
}

pub struct Limits {
    config: DeliveryConfig,
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    store: Store,
    node: String,
    lease_ms: i64,
}

impl Limits {
    pub fn new(config: &DeliveryConfig, store: Store, node: &str, lease: Duration) -> Limits {
        Limits {
            config: config.clone(),
            gates: Mutex::new(HashMap::new()),
            store,
            node: node.to_string(),
            lease_ms: i64::try_from(lease.as_millis()).unwrap_or(30_000),
        }
    }

    pub fn gate(&self, domain: &str) -> Arc<Gate> {
        let limits = self.config.limits(domain);
        let make = || {
            Arc::new(Gate {
                domain: domain.to_string(),
                limits,
                local: Arc::new(Semaphore::new(limits.connections as usize)),
                tokens: Mutex::new(Tokens::default()),
                slots: Mutex::new(HashMap::new()),
                store: self.store.clone(),
                node: self.node.clone(),
                lease_ms: self.lease_ms,
            })
        };
        match self.gates.lock() {
            Ok(mut gates) => gates.entry(domain.to_string()).or_insert_with(make).clone(),
            Err(_) => make(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pacing_holds_the_rate_across_gates() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let config = DeliveryConfig {
            default_limits: DomainLimits {
                connections: 2,
                rate: 20.0,
            },
            ..DeliveryConfig::default()
        };
        // Two nodes' gates for one domain share the database's tokens.
        let a = Limits::new(&config, store.clone(), "a", Duration::from_secs(5)).gate("x.example");
        let b = Limits::new(&config, store.clone(), "b", Duration::from_secs(5)).gate("x.example");
        let start = std::time::Instant::now();
        for i in 0..60 {
            if i % 2 == 0 {
                a.pace().await
            } else {
                b.pace().await
            }
        }
        // At most 20 per (aligned) second in all: 60 copies need three seconds' windows,
        // so they cross at least two second boundaries.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1000), "{took:?}");
        let windows: Vec<(i64, i64)> = sqlx::query_as("SELECT second, taken FROM rate_windows")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert!(windows.len() >= 3, "{windows:?}");
        assert!(windows.iter().all(|(_, t)| *t <= 20), "{windows:?}");
        // Two session slots, whichever node asks; a node reuses its own, and gives them
        // back once idle.
        let s1 = a.session().await;
        let s2 = b.session().await;
        assert_eq!(
            store
                .take_session_slot("x.example", 2, "c", 5000)
                .await
                .unwrap(),
            None
        );
        drop(s1);
        let again = a.session().await;
        assert_eq!(
            store
                .take_session_slot("x.example", 2, "c", 5000)
                .await
                .unwrap(),
            None
        );
        drop(again);
        drop(s2);
        tokio::time::sleep(SLOT_IDLE + Duration::from_millis(100)).await;
        a.reap().await;
        assert!(
            store
                .take_session_slot("x.example", 2, "c", 5000)
                .await
                .unwrap()
                .is_some()
        );
    }
}

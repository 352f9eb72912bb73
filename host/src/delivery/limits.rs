//! Per-destination limits on this node: sessions open at once and copies per second.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::DeliveryConfig;

/// The gate of one destination domain.
pub struct Gate {
    sessions: Arc<Semaphore>,
    rate: f64,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Gate {
    fn new(connections: u32, rate: f64) -> Gate {
        Gate {
            sessions: Arc::new(Semaphore::new(connections as usize)),
            rate,
            bucket: Mutex::new(Bucket {
                tokens: rate.max(1.0),
                at: Instant::now(),
            }),
        }
    }

    /// A session slot; held while a batch sends.
    pub async fn session(&self) -> Option<OwnedSemaphorePermit> {
        self.sessions.clone().acquire_owned().await.ok()
    }

    /// Wait until one more copy may go (a token bucket refilled at `rate` per second, with
    /// a burst of one second's worth). Waiters reserve their token before sleeping, so
    /// concurrent senders are spaced out rather than woken together.
    pub async fn pace(&self) {
        if self.rate <= 0.0 {
            return;
        }
        let wait = {
            let Ok(mut b) = self.bucket.lock() else {
                return;
            };
            let now = Instant::now();
            let burst = self.rate.max(1.0);
            b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(burst);
            b.at = now;
            b.tokens -= 1.0;
            if b.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-b.tokens / self.rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

pub struct Limits {
    config: DeliveryConfig,
    gates: Mutex<HashMap<String, Arc<Gate>>>,
}

impl Limits {
    pub fn new(config: &DeliveryConfig) -> Limits {
        Limits {
            config: config.clone(),
            gates: Mutex::new(HashMap::new()),
        }
    }

    pub fn gate(&self, domain: &str) -> Arc<Gate> {
        let limits = self.config.limits(domain);
        match self.gates.lock() {
            Ok(mut gates) => gates
                .entry(domain.to_string())
                .or_insert_with(|| Arc::new(Gate::new(limits.connections, limits.rate)))
                .clone(),
            Err(_) => Arc::new(Gate::new(limits.connections, limits.rate)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pacing_holds_the_rate() {
        let gate = Gate::new(1, 20.0);
        let start = Instant::now();
        for _ in 0..40 {
            gate.pace().await;
        }
        // 20 go at once (the burst), the next 20 take a second.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900), "{took:?}");
        assert!(took < Duration::from_millis(2000), "{took:?}");
    }
}

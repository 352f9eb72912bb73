//! Cluster-wide per-destination limits: rate tokens per second and leased session slots.

use super::{Result, Store, now_ms};

impl Store {
    /// Take up to `want` copies' worth of the domain's rate `limit` for the second
    /// `second`; returns how many were granted (0: the second is used up cluster-wide).
    pub async fn take_rate_tokens(
        &self,
        domain: &str,
        second: i64,
        want: i64,
        limit: i64,
    ) -> Result<i64> {
        let mut want = want.clamp(1, limit.max(1));
        // A conditional increment: either all `want` fit under the limit, or nothing
        // changes and a smaller request is tried (only the last few of a second).
        while want > 0 {
            let granted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO rate_windows (domain, second, taken) VALUES ($1, $2, $3) \
                 ON CONFLICT (domain, second) DO UPDATE SET taken = rate_windows.taken + $3 \
                 WHERE rate_windows.taken + $3 <= $4 RETURNING taken",
            )
            .bind(domain)
            .bind(second)
            .bind(want)
            .bind(limit)
            .fetch_optional(self.pool())
            .await?;
            if granted.is_some() {
                return Ok(want);
            }
            want /= 2;
        }
        Ok(0)
    }

    /// Forget rate windows older than `before` (seconds).
    pub async fn prune_rate_windows(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM rate_windows WHERE second < $1")
            .bind(before)
            .execute(self.pool())
            .await?
            .rows_affected())
    }

    /// Lease a free session slot of the domain (`0..connections`) for `node`; `None` when
    /// all are held by live leases.
    pub async fn take_session_slot(
        &self,
        domain: &str,
        connections: i64,
        node: &str,
        lease_ms: i64,
    ) -> Result<Option<i64>> {
        let now = now_ms();
        // Each node starts its search at its own place, so nodes seldom try the same slot
        // (each try is a statement).
        let start = node
            .bytes()
            .fold(0i64, |h, b| (h * 31 + i64::from(b)) % 1_000_003)
            % connections.max(1);
        for slot in (0..connections).map(|i| (start + i) % connections) {
            let taken: Option<i64> = sqlx::query_scalar(
                "INSERT INTO session_slots (domain, slot, node, lease_until) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (domain, slot) DO UPDATE SET node = $3, lease_until = $4 \
                 WHERE session_slots.lease_until < $5 RETURNING slot",
            )
            .bind(domain)
            .bind(slot)
            .bind(node)
            .bind(now + lease_ms)
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
            if taken.is_some() {
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }

    pub async fn release_session_slot(&self, domain: &str, slot: i64, node: &str) -> Result<()> {
        sqlx::query("DELETE FROM session_slots WHERE domain = $1 AND slot = $2 AND node = $3")
            .bind(domain)
            .bind(slot)
            .bind(node)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Extend the leases of every slot this node holds.
    pub async fn renew_session_slots(&self, node: &str, lease_ms: i64) -> Result<()> {
        sqlx::query("UPDATE session_slots SET lease_until = $1 WHERE node = $2")
            .bind(now_ms() + lease_ms)
            .bind(node)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

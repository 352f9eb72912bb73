//! Delivery counts per hour and node: written as deliveries finish, read by reports.

use sqlx::Row;

use super::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourStats {
    pub hour: i64,
    pub node: String,
    pub attempted: u64,
    pub succeeded: u64,
    pub failed: u64,
}

const HOUR_MS: i64 = 3_600_000;

impl Store {
    /// Add to the counts of the hour containing `at` for `node`.
    pub async fn add_delivery_stats(
        &self,
        node: &str,
        at: i64,
        attempted: u64,
        succeeded: u64,
        failed: u64,
    ) -> Result<()> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut tx = self.pool().begin().await?;
        add_stats(&mut tx, at, node, n(attempted), n(succeeded), n(failed)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Hours in `[start, end)` for one node or (`None`) each node, oldest first.
    pub async fn hourly_stats(
        &self,
        start: i64,
        end: i64,
        node: Option<&str>,
    ) -> Result<Vec<HourStats>> {
        let rows = sqlx::query(
            "SELECT hour, node, attempted, succeeded, failed FROM delivery_stats \
             WHERE hour >= $1 AND hour < $2 AND ($3 = '' OR node = $3) \
             ORDER BY hour, node LIMIT 100000",
        )
        .bind(start)
        .bind(end)
        .bind(node.unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        rows.iter()
            .map(|r| {
                Ok(HourStats {
                    hour: r.try_get(0)?,
                    node: r.try_get(1)?,
                    attempted: n(r.try_get(2)?),
                    succeeded: n(r.try_get(3)?),
                    failed: n(r.try_get(4)?),
                })
            })
            .collect()
    }
}

/// Add to the counts of the hour containing `at`, inside a caller's transaction (delivery
/// records its outcomes and their counts together).
pub(super) async fn add_stats(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    at: i64,
    node: &str,
    attempted: i64,
    succeeded: i64,
    failed: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO delivery_stats (hour, node, attempted, succeeded, failed) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hour, node) DO UPDATE SET \
         attempted = delivery_stats.attempted + excluded.attempted, \
         succeeded = delivery_stats.succeeded + excluded.succeeded, \
         failed = delivery_stats.failed + excluded.failed",
    )
    .bind(at - at.rem_euclid(HOUR_MS))
    .bind(node)
    .bind(attempted)
    .bind(succeeded)
    .bind(failed)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

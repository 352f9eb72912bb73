//! Scheduled runs: each occurrence of a plugin's schedule runs once in the cluster.

use super::{Result, Store, now_ms};

/// Who runs one occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence<'a> {
    pub list: &'a str,
    pub plugin: &'a str,
    pub task: &'a str,
    pub key: &'a str,
}

impl Store {
    /// Take an occurrence for `node`: the first node to insert its row runs it; a row left
    /// `running` by a node whose lease lapsed (it died mid-run) is taken over. `false`:
    /// it ran, or another node runs it (should that node die, [`Store::lapsed_occurrences`]
    /// names it once its lease lapses).
    pub async fn claim_occurrence(
        &self,
        o: &Occurrence<'_>,
        node: &str,
        lease_ms: i64,
    ) -> Result<bool> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO schedule_runs (list, plugin, task, occurrence, node, state, lease_until, started_at) \
             VALUES ($1, $2, $3, $4, $5, 'running', $6, $7) \
             ON CONFLICT (list, plugin, task, occurrence) DO NOTHING",
        )
        .bind(o.list)
        .bind(o.plugin)
        .bind(o.task)
        .bind(o.key)
        .bind(node)
        .bind(now + lease_ms)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(true);
        }
        let taken = sqlx::query(
            "UPDATE schedule_runs SET node = $5, lease_until = $6, started_at = $7 \
             WHERE list = $1 AND plugin = $2 AND task = $3 AND occurrence = $4 \
             AND state = 'running' AND lease_until < $7",
        )
        .bind(o.list)
        .bind(o.plugin)
        .bind(o.task)
        .bind(o.key)
        .bind(node)
        .bind(now + lease_ms)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// Extend `node`'s lease on an occurrence it runs; `false` when it is no longer its own.
    pub async fn renew_occurrence(
        &self,
        o: &Occurrence<'_>,
        node: &str,
        lease_ms: i64,
    ) -> Result<bool> {
        let renewed = sqlx::query(
            "UPDATE schedule_runs SET lease_until = $6 \
             WHERE list = $1 AND plugin = $2 AND task = $3 AND occurrence = $4 \
             AND node = $5 AND state = 'running'",
        )
        .bind(o.list)
        .bind(o.plugin)
        .bind(o.task)
        .bind(o.key)
        .bind(node)
        .bind(now_ms() + lease_ms)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(renewed == 1)
    }

    /// Keep `schedule_runs` small: a run left `running` a day past its lease (its list or
    /// plugin is gone, so no node takes it over) becomes `abandoned`; finished runs older
    /// than `keep_ms` go, except each task's latest, which tells nodes it ran.
    pub async fn prune_occurrences(&self, keep_ms: i64) -> Result<u64> {
        let now = now_ms();
        let abandoned = sqlx::query(
            "UPDATE schedule_runs SET state = 'abandoned', finished_at = $1 \
             WHERE state = 'running' AND lease_until < $2",
        )
        .bind(now)
        .bind(now - 86_400_000)
        .execute(self.pool())
        .await?
        .rows_affected();
        let deleted = sqlx::query(
            "DELETE FROM schedule_runs WHERE state <> 'running' AND finished_at < $1 \
             AND occurrence < (SELECT MAX(t.occurrence) FROM schedule_runs t \
             WHERE t.list = schedule_runs.list AND t.plugin = schedule_runs.plugin \
             AND t.task = schedule_runs.task)",
        )
        .bind(now - keep_ms)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(abandoned + deleted)
    }

    /// Occurrences left `running` by a node whose lease lapsed (it died mid-run), as
    /// (list, plugin, task, occurrence), oldest first.
    pub async fn lapsed_occurrences(&self) -> Result<Vec<(String, String, String, String)>> {
        let rows = sqlx::query_as(
            "SELECT list, plugin, task, occurrence FROM schedule_runs \
             WHERE state = 'running' AND lease_until < $1 ORDER BY started_at LIMIT 100",
        )
        .bind(now_ms())
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }

    /// Record how a run ended (`error` none: done).
    pub async fn finish_occurrence(
        &self,
        o: &Occurrence<'_>,
        node: &str,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE schedule_runs SET state = $5, finished_at = $6, error = $7 \
             WHERE list = $1 AND plugin = $2 AND task = $3 AND occurrence = $4 AND node = $8",
        )
        .bind(o.list)
        .bind(o.plugin)
        .bind(o.task)
        .bind(o.key)
        .bind(if error.is_some() { "failed" } else { "done" })
        .bind(now_ms())
        .bind(error)
        .bind(node)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

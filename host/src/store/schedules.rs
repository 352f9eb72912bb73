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
    /// another node has it, or it has run.
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

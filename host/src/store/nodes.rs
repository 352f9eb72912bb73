//! Node registration: a node name is held by one running process at a time, proven by a
//! heartbeat in the shared database.

use sqlx::Row;

use super::{Result, Store, now_ms};

/// A row of the `nodes` table.
#[derive(Debug, Clone)]
pub struct NodeRow {
    pub name: String,
    pub hostname: String,
    pub version: String,
    pub pid: i64,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub stopped: bool,
}

/// Who holds a node name, when registration is refused.
#[derive(Debug, Clone)]
pub struct NameTaken {
    pub hostname: String,
    pub pid: i64,
    pub heartbeat_age_ms: i64,
    /// The holder's last heartbeat as stored, for a race-free takeover.
    pub heartbeat_at: i64,
}

impl Store {
    /// Take `name` for this process (`instance`), unless a running node holds it and its
    /// last heartbeat is younger than `dead_after_ms`. One conditional upsert: two
    /// processes starting with one name at once cannot both win.
    pub async fn register_node(
        &self,
        name: &str,
        instance: &str,
        hostname: &str,
        dead_after_ms: i64,
    ) -> Result<Result<(), NameTaken>> {
        let now = now_ms();
        let won: Option<String> = sqlx::query_scalar(
            "INSERT INTO nodes (name, instance, hostname, version, pid, started_at, heartbeat_at, state) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, 'running') \
             ON CONFLICT (name) DO UPDATE SET instance = excluded.instance, hostname = excluded.hostname, \
             version = excluded.version, pid = excluded.pid, started_at = excluded.started_at, \
             heartbeat_at = excluded.heartbeat_at, state = 'running' \
             WHERE nodes.state = 'stopped' OR nodes.heartbeat_at < $7 \
             RETURNING instance",
        )
        .bind(name)
        .bind(instance)
        .bind(hostname)
        .bind(env!("CARGO_PKG_VERSION"))
        .bind(i64::from(std::process::id()))
        .bind(now)
        .bind(now - dead_after_ms)
        .fetch_optional(self.pool())
        .await?;
        if won.as_deref() == Some(instance) {
            return Ok(Ok(()));
        }
        let holder = sqlx::query("SELECT hostname, pid, heartbeat_at FROM nodes WHERE name = $1")
            .bind(name)
            .fetch_one(self.pool())
            .await?;
        let heartbeat_at: i64 = holder.try_get(2)?;
        Ok(Err(NameTaken {
            hostname: holder.try_get(0)?,
            pid: holder.try_get(1)?,
            heartbeat_age_ms: now - heartbeat_at,
            heartbeat_at,
        }))
    }

    /// Take the name from a holder known to be dead (same machine, process gone), only if
    /// nothing changed since it was seen.
    pub async fn take_over_node(
        &self,
        name: &str,
        instance: &str,
        seen: &NameTaken,
    ) -> Result<bool> {
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE nodes SET instance = $1, pid = $2, started_at = $3, heartbeat_at = $3, state = 'running', \
             version = $4 WHERE name = $5 AND hostname = $6 AND pid = $7 AND heartbeat_at = $8",
        )
        .bind(instance)
        .bind(i64::from(std::process::id()))
        .bind(now)
        .bind(env!("CARGO_PKG_VERSION"))
        .bind(name)
        .bind(&seen.hostname)
        .bind(seen.pid)
        .bind(seen.heartbeat_at)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Renew this process's claim on its name; `false` when another process holds it now.
    pub async fn heartbeat(&self, name: &str, instance: &str) -> Result<bool> {
        let n = sqlx::query("UPDATE nodes SET heartbeat_at = $1 WHERE name = $2 AND instance = $3")
            .bind(now_ms())
            .bind(name)
            .bind(instance)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Mark a clean stop, so the name is free at once.
    pub async fn node_stopped(&self, name: &str, instance: &str) -> Result<()> {
        sqlx::query("UPDATE nodes SET state = 'stopped', heartbeat_at = $1 WHERE name = $2 AND instance = $3")
            .bind(now_ms())
            .bind(name)
            .bind(instance)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn nodes(&self) -> Result<Vec<NodeRow>> {
        let rows = sqlx::query(
            "SELECT name, hostname, version, pid, started_at, heartbeat_at, state FROM nodes ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NodeRow {
                    name: r.try_get(0)?,
                    hostname: r.try_get(1)?,
                    version: r.try_get(2)?,
                    pid: r.try_get(3)?,
                    started_at: r.try_get(4)?,
                    heartbeat_at: r.try_get(5)?,
                    stopped: r.try_get::<String, _>(6)? == "stopped",
                })
            })
            .collect()
    }
}

/// What a node holds leases on right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeWork {
    /// Posts (and other mail) being processed.
    pub processing: i64,
    /// Delivery batches being sent.
    pub batches: i64,
    /// Scheduled runs in progress.
    pub schedules: i64,
}

impl Store {
    /// Unexpired leases per node.
    pub async fn node_work(&self) -> Result<std::collections::HashMap<String, NodeWork>> {
        let now = super::now_ms();
        let mut out: std::collections::HashMap<String, NodeWork> = std::collections::HashMap::new();
        let counts: [(&str, &str); 3] = [
            (
                "processing",
                "SELECT lease_owner, COUNT(*) FROM messages WHERE state = 'stored' AND lease_owner IS NOT NULL AND lease_until >= $1 GROUP BY lease_owner",
            ),
            (
                "batches",
                "SELECT lease_owner, COUNT(*) FROM batches WHERE lease_owner IS NOT NULL AND lease_until >= $1 GROUP BY lease_owner",
            ),
            (
                "schedules",
                "SELECT node, COUNT(*) FROM schedule_runs WHERE state = 'running' AND lease_until >= $1 GROUP BY node",
            ),
        ];
        for (what, sql) in counts {
            let rows: Vec<(String, i64)> =
                sqlx::query_as(sql).bind(now).fetch_all(self.pool()).await?;
            for (node, n) in rows {
                let w = out.entry(node).or_default();
                match what {
                    "processing" => w.processing = n,
                    "batches" => w.batches = n,
                    _ => w.schedules = n,
                }
            }
        }
        Ok(out)
    }
}

//! Events that plugins record (clicks, opens, their own kinds) and count.

use sqlx::Row;

use super::{Result, Store, now_ms};

#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub kind: String,
    pub post_id: Option<String>,
    pub member: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub kind: String,
    pub post_id: Option<String>,
    pub key: Option<String>,
    pub since: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventCounts {
    pub total: u64,
    pub unique_members: u64,
}

impl Store {
    pub async fn emit_event(&self, list: &str, plugin: &str, event: &NewEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO events (list, plugin, kind, post_id, member, key, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(list)
        .bind(plugin)
        .bind(&event.kind)
        .bind(&event.post_id)
        .bind(event.member.as_deref().map(str::to_lowercase))
        .bind(&event.key)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Record many events of the same plugin in one transaction: (list, event) pairs.
    pub async fn emit_events(&self, plugin: &str, events: &[(String, NewEvent)]) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        for chunk in events.chunks(500) {
            let sql = format!(
                "INSERT INTO events (plugin, at, list, kind, post_id, member, key) VALUES {}",
                // Every row starts with the shared plugin and time, `$1` and `$2`.
                super::messages::values_list(chunk.len(), 5, 3, "").replace('(', "($1, $2, ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(plugin).bind(now);
            for (list, e) in chunk {
                q = q
                    .bind(list)
                    .bind(&e.kind)
                    .bind(&e.post_id)
                    .bind(e.member.as_deref().map(str::to_lowercase))
                    .bind(&e.key);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Count a list's events of one kind, optionally for one post and one key.
    pub async fn count_events(&self, list: &str, q: &EventQuery) -> Result<EventCounts> {
        // An absent filter matches everything: `$n = ''` stands for "no filter" so the
        // statement stays one text with typed parameters on both backends.
        let row = sqlx::query(
            "SELECT COUNT(*), COUNT(DISTINCT member) FROM events \
             WHERE list = $1 AND kind = $2 \
             AND ($3 = '' OR post_id = $3) AND ($4 = '' OR key = $4) AND at >= $5",
        )
        .bind(list)
        .bind(&q.kind)
        .bind(q.post_id.as_deref().unwrap_or(""))
        .bind(q.key.as_deref().unwrap_or(""))
        .bind(q.since.unwrap_or(0))
        .fetch_one(self.pool())
        .await?;
        let n =
            |i: usize| -> Result<u64> { Ok(u64::try_from(row.try_get::<i64, _>(i)?).unwrap_or(0)) };
        Ok(EventCounts {
            total: n(0)?,
            unique_members: n(1)?,
        })
    }
}

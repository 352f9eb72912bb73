//! Events that plugins record (clicks, opens, their own kinds) and count.

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::{Result, Store, messages::values_list, now_ms};

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
        self.emit_events(plugin, &[(list.to_string(), event.clone())])
            .await
    }

    /// Record many events of the same plugin in one transaction: (list, event) pairs.
    pub async fn emit_events(&self, plugin: &str, events: &[(String, NewEvent)]) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        for chunk in events.chunks(500) {
            let sql = format!(
                "INSERT INTO events (plugin, at, list, kind, post_id, member, key) VALUES {}",
                // Every row starts with the shared plugin and time, `$1` and `$2`.
                values_list(chunk.len(), 5, 3, "").replace('(', "($1, $2, ")
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

/// An event as the counter reads it: id, plugin, list, kind, post, member, key.
type EventRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// (post, kind, key): key "" counts every event of the kind, whatever its key.
type CountKey = (String, String, String);

/// 64 bits of SHA-256 over what makes a member unique for a count.
fn member_hash(plugin: &str, (post, kind, key): &CountKey, member: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [plugin, post, kind, key, member] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    i64::from_le_bytes(first)
}

/// Add events to `event_counts` (in the caller's transaction): each event with a post
/// counts for its kind and, when it has a key, for that key; a member counts as unique the
/// first time `event_members` takes them.
async fn count_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    plugin: &str,
    events: &[(String, NewEvent)],
) -> Result<()> {
    let mut totals: BTreeMap<CountKey, (i64, i64)> = BTreeMap::new();
    let mut members: Vec<(CountKey, String)> = Vec::new();
    for (_, e) in events {
        let Some(post) = &e.post_id else { continue };
        let mut keys = vec![(post.clone(), e.kind.clone(), String::new())];
        if let Some(k) = e.key.as_deref().filter(|k| !k.is_empty()) {
            keys.push((post.clone(), e.kind.clone(), k.to_string()));
        }
        for key in keys {
            totals.entry(key.clone()).or_default().0 += 1;
            if let Some(m) = &e.member {
                members.push((key, m.to_lowercase()));
            }
        }
    }
    if totals.is_empty() {
        return Ok(());
    }
    let hashed: HashMap<i64, CountKey> = members
        .into_iter()
        .map(|(key, member)| (member_hash(plugin, &key, &member), key))
        .collect();
    let hashes: Vec<i64> = hashed.keys().copied().collect();
    for chunk in hashes.chunks(500) {
        let sql = format!(
            "INSERT INTO event_members (h) VALUES {} ON CONFLICT DO NOTHING RETURNING h",
            values_list(chunk.len(), 1, 1, "")
        );
        let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
        for h in chunk {
            q = q.bind(h);
        }
        for new in q.fetch_all(&mut **tx).await? {
            if let Some(t) = hashed.get(&new).and_then(|k| totals.get_mut(k)) {
                t.1 += 1;
            }
        }
    }
    let rows: Vec<(&CountKey, &(i64, i64))> = totals.iter().collect();
    for chunk in rows.chunks(200) {
        let sql = format!(
            "INSERT INTO event_counts (plugin, post_id, kind, key, total, uniq) VALUES {} \
             ON CONFLICT (post_id, plugin, kind, key) DO UPDATE SET \
             total = event_counts.total + excluded.total, uniq = event_counts.uniq + excluded.uniq",
            values_list(chunk.len(), 5, 2, "").replace('(', "($1, ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(plugin);
        for ((post, kind, key), (total, uniq)) in chunk {
            q = q.bind(post).bind(kind).bind(key).bind(total).bind(uniq);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Fold events recorded at least `settle_ms` ago and not counted yet (at most `limit`)
    /// into `event_counts`; returns how many. Off the click path, so a click costs one row.
    /// Once in the cluster: the watermark moves by a conditional update in the same
    /// transaction, and a node that lost the race rolls back. Events younger than
    /// `settle_ms` wait, so a transaction that took a lower id but committed later is not
    /// skipped.
    pub async fn count_new_events(&self, settle_ms: i64, limit: u32) -> Result<usize> {
        let mut tx = self.pool().begin().await?;
        let last: i64 = sqlx::query_scalar("SELECT last_id FROM events_counted WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, plugin, list, kind, post_id, member, key FROM events \
                 WHERE id > $1 AND at <= $2 ORDER BY id LIMIT $3",
        )
        .bind(last)
        .bind(now_ms() - settle_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let Some(newest) = rows.last().map(|r| r.0) else {
            return Ok(0);
        };
        let mut by_plugin: BTreeMap<String, Vec<(String, NewEvent)>> = BTreeMap::new();
        for (_, plugin, list, kind, post_id, member, key) in &rows {
            by_plugin.entry(plugin.clone()).or_default().push((
                list.clone(),
                NewEvent {
                    kind: kind.clone(),
                    post_id: post_id.clone(),
                    member: member.clone(),
                    key: key.clone(),
                },
            ));
        }
        for (plugin, events) in &by_plugin {
            count_events(&mut tx, plugin, events).await?;
        }
        let moved =
            sqlx::query("UPDATE events_counted SET last_id = $1 WHERE id = 1 AND last_id = $2")
                .bind(newest)
                .bind(last)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if moved == 0 {
            // Another node counted them first.
            return Ok(0);
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// A post's counts of one plugin: (kind, key) → (total, unique members).
    pub async fn post_event_counts(
        &self,
        post: &str,
        plugin: &str,
    ) -> Result<BTreeMap<(String, String), (i64, i64)>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT kind, key, total, uniq FROM event_counts WHERE post_id = $1 AND plugin = $2",
        )
        .bind(post)
        .bind(plugin)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(kind, key, total, uniq)| ((kind, key), (total, uniq)))
            .collect())
    }
}

impl Store {
    /// Delete up to `batch` of the oldest events recorded before `before_ms` that the counts
    /// already hold (the reports read the counts, not the events); how many went. Oldest by
    /// id, which follows time, so each batch is a range of the primary key.
    pub async fn prune_events(&self, before_ms: i64, batch: u32) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT $1) \
             AND at < $2 AND id <= (SELECT last_id FROM events_counted WHERE id = 1)",
        )
        .bind(i64::from(batch))
        .bind(before_ms)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(done)
    }
}

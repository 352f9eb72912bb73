//! Delivery state: the recipients of each post, the batches they are sent in, and what
//! each attempt ended in.
//!
//! A post is expanded once (its `deliver` job is consumed in the same transaction) into one
//! `recipients` row per enabled member, numbered into batches of up to `batch_size`
//! recipients of one domain. A batch is leased like any job; its results are recorded in
//! groups (`record_deliveries`), so the database sees one transaction for many copies.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::{
    Backend, NewBounce, Result, Store,
    messages::{placeholders, values_list},
    now_ms,
};

/// A leased unit of delivery: some recipients of one post at one domain.
#[derive(Debug, Clone)]
pub struct Batch {
    pub id: i64,
    pub message_id: String,
    pub domain: String,
    pub seq: i64,
    /// Claims of this batch so far, this one included.
    pub attempts: i64,
}

/// A recipient still waiting for its copy.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub id: i64,
    pub member_id: Option<i64>,
    pub address: String,
    pub name: Option<String>,
}

/// How one attempt for one recipient ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent(String),
    /// A temporary failure: the recipient stays queued for a later attempt.
    Deferred(String),
    /// A permanent failure (5xx reply) or expiry: counted against the member.
    Failed {
        reply: String,
        status: String,
        expired: bool,
    },
}

/// One recipient's outcome, with what a bounce event needs.
#[derive(Debug, Clone)]
pub struct DeliveryResult {
    pub recipient: i64,
    pub list: String,
    pub message_id: String,
    pub member_id: Option<i64>,
    pub address: String,
    pub outcome: Outcome,
}

/// What happens to a batch once its attempt is over.
#[derive(Debug, Clone)]
pub struct BatchEnd {
    pub batch: i64,
    /// `None`: nobody in it waits any more; `Some(at)`: try the rest again at `at`.
    pub retry_at: Option<i64>,
    pub last_reply: Option<String>,
}

/// One line of `roost queue`.
#[derive(Debug, Clone)]
pub struct QueueLine {
    pub domain: String,
    pub batches: i64,
    pub recipients: i64,
    pub next_attempt: i64,
    pub leased: i64,
    pub last_reply: Option<String>,
}

/// The post as delivery reads it.
#[derive(Debug, Clone)]
pub struct PostForDelivery {
    pub id: String,
    pub list: String,
    pub kind: String,
    pub mail_from: String,
    pub raw: Vec<u8>,
    pub edits: Option<String>,
    /// When it became deliverable (accepted or approved); expiry counts from here.
    pub since: i64,
}

impl Store {
    /// Take up to `limit` posts' `deliver` jobs and turn them into recipients and batches,
    /// all in one transaction with the jobs' removal: a post is expanded exactly once even
    /// when nodes race (PostgreSQL's `SKIP LOCKED` gives each claimer other jobs; a node
    /// that dies mid-way rolls back and leaves them), and a burst of posts costs one commit,
    /// not one each. Returns the posts expanded and their recipients in all.
    pub async fn expand_posts(&self, limit: u32, batch_size: u32) -> Result<(Vec<String>, u64)> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // A job leased by a node of an older version (which expanded with a lease) is left
        // to it until the lease runs out.
        let claim = format!(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE kind = 'deliver' \
             AND run_after <= $1 AND lease_until < $1 ORDER BY id LIMIT $2{}) RETURNING message_id",
            self.skip_locked()
        );
        let posts: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(claim))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        if posts.is_empty() {
            tx.rollback().await?;
            return Ok((posts, 0));
        }
        let domain = match self.backend() {
            Backend::Sqlite => "substr(mb.address_key, instr(mb.address_key, '@') + 1)",
            Backend::Postgres => "split_part(mb.address_key, '@', 2)",
        };
        // The batch number comes from the row's rank within its post and domain: all in
        // the database, with no member list travelling to this node.
        let ids = placeholders(3, posts.len());
        let sql = format!(
            "INSERT INTO recipients (message_id, member_id, address, domain, seq, updated_at) \
             SELECT m.id, mb.id, mb.address, {domain}, \
                    (ROW_NUMBER() OVER (PARTITION BY m.id, {domain} ORDER BY mb.id) - 1) / $1, $2 \
             FROM messages m JOIN members mb ON mb.list = m.list AND mb.status = 'enabled' \
             WHERE m.id IN ({ids})"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.numbered(sql)))
            .bind(i64::from(batch_size))
            .bind(now);
        for id in &posts {
            q = q.bind(id);
        }
        let recipients = q.execute(&mut *tx).await?.rows_affected();
        if recipients > 0 {
            let sql = format!(
                "INSERT INTO batches (message_id, domain, seq, run_after, created_at) \
                 SELECT DISTINCT message_id, domain, seq, $1, $2 FROM recipients \
                 WHERE message_id IN ({ids})"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(self.numbered(sql)))
                .bind(now)
                .bind(now);
            for id in &posts {
                q = q.bind(id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok((posts, recipients))
    }

    /// Queue a message to explicit addresses (notices): recipients and batches at once.
    pub async fn enqueue_addresses(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        message_id: &str,
        addresses: &[String],
        batch_size: u32,
    ) -> Result<()> {
        let now = now_ms();
        let mut per_domain: HashMap<String, i64> = HashMap::new();
        for chunk in addresses.chunks(500) {
            let sql = format!(
                "INSERT INTO recipients (message_id, address, domain, seq, updated_at) VALUES {}",
                values_list(chunk.len(), 5, 1, "")
            );
            let sql = self.numbered(sql);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for a in chunk {
                let domain = a.rsplit_once('@').map_or("", |(_, d)| d).to_lowercase();
                let n = per_domain.entry(domain.clone()).or_insert(0);
                let seq = *n / i64::from(batch_size.max(1));
                *n += 1;
                q = q.bind(message_id).bind(a).bind(domain).bind(seq).bind(now);
            }
            q.execute(&mut **tx).await?;
        }
        insert_batches(tx, message_id, now).await
    }

    /// Lease up to `limit` batches that are due (their retry time has come and nobody
    /// holds them, or their holder's lease lapsed). The first batch of every domain comes
    /// before the second of any (`seq`): domains start together, and a node's later batches
    /// for a domain reuse its session slot there instead of taking another.
    pub async fn claim_batches(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Batch>> {
        self.claim(owner, lease_ms, limit, false).await
    }

    /// Lease batches whose holder went silent (its lease lapsed while it still held them):
    /// a dead node's work, which live nodes take on top of their own (see `delivery`).
    pub async fn claim_orphans(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Batch>> {
        self.claim(owner, lease_ms, limit, true).await
    }

    async fn claim(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: u32,
        orphans: bool,
    ) -> Result<Vec<Batch>> {
        let now = now_ms();
        let only = if orphans {
            " AND lease_owner IS NOT NULL"
        } else {
            ""
        };
        let lock = self.skip_locked();
        let sql = format!(
            "UPDATE batches SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM batches WHERE run_after <= $3 AND lease_until < $3{only} \
             ORDER BY run_after, seq, id LIMIT $4{lock}) \
             RETURNING id, message_id, domain, seq, attempts"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        let mut out: Vec<Batch> = rows
            .iter()
            .map(|r| {
                Ok(Batch {
                    id: r.try_get(0)?,
                    message_id: r.try_get(1)?,
                    domain: r.try_get(2)?,
                    seq: r.try_get(3)?,
                    attempts: r.try_get(4)?,
                })
            })
            .collect::<Result<_>>()?;
        out.sort_by_key(|b| b.id);
        Ok(out)
    }

    /// The recipients of a batch still waiting.
    pub async fn batch_recipients(&self, batch: &Batch) -> Result<Vec<Recipient>> {
        let rows = sqlx::query(
            "SELECT r.id, r.member_id, r.address, m.name FROM recipients r \
             LEFT JOIN members m ON m.id = r.member_id \
             WHERE r.message_id = $1 AND r.domain = $2 AND r.seq = $3 AND r.state = 'queued' \
             ORDER BY r.id",
        )
        .bind(&batch.message_id)
        .bind(&batch.domain)
        .bind(batch.seq)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Recipient {
                    id: r.try_get(0)?,
                    member_id: r.try_get(1)?,
                    address: r.try_get(2)?,
                    name: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// The waiting recipients of several batches in one query (a claim's worth), by batch.
    pub async fn recipients_of(&self, batches: &[Batch]) -> Result<HashMap<i64, Vec<Recipient>>> {
        let mut out: HashMap<i64, Vec<Recipient>> = HashMap::new();
        for chunk in batches.chunks(500) {
            let sql = format!(
                "SELECT b.id, r.id, r.member_id, r.address, m.name FROM batches b \
                 JOIN recipients r ON r.message_id = b.message_id AND r.domain = b.domain \
                 AND r.seq = b.seq AND r.state = 'queued' \
                 LEFT JOIN members m ON m.id = r.member_id \
                 WHERE b.id IN ({}) ORDER BY r.id",
                placeholders(1, chunk.len())
            );
            let sql = self.numbered(sql);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in chunk {
                q = q.bind(b.id);
            }
            for r in q.fetch_all(self.pool()).await? {
                out.entry(r.try_get(0)?).or_default().push(Recipient {
                    id: r.try_get(1)?,
                    member_id: r.try_get(2)?,
                    address: r.try_get(3)?,
                    name: r.try_get(4)?,
                });
            }
        }
        Ok(out)
    }

    /// Extend this node's leases on batches it is sending; returns those still its own.
    pub async fn renew_batches(
        &self,
        owner: &str,
        ids: &[i64],
        lease_ms: i64,
    ) -> Result<HashSet<i64>> {
        let now = now_ms();
        let mut held = HashSet::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = format!(
                "UPDATE batches SET lease_until = $2 WHERE lease_owner = $1 AND lease_until >= $3 \
                 AND id IN ({}) RETURNING id",
                placeholders(4, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .bind(now + lease_ms)
                .bind(now);
            for id in chunk {
                q = q.bind(id);
            }
            held.extend(q.fetch_all(self.pool()).await?);
        }
        Ok(held)
    }

    /// Record outcomes and batch ends, with the node's hourly counts and the bounce events
    /// of permanent failures, in one transaction.
    pub async fn record_deliveries(
        &self,
        node: &str,
        results: &[DeliveryResult],
        ends: &[BatchEnd],
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        for chunk in results.chunks(500) {
            let sql = format!(
                "UPDATE recipients SET state = v.column2, last_reply = v.column3, \
                 attempts = recipients.attempts + 1, updated_at = $1 \
                 FROM (VALUES {}) AS v WHERE recipients.id = v.column1",
                values_list(chunk.len(), 3, 2, "")
            );
            let sql = self.numbered(sql);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
            for r in chunk {
                let (state, reply) = match &r.outcome {
                    Outcome::Sent(reply) => ("sent", reply),
                    Outcome::Deferred(reply) => ("queued", reply),
                    Outcome::Failed { reply, expired, .. } => {
                        (if *expired { "expired" } else { "failed" }, reply)
                    }
                };
                q = q.bind(r.recipient).bind(state).bind(reply);
            }
            q.execute(&mut *tx).await?;
            let bounces: Vec<NewBounce> = chunk.iter().filter_map(delivery_bounce).collect();
            super::bounces::insert_bounces(&mut tx, &bounces, now).await?;
        }
        if !results.is_empty() {
            let sent = results
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Sent(_)))
                .count() as i64;
            let failed = results
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
                .count() as i64;
            super::stats::add_stats(&mut tx, now, node, results.len() as i64, sent, failed).await?;
        }
        for end in ends {
            match end.retry_at {
                None => {
                    sqlx::query("DELETE FROM batches WHERE id = $1 AND lease_owner = $2")
                        .bind(end.batch)
                        .bind(node)
                        .execute(&mut *tx)
                        .await?;
                }
                Some(at) => {
                    sqlx::query(
                        "UPDATE batches SET lease_owner = NULL, lease_until = 0, run_after = $1, \
                         last_reply = COALESCE($2, last_reply) WHERE id = $3 AND lease_owner = $4",
                    )
                    .bind(at)
                    .bind(&end.last_reply)
                    .bind(end.batch)
                    .bind(node)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The post of a batch with what delivery needs to prepare it.
    pub async fn post_for_delivery(&self, id: &str) -> Result<Option<PostForDelivery>> {
        let row = sqlx::query(
            "SELECT id, list, kind, mail_from, raw, edits, COALESCE(decided_at, received_at) \
             FROM messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(PostForDelivery {
                id: r.try_get(0)?,
                list: r.try_get(1)?,
                kind: r.try_get(2)?,
                mail_from: r.try_get(3)?,
                raw: r.try_get(4)?,
                edits: r.try_get(5)?,
                since: r.try_get(6)?,
            })
        })
        .transpose()
    }

    /// What waits, per destination domain.
    pub async fn queue(&self) -> Result<Vec<QueueLine>> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT b.domain, COUNT(DISTINCT b.id), COUNT(r.id), MIN(b.run_after), \
             COUNT(DISTINCT CASE WHEN b.lease_until >= $1 THEN b.id END) \
             FROM batches b JOIN recipients r ON r.message_id = b.message_id \
             AND r.domain = b.domain AND r.seq = b.seq AND r.state = 'queued' \
             GROUP BY b.domain ORDER BY COUNT(r.id) DESC, b.domain",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        let replies: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT domain, last_reply FROM batches WHERE last_reply IS NOT NULL \
             ORDER BY run_after DESC",
        )
        .fetch_all(self.pool())
        .await?;
        let mut last: HashMap<String, String> = HashMap::new();
        for (domain, reply) in replies {
            if let Some(reply) = reply {
                last.entry(domain).or_insert(reply);
            }
        }
        rows.iter()
            .map(|r| {
                let domain: String = r.try_get(0)?;
                Ok(QueueLine {
                    last_reply: last.get(&domain).cloned(),
                    domain,
                    batches: r.try_get(1)?,
                    recipients: r.try_get(2)?,
                    next_attempt: r.try_get(3)?,
                    leased: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// What tracking tokens' recipient rows stand for: id → (list, post id, address). One
    /// query for many (the click handlers' lookups are gathered).
    pub async fn tracked_recipients(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, (String, String, String)>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT r.id, m.list, r.message_id, r.address FROM recipients r \
                 JOIN messages m ON m.id = r.message_id WHERE r.id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q =
                sqlx::query_as::<_, (i64, String, String, String)>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            for (id, list, post, address) in q.fetch_all(self.pool()).await? {
                out.insert(id, (list, post, address));
            }
        }
        Ok(out)
    }

    /// A post's stored edits (the tracked links are declared there).
    pub async fn post_edits(&self, id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar::<_, Option<String>>("SELECT edits FROM messages WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .flatten(),
        )
    }

    /// Recipient counts of a post by state (for tests, `roost queue` and reports).
    pub async fn recipient_states(&self, message_id: &str) -> Result<HashMap<String, i64>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, COUNT(*) FROM recipients WHERE message_id = $1 GROUP BY state",
        )
        .bind(message_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().collect())
    }
}

/// One batch row per (domain, seq) among a message's recipients.
async fn insert_batches(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    message_id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO batches (message_id, domain, seq, run_after, created_at) \
         SELECT DISTINCT message_id, domain, seq, $2, $2 FROM recipients WHERE message_id = $1",
    )
    .bind(message_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The bounce a permanent failure or an expiry at delivery makes: the same structured
/// report as a parsed DSN, so the bounce plugins treat both alike.
fn delivery_bounce(r: &DeliveryResult) -> Option<NewBounce> {
    let Outcome::Failed {
        reply,
        status,
        expired,
    } = &r.outcome
    else {
        return None;
    };
    // A reply reads `550 5.1.1 words`; routing failures and expiry give `5.1.2 words`.
    let mut words = reply.split_whitespace().peekable();
    let code = words
        .next_if(|w| w.len() == 3 && w.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|w| w.parse::<u16>().ok());
    words.next_if(|w| *w == status);
    let text = words.collect::<Vec<_>>().join(" ");
    let code = code.unwrap_or(if status.starts_with('4') { 450 } else { 550 });
    let report = roost_bounce::from_delivery(&r.address, code, status, &text, *expired);
    let recipient = report.recipients.into_iter().next()?;
    Some(NewBounce {
        list: r.list.clone(),
        member_id: r.member_id,
        address: r.address.clone(),
        message_id: Some(r.message_id.clone()),
        source: if *expired { "expiry" } else { "delivery" },
        recipient,
        format: report.format,
        // Delivery's own reply to our own copy.
        verified: true,
    })
}

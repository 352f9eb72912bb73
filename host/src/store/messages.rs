//! Accepted messages and the jobs that process them.

use std::collections::HashSet;

use sqlx::Row;

use super::{
    Backend, MAX_REASON, Notice, NoticeTarget, Result, Store, StoreError, column_text, now_ms,
};

/// Longest notice body kept (a plugin's or a quoted post's text beyond it is cut).
const MAX_NOTICE_BODY: usize = 256 * 1024;

/// What an address of a list is for (README, "How mail is taken in").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Post,
    Request,
    Owner,
    Bounce,
    Confirm,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Post => "post",
            MessageKind::Request => "request",
            MessageKind::Owner => "owner",
            MessageKind::Bounce => "bounce",
            MessageKind::Confirm => "confirm",
        }
    }
}

/// A message as intake hands it to the store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub list: String,
    pub kind: MessageKind,
    pub token: Option<String>,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub client_ip: String,
    pub helo: String,
    pub raw: Vec<u8>,
    pub received_at: i64,
    pub node: String,
    /// Lease the message's processing to this node from the start (it processes the post
    /// from memory); `None` leaves it for whichever node claims it.
    pub lease: Option<(String, i64)>,
}

impl From<NewMessage> for StoredMessage {
    /// The message as processing reads it, without a trip to the database.
    fn from(m: NewMessage) -> Self {
        StoredMessage {
            id: m.id,
            list: m.list,
            kind: m.kind.as_str().to_string(),
            token: m.token,
            mail_from: m.mail_from,
            rcpt_to: m.rcpt_to,
            client_ip: m.client_ip,
            helo: m.helo,
            raw: m.raw,
            received_at: m.received_at,
            state: "stored".to_string(),
            reason: None,
        }
    }
}

/// A stored message, as processing reads it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: String,
    pub list: String,
    pub kind: String,
    /// The `+TOKEN` of a `-confirm+` or `-bounces+` address.
    pub token: Option<String>,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub client_ip: String,
    pub helo: String,
    pub raw: Vec<u8>,
    pub received_at: i64,
    pub state: String,
    pub reason: Option<String>,
}

/// A message claimed for processing.
#[derive(Debug, Clone)]
pub struct Job {
    pub message_id: String,
    pub attempts: i64,
    /// Why the last try failed, when one did.
    pub last_error: Option<String>,
}

/// A message processing could not decide (see [`Store::processing_trouble`]).
#[derive(Debug, Clone)]
pub struct Trouble {
    pub id: String,
    pub list: String,
    pub kind: String,
    /// `stored` (to be tried again) or `failed` (set aside).
    pub state: String,
    pub attempts: i64,
    pub error: String,
}

/// The end of processing a post, written in one transaction with the job's removal.
#[derive(Debug, Clone)]
pub struct Decision {
    /// accepted | held | rejected | discarded | failed (set aside after too many tries)
    pub state: &'static str,
    pub reason: Option<String>,
    /// The post after edits (for accepted posts).
    /// The plugins' edits, encoded (`pipeline::edits::encode`); applied to the raw post
    /// once when delivery prepares it, so the post is not stored twice.
    pub edits: Option<String>,
    /// A notice to queue with the decision (a rejection to the sender, a failure to the
    /// owners).
    pub notice: Option<Notice>,
    /// Send the message itself, as it came, to these addresses (mail to `NAME-owner@`).
    pub forward_to: Vec<String>,
    /// Bounces parsed out of the message (mail to `NAME-bounces@`), recorded with it.
    pub bounces: Vec<super::NewBounce>,
}

impl Store {
    /// Commit a group of messages atomically, each waiting for processing (its lease, when
    /// intake hands it to this node's processors, on the row itself: migration 0012), in
    /// one statement per few hundred messages: each statement is a round trip to the
    /// database, which costs more than the rows. Nothing is acknowledged before this
    /// returns `Ok`.
    pub async fn insert_messages(&self, messages: &[NewMessage]) -> Result<()> {
        // SQLite keeps to a few statement shapes, so each stays prepared in sqlx's cache.
        let rows = match self.backend() {
            Backend::Sqlite => SQLITE_INSERT_ROWS,
            Backend::Postgres => ROWS_PER_STATEMENT,
        };
        if messages.len() <= rows {
            // A lone statement commits on its own: no BEGIN and COMMIT round trips.
            return self
                .insert_messages_statement(messages)
                .execute(self.pool())
                .await
                .map(drop)
                .map_err(Into::into);
        }
        let mut tx = self.pool().begin().await?;
        for chunk in messages.chunks(rows) {
            self.insert_messages_statement(chunk)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// `INSERT INTO messages` for `messages`, in state `stored` (to be processed), each
    /// leased to its `lease` owner or to nobody.
    fn insert_messages_statement<'m>(
        &self,
        messages: &'m [NewMessage],
    ) -> sqlx::query::Query<'m, sqlx::Any, sqlx::any::AnyArguments> {
        let sql = format!(
            "INSERT INTO messages (id, list, kind, token, mail_from, rcpt_to, client_ip, helo, \
             raw, size, received_at, node, lease_owner, lease_until, run_after, state) VALUES {}",
            values_list(messages.len(), 15, 1, "'stored'")
        );
        let sql = self.numbered(sql);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for m in messages {
            q = q
                .bind(&m.id)
                .bind(&m.list)
                .bind(m.kind.as_str())
                .bind(&m.token)
                .bind(&m.mail_from)
                .bind(m.rcpt_to.join("\n"))
                .bind(&m.client_ip)
                .bind(&m.helo)
                .bind(&m.raw)
                .bind(m.raw.len() as i64)
                .bind(m.received_at)
                .bind(&m.node)
                .bind(m.lease.as_ref().map(|(owner, _)| owner))
                .bind(m.lease.as_ref().map_or(0, |(_, until)| *until))
                .bind(m.received_at);
        }
        q
    }

    /// Lease up to `limit` messages waiting for processing (state `stored`, due, lease
    /// lapsed or never taken) for `owner`. A message whose lease lapsed (its node died) is
    /// ready again.
    pub async fn claim_processing(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Job>> {
        let now = now_ms();
        let lock = self.skip_locked();
        let sql = format!(
            "UPDATE messages SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM messages WHERE state = 'stored' AND run_after <= $3 \
             AND lease_until < $3 ORDER BY id LIMIT $4{lock}) RETURNING id, attempts, last_error"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Job {
                    message_id: r.try_get(0)?,
                    attempts: r.try_get(1)?,
                    last_error: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Extend this node's unexpired leases on these messages still to process; returns
    /// the ids still held. A lease that ran out may have been claimed by another
    /// processor, so only its claimer may work on it.
    pub async fn renew_leases(
        &self,
        owner: &str,
        message_ids: &[String],
        lease_ms: i64,
    ) -> Result<HashSet<String>> {
        let now = now_ms();
        let mut held = HashSet::with_capacity(message_ids.len());
        for chunk in message_ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE messages SET lease_until = $2 WHERE lease_owner = $1 AND {STILL_STORED} \
                 AND lease_until >= $3 AND id IN ({}) RETURNING id",
                placeholders(4, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
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

    /// Give a message back for a later try at processing (the failure is kept for the
    /// operator).
    pub async fn retry_job(
        &self,
        job: &Job,
        owner: &str,
        delay_ms: i64,
        error: &str,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE messages SET lease_owner = NULL, lease_until = 0, run_after = $1, last_error = $2 \
             WHERE id = $3 AND {STILL_STORED} AND lease_owner = $4"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now_ms() + delay_ms)
            .bind(column_text(error, MAX_REASON).into_owned())
            .bind(&job.message_id)
            .bind(owner)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn message(&self, id: &str) -> Result<StoredMessage> {
        self.messages(&[id.to_string()])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Invalid(format!("no message {id}")))
    }

    /// Several messages in one statement, in id order; ids not found are left out.
    pub async fn messages(&self, ids: &[String]) -> Result<Vec<StoredMessage>> {
        self.messages_with(ids, "raw").await
    }

    /// `raw_column`: `raw`, or an expression of it (the start of each message).
    async fn messages_with(&self, ids: &[String], raw_column: &str) -> Result<Vec<StoredMessage>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, list, kind, mail_from, rcpt_to, client_ip, helo, {raw_column}, received_at, \
                 state, reason, token FROM messages WHERE id IN ({}) ORDER BY id",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(self.pool()).await? {
                out.push(StoredMessage {
                    id: r.try_get(0)?,
                    list: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    mail_from: r.try_get(3)?,
                    rcpt_to: r
                        .try_get::<String, _>(4)?
                        .lines()
                        .map(str::to_string)
                        .collect(),
                    client_ip: r.try_get(5)?,
                    helo: r.try_get(6)?,
                    raw: r.try_get(7)?,
                    received_at: r.try_get(8)?,
                    state: r.try_get(9)?,
                    reason: r.try_get(10)?,
                    token: r.try_get(11)?,
                });
            }
        }
        Ok(out)
    }

    /// Record the outcomes of processing, all in one transaction of a few statements for
    /// the whole batch. A decision counts only if this node still holds the message's lease
    /// (else another node took it over and decides) and the message is still `stored` (it
    /// is decided once). Accepted posts get their `deliver` jobs in the same transaction.
    /// Returns how many decisions were recorded.
    pub async fn finish_processing(
        &self,
        owner: &str,
        decided: &[(Job, Decision)],
    ) -> Result<usize> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        let mut recorded = 0;
        for chunk in decided.chunks(ROWS_PER_STATEMENT) {
            // One UPDATE for the batch, counting only the messages this node still holds
            // and still `stored`: VALUES rows name their columns column1..column4 on both
            // SQLite and PostgreSQL. The ids are listed once more as `IN (...)`, which a
            // planner can count (a join with VALUES it cannot), so the batch is looked up
            // by primary key rather than every stored message compared with every row of
            // VALUES (ARCHITECTURE.md, "Statements that name their messages by id").
            let n = chunk.len();
            let sql = format!(
                "UPDATE messages SET state = v.column2, reason = v.column3, edits = v.column4, \
                 decided_at = $1, lease_owner = NULL, lease_until = 0 FROM (VALUES {}) AS v \
                 WHERE messages.id = v.column1 AND messages.id IN ({}) \
                 AND {STILL_STORED} AND messages.lease_owner = ${} RETURNING messages.id",
                values_list(n, 4, 2, ""),
                placeholders(2 + 4 * n, n),
                2 + 5 * n
            );
            // Parameters in the order they appear, so SQLite gets anonymous ones.
            let sql = self.numbered(sql);
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(now);
            for (job, d) in chunk {
                q = q
                    .bind(&job.message_id)
                    .bind(d.state)
                    .bind(
                        d.reason
                            .as_deref()
                            .map(|r| column_text(r, MAX_REASON).into_owned()),
                    )
                    .bind(&d.edits);
            }
            for (job, _) in chunk {
                q = q.bind(&job.message_id);
            }
            q = q.bind(owner);
            let changed: HashSet<String> = q.fetch_all(&mut *tx).await?.into_iter().collect();
            let ours: Vec<&(Job, Decision)> = chunk
                .iter()
                .filter(|(j, _)| changed.contains(&j.message_id))
                .collect();
            if ours.is_empty() {
                continue;
            }
            recorded += ours.len();
            let accepted: Vec<(&str, i64)> = ours
                .iter()
                .filter(|(_, d)| d.state == "accepted")
                .map(|(j, _)| (j.message_id.as_str(), now))
                .collect();
            if !accepted.is_empty() {
                insert_jobs(&mut tx, "deliver", accepted.into_iter()).await?;
            }
            for (job, d) in &ours {
                if let Some(n) = &d.notice {
                    insert_notice(&mut tx, &job.message_id, n, now).await?;
                }
                if !d.forward_to.is_empty() {
                    self.enqueue_addresses(&mut tx, &job.message_id, &d.forward_to, 100)
                        .await?;
                }
                super::bounces::insert_bounces(&mut tx, &d.bounces, now).await?;
            }
        }
        tx.commit().await?;
        Ok(recorded)
    }

    /// Messages processing could not decide: those waiting to be tried again after an
    /// error, and those set aside (`failed`) after too many tries; newest first.
    pub async fn processing_trouble(&self, limit: u32) -> Result<Vec<Trouble>> {
        // Each half through its own partial index (`messages_to_process`, `messages_set_aside`).
        let rows = sqlx::query(
            "SELECT id, list, kind, state, attempts, COALESCE(reason, last_error, '') \
             FROM messages WHERE (state = 'stored' AND last_error IS NOT NULL) \
             OR state = 'failed' ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Trouble {
                    id: r.try_get(0)?,
                    list: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    state: r.try_get(3)?,
                    attempts: r.try_get(4)?,
                    error: r.try_get(5)?,
                })
            })
            .collect()
    }

    pub async fn count_in_state(&self, list: &str, state: &str) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE list = $1 AND state = $2")
                .bind(list)
                .bind(state)
                .fetch_one(self.pool())
                .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Posts of a list in `state`, oldest first, for listings: `raw` holds only the first
    /// 64 KiB of each (enough for its header). A thousand held posts of 25 MB each, which
    /// anyone can send to a list that holds non-members, would otherwise be loaded whole
    /// whenever the hold queue is listed (by the moderation plugin's expiry every minute).
    pub async fn messages_in_state(
        &self,
        list: &str,
        state: &str,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE list = $1 AND state = $2 ORDER BY id LIMIT $3",
        )
        .bind(list)
        .bind(state)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        // One statement for all of them (ids sort by arrival, as `messages` returns them).
        self.messages_with(&ids, super::RAW_HEAD).await
    }

    /// Approve a held post. Only the caller whose conditional update changes the row
    /// enqueues delivery, so approving on two nodes at once sends it once. `false`: the post
    /// was not held (already decided, or no such post on that list).
    pub async fn approve_held(&self, list: &str, id: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        let changed = sqlx::query(
            "UPDATE messages SET state = 'approved', decided_at = $1 \
             WHERE id = $2 AND list = $3 AND state = 'held'",
        )
        .bind(now)
        .bind(id)
        .bind(list)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            insert_jobs(&mut tx, "deliver", std::iter::once((id, now))).await?;
        }
        tx.commit().await?;
        Ok(changed == 1)
    }

    /// Reject a held post (conditional, like approval); the author gets a notice.
    pub async fn reject_held(&self, list: &str, id: &str, reason: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        let changed = sqlx::query(
            "UPDATE messages SET state = 'rejected', decided_at = $1, reason = $2 \
             WHERE id = $3 AND list = $4 AND state = 'held'",
        )
        .bind(now)
        .bind(reason)
        .bind(id)
        .bind(list)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            let author: String = sqlx::query_scalar("SELECT mail_from FROM messages WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            if !author.is_empty() {
                let notice = Notice {
                    to: NoticeTarget::Address(author),
                    // Said neutrally: a moderator, the list's rules or the hold's expiry
                    // may have decided; the reason says which.
                    subject: format!("Your post to {list} was not accepted"),
                    body: format!("Your post to {list} was not accepted.\n\nReason: {reason}\n"),
                    reply_to: None,
                };
                insert_notice(&mut tx, id, &notice, now).await?;
            }
        }
        tx.commit().await?;
        Ok(changed == 1)
    }

    /// After a restart, the jobs this node had leased are free at once: nothing of this
    /// node's can still be working on them (node names are unique in a cluster).
    pub async fn release_leases_of(&self, owner: &str) -> Result<u64> {
        let mut released = 0;
        released += sqlx::query("DELETE FROM session_slots WHERE node = $1")
            .bind(owner)
            .execute(self.pool())
            .await?
            .rows_affected();
        // Messages: only those still to process (the partial index), not the history.
        for (table, pending) in [
            ("messages", " AND state = 'stored'"),
            ("jobs", ""),
            ("batches", ""),
        ] {
            let sql = format!(
                "UPDATE {table} SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = $1{pending}"
            );
            released += sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .execute(self.pool())
                .await?
                .rows_affected();
        }
        Ok(released)
    }

    /// Whether a message still waits for processing (for tests).
    pub async fn awaits_processing(&self, message_id: &str) -> Result<bool> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE id = $1 AND state = 'stored'")
                .bind(message_id)
                .fetch_one(self.pool())
                .await?;
        Ok(n > 0)
    }

    /// Jobs of a kind for one message (for tests and `roost queue`).
    pub async fn jobs_for(&self, message_id: &str, kind: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE message_id = $1 AND kind = $2")
                .bind(message_id)
                .bind(kind)
                .fetch_one(self.pool())
                .await?,
        )
    }
}

/// Statements carry at most this many rows (SQLite allows 32,766 parameters).
const ROWS_PER_STATEMENT: usize = 500;

/// "Not decided yet", for statements that name their messages by id. Written so that it
/// does not match the predicate of the partial index `messages_to_process`: a planner
/// that may use that index for them can believe (with statistics older than a burst of
/// mail) that few messages are still stored and scan all of them instead of looking the
/// named ones up by primary key.
const STILL_STORED: &str = "state || '' = 'stored'";
/// Messages per `INSERT` on SQLite: bigger groups are several statements in one
/// transaction, so there are few distinct statements to prepare.
const SQLITE_INSERT_ROWS: usize = 32;

/// `$first, $first+1, ...`: `count` numbered parameters for an `IN (...)` list.
pub(super) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, $2), ($3, $4)`: `rows` rows of `cols` parameters numbered from `first`, each row
/// ending with `tail` (a literal) when it is not empty.
pub(super) fn values_list(rows: usize, cols: usize, first: usize, tail: &str) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    let mut n = first;
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${n}"));
            n += 1;
        }
        if !tail.is_empty() {
            out.push_str(", ");
            out.push_str(tail);
        }
        out.push(')');
    }
    out
}

/// New jobs of one kind, ready now, in one statement.
async fn insert_jobs<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    kind: &'static str,
    rows: impl Iterator<Item = (&'a str, i64)>,
) -> Result<()> {
    let rows: Vec<(&str, i64)> = rows.collect();
    let sql = format!(
        "INSERT INTO jobs (message_id, run_after, created_at, kind) VALUES {}",
        values_list(rows.len(), 3, 1, &format!("'{kind}'"))
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (id, at) in rows {
        q = q.bind(id).bind(at).bind(at);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

async fn insert_notice(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    message_id: &str,
    n: &Notice,
    now: i64,
) -> Result<()> {
    let list: String = sqlx::query_scalar("SELECT list FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_one(&mut **tx)
        .await?;
    insert_notice_for_list(&mut **tx, &list, "", n, now)
        .await
        .map(drop)
}

/// Queue a notice of `list` (inside a caller's transaction, or on its own); its id.
pub(super) async fn insert_notice_for_list<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    list: &str,
    plugin: &str,
    n: &Notice,
    now: i64,
) -> Result<i64> {
    let (owners, address) = match &n.to {
        NoticeTarget::Owners => (1i64, None),
        NoticeTarget::Address(a) => (0, Some(a.as_str())),
    };
    let id = sqlx::query_scalar(
        "INSERT INTO notices (list, plugin, to_owners, to_address, subject, body, reply_to, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(list)
    .bind(plugin)
    .bind(owners)
    .bind(address)
    .bind(column_text(&n.subject, 998).into_owned())
    .bind(column_text(&n.body, MAX_NOTICE_BODY).into_owned())
    .bind(&n.reply_to)
    .bind(now)
    .fetch_one(executor)
    .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_lists_number_their_parameters() {
        assert_eq!(super::values_list(2, 2, 3, ""), "($3, $4), ($5, $6)");
        assert_eq!(super::values_list(1, 1, 1, "'x'"), "($1, 'x')");
        assert_eq!(super::placeholders(4, 3), "$4, $5, $6");
    }
}

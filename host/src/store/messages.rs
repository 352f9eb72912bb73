//! Accepted messages and the jobs that process them.

use sqlx::Row;

use super::{Backend, Notice, NoticeTarget, Result, Store, StoreError, now_ms};

/// What an address of a list is for (DESIGN §3).
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
}

/// A stored message, as processing reads it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: String,
    pub list: String,
    pub kind: String,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub client_ip: String,
    pub helo: String,
    pub raw: Vec<u8>,
    pub received_at: i64,
    pub state: String,
    pub reason: Option<String>,
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub message_id: String,
    pub attempts: i64,
}

/// The end of processing a post, written in one transaction with the job's removal.
#[derive(Debug, Clone)]
pub struct Decision {
    /// accepted | held | rejected | discarded
    pub state: &'static str,
    pub reason: Option<String>,
    /// The post after edits (for accepted posts).
    pub prepared: Option<Vec<u8>>,
    pub links: Vec<String>,
    /// A notice to queue with the decision (a rejection to the sender, a failure to the
    /// owners).
    pub notice: Option<Notice>,
}

impl Store {
    /// Commit a group of messages, and a `process` job for each post, in one transaction.
    /// Nothing is acknowledged to a client before this returns `Ok`.
    pub async fn insert_messages(&self, messages: &[NewMessage]) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for m in messages {
            sqlx::query(
                "INSERT INTO messages (id, list, kind, token, mail_from, rcpt_to, client_ip, helo, \
                 raw, size, received_at, node, state) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'stored')",
            )
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
            .execute(&mut *tx)
            .await?;
            if m.kind == MessageKind::Post {
                sqlx::query(
                    "INSERT INTO jobs (kind, message_id, run_after, created_at) VALUES ('process', $1, $2, $2)",
                )
                .bind(&m.id)
                .bind(m.received_at)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Lease up to `limit` ready jobs of `kind` for `owner` until `lease_until`. A job whose
    /// lease lapsed (its node died) is ready again.
    pub async fn claim_jobs(
        &self,
        kind: &str,
        owner: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Job>> {
        let now = now_ms();
        let sql = match self.backend() {
            // SKIP LOCKED: concurrent claimers on other nodes take other rows, never wait.
            Backend::Postgres => {
                "UPDATE jobs SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM jobs WHERE kind = $3 AND run_after <= $4 AND lease_until < $4 \
                 ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, message_id, attempts"
            }
            // SQLite has one writer at a time; the statement is atomic as it stands.
            Backend::Sqlite => {
                "UPDATE jobs SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM jobs WHERE kind = $3 AND run_after <= $4 AND lease_until < $4 \
                 ORDER BY id LIMIT $5) \
                 RETURNING id, message_id, attempts"
            }
        };
        let rows = sqlx::query(sql)
            .bind(owner)
            .bind(now + lease_ms)
            .bind(kind)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Job {
                    id: r.try_get(0)?,
                    message_id: r.try_get(1)?,
                    attempts: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Give a job back for a later try (the failure is kept for the operator).
    pub async fn retry_job(
        &self,
        job: &Job,
        owner: &str,
        delay_ms: i64,
        error: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET lease_owner = NULL, lease_until = 0, run_after = $1, last_error = $2 \
             WHERE id = $3 AND lease_owner = $4",
        )
        .bind(now_ms() + delay_ms)
        .bind(error)
        .bind(job.id)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn message(&self, id: &str) -> Result<StoredMessage> {
        let r = sqlx::query(
            "SELECT id, list, kind, mail_from, rcpt_to, client_ip, helo, raw, received_at, state, reason \
             FROM messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::Invalid(format!("no message {id}")))?;
        Ok(StoredMessage {
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
        })
    }

    /// Record the outcome of processing and drop the job, in one transaction, and only if
    /// this node still holds the job's lease (else another node took it over and decides).
    /// An accepted post gets its `deliver` job in the same transaction.
    pub async fn finish_processing(&self, job: &Job, owner: &str, d: &Decision) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let mine = sqlx::query("DELETE FROM jobs WHERE id = $1 AND lease_owner = $2")
            .bind(job.id)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if mine != 1 {
            return Ok(false);
        }
        let now = now_ms();
        // Guarded by state: a message decided already (a retry after a lost commit reply)
        // is not decided twice, and gets no second delivery job or notice.
        let decided = sqlx::query(
            "UPDATE messages SET state = $1, reason = $2, decided_at = $3, prepared = $4, links = $5 \
             WHERE id = $6 AND state = 'stored'",
        )
        .bind(d.state)
        .bind(&d.reason)
        .bind(now)
        .bind(&d.prepared)
        .bind(if d.links.is_empty() { None } else { Some(d.links.join("\n")) })
        .bind(&job.message_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if decided && d.state == "accepted" {
            enqueue_delivery(&mut tx, &job.message_id, now).await?;
        }
        if let (true, Some(n)) = (decided, &d.notice) {
            let (owners, address) = match &n.to {
                NoticeTarget::Owners => (1i64, None),
                NoticeTarget::Address(a) => (0, Some(a.as_str())),
            };
            sqlx::query(
                "INSERT INTO notices (list, plugin, to_owners, to_address, subject, body, created_at) \
                 SELECT list, '', $1, $2, $3, $4, $5 FROM messages WHERE id = $6",
            )
            .bind(owners)
            .bind(address)
            .bind(&n.subject)
            .bind(&n.body)
            .bind(now)
            .bind(&job.message_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Posts of a list in `state`, oldest first.
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
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.message(&id).await?);
        }
        Ok(out)
    }

    /// Approve a held post. Only the caller whose conditional update changes the row
    /// enqueues delivery, so approving on two nodes at once sends it once. `false`: the post
    /// was not held (already decided, or no such post on that list).
    pub async fn approve_held(&self, list: &str, id: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        let changed = sqlx::query(
            "UPDATE messages SET state = 'approved', decided_at = $1, prepared = COALESCE(prepared, raw) \
             WHERE id = $2 AND list = $3 AND state = 'held'",
        )
        .bind(now)
        .bind(id)
        .bind(list)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            enqueue_delivery(&mut tx, id, now).await?;
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
            sqlx::query(
                "INSERT INTO notices (list, plugin, to_owners, to_address, subject, body, created_at) \
                 SELECT list, '', 0, mail_from, $1, $2, $3 FROM messages WHERE id = $4 AND mail_from <> ''",
            )
            .bind(format!("Your post to {list} was rejected"))
            .bind(format!("A moderator of {list} rejected your post.\n\nReason: {reason}\n"))
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(changed == 1)
    }

    /// After a restart, the jobs this node had leased are free at once: nothing of this
    /// node's can still be working on them (node names are unique in a cluster).
    pub async fn release_leases_of(&self, owner: &str) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE jobs SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(self.pool())
        .await?
        .rows_affected())
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

async fn enqueue_delivery(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    message_id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO jobs (kind, message_id, run_after, created_at) VALUES ('deliver', $1, $2, $2)",
    )
    .bind(message_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

//! Mail queued for the host to send on a plugin's behalf.

use super::{Result, Store, StoreError, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeTarget {
    Owners,
    Address(String),
}

#[derive(Debug, Clone)]
pub struct Notice {
    pub to: NoticeTarget,
    pub subject: String,
    pub body: String,
    /// `Reply-To:` (a confirmation address, so that answering the mail confirms); none:
    /// replies go to the owners, the notice's `From:`.
    pub reply_to: Option<String>,
}

/// The message id a queued notice is sent under: also the `post-id` of its bounces, which
/// is how a plugin knows that a probe bounced.
pub fn notice_message_id(notice: i64) -> String {
    format!("notice-{notice}")
}

impl Store {
    /// Queue a notice; returns its id.
    pub async fn queue_notice(&self, list: &str, plugin: &str, notice: &Notice) -> Result<i64> {
        if notice.subject.contains(['\r', '\n']) {
            return Err(StoreError::Invalid(
                "notice subject must be one line".into(),
            ));
        }
        let address = |a: &str| a.contains('@') && !a.contains(['\r', '\n', ' ', ',']);
        if let NoticeTarget::Address(a) = &notice.to
            && !address(a)
        {
            return Err(StoreError::Invalid(format!("`{a}` is not a mail address")));
        }
        if let Some(a) = &notice.reply_to
            && !address(a)
        {
            return Err(StoreError::Invalid(format!(
                "reply-to `{a}` is not a mail address"
            )));
        }
        super::messages::insert_notice_for_list(self.pool(), list, plugin, notice, now_ms()).await
    }
}

/// A queued notice, taken for delivery.
#[derive(Debug, Clone)]
pub struct PendingNotice {
    pub id: i64,
    pub list: String,
    pub plugin: String,
    pub to: NoticeTarget,
    pub subject: String,
    pub body: String,
    pub reply_to: Option<String>,
}

/// A notice made into a message: its bytes, envelope sender and recipients.
#[derive(Debug, Clone)]
pub struct BuiltNotice {
    pub id: String,
    pub raw: Vec<u8>,
    pub mail_from: String,
    pub recipients: Vec<String>,
}

impl Store {
    /// Turn up to `limit` queued notices into messages with recipients and batches, so they
    /// are sent, retried and shown by `roost queue` like posts. One transaction; a notice
    /// is taken by a conditional update, so two nodes never send it twice. `build` gives
    /// `None` for a notice that cannot be sent (its list is gone, no owners): it is marked
    /// `failed`. Returns how many notices were taken.
    pub async fn convert_notices(
        &self,
        node: &str,
        limit: u32,
        batch_size: u32,
        mut build: impl FnMut(&PendingNotice) -> Option<BuiltNotice>,
    ) -> Result<usize> {
        let lock = self.skip_locked();
        let mut tx = self.pool().begin().await?;
        let sql = format!(
            "UPDATE notices SET state = 'enqueued' WHERE id IN \
             (SELECT id FROM notices WHERE state = 'queued' ORDER BY id LIMIT $1{lock}) \
             RETURNING id, list, plugin, to_owners, to_address, subject, body, reply_to"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let now = now_ms();
        for r in &rows {
            use sqlx::Row;
            let owners: i64 = r.try_get(3)?;
            let address: Option<String> = r.try_get(4)?;
            let notice = PendingNotice {
                id: r.try_get(0)?,
                list: r.try_get(1)?,
                plugin: r.try_get(2)?,
                to: match (owners, address) {
                    (0, Some(a)) => NoticeTarget::Address(a),
                    _ => NoticeTarget::Owners,
                },
                subject: r.try_get(5)?,
                body: r.try_get(6)?,
                reply_to: r.try_get(7)?,
            };
            let Some(built) = build(&notice) else {
                sqlx::query("UPDATE notices SET state = 'failed' WHERE id = $1")
                    .bind(notice.id)
                    .execute(&mut *tx)
                    .await?;
                continue;
            };
            sqlx::query(
                "INSERT INTO messages (id, list, kind, mail_from, rcpt_to, client_ip, helo, raw, \
                 size, received_at, node, state, decided_at) \
                 VALUES ($1, $2, 'notice', $3, $4, '', '', $5, $6, $7, $8, 'accepted', $7)",
            )
            .bind(&built.id)
            .bind(&notice.list)
            .bind(&built.mail_from)
            .bind(built.recipients.join("\n"))
            .bind(&built.raw)
            .bind(built.raw.len() as i64)
            .bind(now)
            .bind(node)
            .execute(&mut *tx)
            .await?;
            self.enqueue_addresses(&mut tx, &built.id, &built.recipients, batch_size)
                .await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }
}

//! Bounce events: rows written by delivery (5xx, expiry) and by the parsing of bounce
//! mail, then handed to the list's `on-bounce` plugins once each, under a lease.

use sqlx::{Row, any::AnyRow};

use super::{
    MAX_REASON, RAW_HEAD, Result, Store, column_text,
    messages::{placeholders, values_list},
    now_ms,
};

/// A bounce to record: one recipient of one report.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBounce {
    pub list: String,
    pub member_id: Option<i64>,
    pub address: String,
    /// The post (or notice) that bounced, when known.
    pub message_id: Option<String>,
    /// `delivery` | `expiry` | `dsn`
    pub source: &'static str,
    pub recipient: roost_bounce::Recipient,
    /// The detector that recognised it (`rfc3464`, `smtp-reply`, ...).
    pub format: String,
    /// Whether it proved to be about a copy Roost sent (delivery's own replies; bounce mail
    /// with a verified token). Only those reach the `on-bounce` plugins; the rest are kept
    /// as `unverified` for the operator to see and never change a member.
    pub verified: bool,
}

/// One copy Roost sent, as a token names it (see [`Store::sent_copy`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SentCopy {
    /// The post or notice (`messages.id`).
    pub message_id: String,
    pub address: String,
    pub member_id: Option<i64>,
    pub list: String,
}

/// A recorded bounce, claimed for its plugins.
#[derive(Debug, Clone)]
pub struct BounceRow {
    pub id: i64,
    pub list: String,
    pub member_id: Option<i64>,
    pub address: String,
    pub message_id: Option<String>,
    pub source: String,
    pub action: String,
    pub status: String,
    pub diagnostic: String,
    pub temporary: bool,
    pub reason: String,
    pub format: String,
    pub at: i64,
    /// `new` | `handled` | `failed` | `unverified` (never handed to plugins)
    pub state: String,
}

const COLUMNS: usize = 13;

/// The columns [`bounce_row`] reads, as a literal so statements can be built with `concat!`.
macro_rules! row_columns {
    () => {
        "id, list, member_id, address, message_id, source, action, status, diagnostic, \
         temporary, reason, format, at, state"
    };
}

fn bounce_row(r: &AnyRow) -> Result<BounceRow> {
    Ok(BounceRow {
        id: r.try_get(0)?,
        list: r.try_get(1)?,
        member_id: r.try_get(2)?,
        address: r.try_get(3)?,
        message_id: r.try_get(4)?,
        source: r.try_get(5)?,
        action: r.try_get(6)?,
        status: r.try_get(7)?,
        diagnostic: r.try_get(8)?,
        temporary: r.try_get::<i64, _>(9)? != 0,
        reason: r.try_get(10)?,
        format: r.try_get(11)?,
        at: r.try_get(12)?,
        state: r.try_get(13)?,
    })
}

/// Insert bounce rows inside a caller's transaction (so a bounce is recorded with the
/// outcome or the parsed mail that produced it, or not at all).
pub(super) async fn insert_bounces(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    bounces: &[NewBounce],
    now: i64,
) -> Result<()> {
    for chunk in bounces.chunks(500) {
        let sql = format!(
            "INSERT INTO bounces (list, member_id, address, message_id, source, status, \
             diagnostic, temporary, action, reason, format, at, state) VALUES {}",
            values_list(chunk.len(), COLUMNS, 1, "")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in chunk {
            let r = &b.recipient;
            // Everything but the list and source comes from the bounce's sender.
            q = q
                .bind(&b.list)
                .bind(b.member_id)
                .bind(column_text(&b.address, 320).into_owned())
                .bind(&b.message_id)
                .bind(b.source)
                .bind(column_text(&r.status, 32).into_owned())
                .bind(column_text(&r.diagnostic, MAX_REASON).into_owned())
                .bind(i64::from(r.temporary))
                .bind(column_text(&r.action, 32).into_owned())
                .bind(r.reason.as_str())
                .bind(column_text(&b.format, 64).into_owned())
                .bind(now)
                .bind(if b.verified { "new" } else { "unverified" });
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Lease up to `limit` bounces no plugin has seen yet (or whose holder's lease lapsed).
    pub async fn claim_bounces(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<BounceRow>> {
        let lock = self.skip_locked();
        let now = now_ms();
        let sql = format!(
            concat!(
                "UPDATE bounces SET lease_owner = $1, lease_until = $2 WHERE id IN \
                 (SELECT id FROM bounces WHERE state = 'new' AND lease_until < $3 \
                 ORDER BY id LIMIT $4{lock}) RETURNING ",
                row_columns!()
            ),
            lock = lock
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        let mut out = rows.iter().map(bounce_row).collect::<Result<Vec<_>>>()?;
        // Plugins see bounces in the order they arrived (scores and decay depend on it).
        out.sort_by_key(|b| b.id);
        Ok(out)
    }

    /// Mark claimed bounces done (`handled` or `failed`); only those this node still holds.
    pub async fn finish_bounces(&self, owner: &str, ids: &[i64], state: &str) -> Result<u64> {
        let mut done = 0;
        for chunk in ids.chunks(500) {
            let sql = format!(
                "UPDATE bounces SET state = $1, lease_owner = NULL, lease_until = 0 \
                 WHERE lease_owner = $2 AND state = 'new' AND id IN ({})",
                placeholders(3, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(state)
                .bind(owner);
            for id in chunk {
                q = q.bind(id);
            }
            done += q.execute(self.pool()).await?.rows_affected();
        }
        Ok(done)
    }

    /// Let go of claimed bounces at a stop, so another node takes them at once.
    pub async fn release_bounces(&self, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE bounces SET lease_owner = NULL, lease_until = 0 \
             WHERE lease_owner = $1 AND state = 'new'",
        )
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The copy a signed token names (its recipient row): the post (or notice) it was a
    /// copy of, its list, and the address and member it went to.
    pub async fn sent_copy(&self, recipient: i64) -> Result<Option<SentCopy>> {
        let row = sqlx::query(
            "SELECT r.message_id, r.address, r.member_id, m.list \
             FROM recipients r JOIN messages m ON m.id = r.message_id WHERE r.id = $1",
        )
        .bind(recipient)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(SentCopy {
                message_id: row.try_get(0)?,
                address: row.try_get(1)?,
                member_id: row.try_get(2)?,
                list: row.try_get(3)?,
            })
        })
        .transpose()
    }

    /// The `Message-ID:` (without angle brackets) a stored message was sent with, read from
    /// the start of its header only: what a bounce without a VERP token must quote to prove
    /// it is about one of its copies.
    pub async fn header_message_id(&self, id: &str) -> Result<Option<String>> {
        let sql = format!("SELECT {RAW_HEAD} FROM messages WHERE id = $1");
        let head: Option<Vec<u8>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(head.and_then(|head| {
            crate::message::header(&head, "message-id").map(|v| {
                v.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        }))
    }

    /// Member ids of `list` for these addresses (matched case-insensitively), for bounces
    /// that come without a usable VERP token.
    pub async fn member_ids(&self, list: &str, addresses: &[String]) -> Result<Vec<(String, i64)>> {
        if addresses.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = addresses.iter().map(|a| a.trim().to_lowercase()).collect();
        let sql = format!(
            "SELECT address_key, id FROM members WHERE list = $1 AND address_key IN ({})",
            placeholders(2, keys.len())
        );
        let mut q = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql)).bind(list);
        for k in &keys {
            q = q.bind(k);
        }
        Ok(q.fetch_all(self.pool()).await?)
    }

    /// Bounces recorded for a list (newest first), for `roost bounce list` and the API.
    pub async fn bounces(&self, list: &str, limit: u32) -> Result<Vec<BounceRow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            row_columns!(),
            " FROM bounces WHERE list = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(list)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(bounce_row).collect()
    }
}

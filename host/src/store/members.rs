//! List members. Addresses are matched case-insensitively (by a lower-cased key) and shown
//! as they were given.

use sqlx::{Row, any::AnyRow};

use super::{Result, Store, StoreError, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Enabled,
    DisabledBounces,
    DisabledMember,
    DisabledOwner,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Enabled => "enabled",
            DeliveryStatus::DisabledBounces => "disabled-bounces",
            DeliveryStatus::DisabledMember => "disabled-member",
            DeliveryStatus::DisabledOwner => "disabled-owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            DeliveryStatus::Enabled,
            DeliveryStatus::DisabledBounces,
            DeliveryStatus::DisabledMember,
            DeliveryStatus::DisabledOwner,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub address: String,
    pub name: Option<String>,
    pub status: DeliveryStatus,
    pub moderated: bool,
    pub bounce_score: f64,
    pub joined_at: i64,
    /// The bounce handling's last decision about this member, and when it was made.
    pub bounce_note: Option<String>,
    pub bounce_at: Option<i64>,
}

/// The columns `member()` reads, as a literal so statements stay `&'static str`.
macro_rules! select_member {
    ($rest:literal) => {
        concat!(
            "SELECT address, name, status, moderated, bounce_score, joined_at, bounce_note, \
             bounce_at FROM members ",
            $rest
        )
    };
}

fn member(row: &AnyRow) -> Result<Member> {
    let status: String = row.try_get(2)?;
    Ok(Member {
        address: row.try_get(0)?,
        name: row.try_get(1)?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Invalid(format!("unknown member status `{status}`")))?,
        moderated: row.try_get::<i64, _>(3)? != 0,
        bounce_score: row.try_get(4)?,
        joined_at: row.try_get(5)?,
        bounce_note: row.try_get(6)?,
        bounce_at: row.try_get(7)?,
    })
}

/// Whether `address` is a mail address a list can deliver to: `local@domain.tld`, no spaces
/// or brackets, within the lengths of RFC 5321. The reason when it is not.
pub fn check_address(address: &str) -> std::result::Result<(), String> {
    let bad = |why: &str| Err(format!("`{address}` is not a mail address: {why}"));
    let Some((local, domain)) = address.rsplit_once('@') else {
        return bad("no @");
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return bad("bad local part");
    }
    if address.len() > 254
        || address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\\\"".contains(c))
    {
        return bad("spaces, brackets or quotes");
    }
    let labels_ok = domain.contains('.')
        && domain.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if !labels_ok {
        return bad("bad domain");
    }
    Ok(())
}

fn key(address: &str) -> String {
    address.trim().to_lowercase()
}

impl Store {
    pub async fn member(&self, list: &str, address: &str) -> Result<Option<Member>> {
        let row = sqlx::query(select_member!("WHERE list = $1 AND address_key = $2"))
            .bind(list)
            .bind(key(address))
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(member).transpose()
    }

    /// Add a member with delivery enabled; false when the address is already a member.
    pub async fn add_member(&self, list: &str, address: &str, name: Option<&str>) -> Result<bool> {
        let address = address.trim();
        if !address.contains('@') || address.len() > 320 || address.contains(char::is_whitespace) {
            return Err(StoreError::Invalid(format!(
                "`{address}` is not a mail address"
            )));
        }
        let mut tx = self.pool().begin().await?;
        let added = insert_member(&mut tx, list, address, name, now_ms()).await?;
        tx.commit().await?;
        Ok(added)
    }

    /// Add many members in one transaction (all or nothing: a failure part-way leaves the
    /// list as it was, and running the import again is safe). Returns how many were new;
    /// `progress` is told the rows done after each statement.
    pub async fn add_members_bulk(
        &self,
        list: &str,
        rows: &[(String, Option<String>)],
        mut progress: impl FnMut(usize),
    ) -> Result<u64> {
        const ROWS: usize = 1000;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let mut added = 0;
        let mut done = 0;
        for chunk in rows.chunks(ROWS) {
            let mut sql = String::from(
                "INSERT INTO members (list, address, address_key, name, joined_at) VALUES ",
            );
            for i in 0..chunk.len() {
                let n = i * 3 + 3;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("($1, ${n}, ${}, ${}, $2)", n + 1, n + 2));
            }
            sql.push_str(" ON CONFLICT (list, address_key) DO NOTHING");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(list).bind(now);
            for (address, name) in chunk {
                q = q
                    .bind(address.trim())
                    .bind(key(address))
                    .bind(name.as_deref());
            }
            added += q.execute(&mut *tx).await?.rows_affected();
            done += chunk.len();
            progress(done);
        }
        tx.commit().await?;
        Ok(added)
    }

    pub async fn remove_member(&self, list: &str, address: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM members WHERE list = $1 AND address_key = $2")
            .bind(list)
            .bind(key(address))
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Members in address order strictly after `after`, at most `limit` (≤ 1000).
    pub async fn members_page(
        &self,
        list: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Member>> {
        let rows = sqlx::query(select_member!(
            "WHERE list = $1 AND address_key > $2 ORDER BY address_key LIMIT $3"
        ))
        .bind(list)
        .bind(after.map(key).unwrap_or_default())
        .bind(i64::from(limit.min(1000)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(member).collect()
    }

    /// The list and address of a member by its row id (unsubscribe tokens carry the id).
    pub async fn member_by_id(&self, id: i64) -> Result<Option<(String, String)>> {
        Ok(
            sqlx::query_as("SELECT list, address FROM members WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Remove a member by row id; the list and address it had, or `None` when there was no
    /// such member (already gone: removing twice changes nothing).
    pub async fn remove_member_by_id(&self, id: i64) -> Result<Option<(String, String)>> {
        Ok(
            sqlx::query_as("DELETE FROM members WHERE id = $1 RETURNING list, address")
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn member_count(&self, list: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE list = $1")
            .bind(list)
            .fetch_one(self.pool())
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub async fn set_member_status(
        &self,
        list: &str,
        address: &str,
        status: DeliveryStatus,
    ) -> Result<bool> {
        let sql = "UPDATE members SET status = $1 WHERE list = $2 AND address_key = $3";
        self.update_member(sql, list, address, status.as_str().to_string())
            .await
    }

    pub async fn set_member_bounce_score(
        &self,
        list: &str,
        address: &str,
        score: f64,
    ) -> Result<bool> {
        if !score.is_finite() {
            return Err(StoreError::Invalid(
                "bounce score must be a finite number".into(),
            ));
        }
        let sql = "UPDATE members SET bounce_score = $1 WHERE list = $2 AND address_key = $3";
        self.update_member(sql, list, address, score).await
    }

    /// Record why the bounce handling changed (or kept) a member's score or status.
    pub async fn note_member_bounce(&self, list: &str, address: &str, note: &str) -> Result<bool> {
        let note: String = note.chars().filter(|c| !c.is_control()).take(500).collect();
        let n = sqlx::query(
            "UPDATE members SET bounce_note = $1, bounce_at = $2 WHERE list = $3 AND address_key = $4",
        )
        .bind(note)
        .bind(now_ms())
        .bind(list)
        .bind(key(address))
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn set_member_moderated(
        &self,
        list: &str,
        address: &str,
        moderated: bool,
    ) -> Result<bool> {
        let sql = "UPDATE members SET moderated = $1 WHERE list = $2 AND address_key = $3";
        self.update_member(sql, list, address, i64::from(moderated))
            .await
    }

    /// Run one of the `UPDATE members SET x = $1 WHERE list = $2 AND address_key = $3`
    /// statements above.
    async fn update_member<T>(
        &self,
        sql: &'static str,
        list: &str,
        address: &str,
        value: T,
    ) -> Result<bool>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send,
    {
        let n = sqlx::query(sql)
            .bind(value)
            .bind(list)
            .bind(key(address))
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}

/// Add a member inside a caller's transaction; false when already a member.
pub(super) async fn insert_member(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    list: &str,
    address: &str,
    name: Option<&str>,
    now: i64,
) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO members (list, address, address_key, name, joined_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (list, address_key) DO NOTHING",
    )
    .bind(list)
    .bind(address)
    .bind(key(address))
    .bind(name)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses() {
        for ok in [
            "a@example.org",
            "first.last+tag@sub.example.co.uk",
            "x@b\u{e9}b\u{e9}.fr",
        ] {
            assert!(super::check_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@example.org",
            "a b@example.org",
            "a@example..org",
            "<a@example.org>",
            "a@@example.org",
            // What a hostile envelope sender may be, as notices would write it after
            // `RCPT TO:<` and into `To:`.
            "\"a> NOTIFY=SUCCESS ORCPT=rfc822;x\"@example.org",
            "\"a\r\nBcc: x@evil.example\"@example.org",
            "a>@example.org",
        ] {
            assert!(super::check_address(bad).is_err(), "{bad}");
        }
    }
}

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
}

impl Store {
    /// Queue a notice; returns its id.
    pub async fn queue_notice(&self, list: &str, plugin: &str, notice: &Notice) -> Result<i64> {
        if notice.subject.contains(['\r', '\n']) {
            return Err(StoreError::Invalid(
                "notice subject must be one line".into(),
            ));
        }
        let (owners, address) = match &notice.to {
            NoticeTarget::Owners => (1i64, None),
            NoticeTarget::Address(a) if a.contains('@') && !a.contains(['\r', '\n', ' ']) => {
                (0, Some(a.as_str()))
            }
            NoticeTarget::Address(a) => {
                return Err(StoreError::Invalid(format!("`{a}` is not a mail address")));
            }
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO notices (list, plugin, to_owners, to_address, subject, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(list)
        .bind(plugin)
        .bind(owners)
        .bind(address)
        .bind(&notice.subject)
        .bind(&notice.body)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }
}

//! Pending confirmations: a subscription waiting for the subscriber's (or an owner's) yes,
//! an unsubscribe waiting for the member's. Confirming acts once, however many times the
//! link is opened or the mail answered, on whichever node.

use super::{Notice, NoticeTarget, Result, Store, messages::insert_notice_for_list, now_ms};

/// What a confirmation does when confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Subscribe {
        address: String,
        name: Option<String>,
    },
    Unsubscribe {
        address: String,
    },
}

/// A pending confirmation, as the page that asks for it shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub list: String,
    pub action: Action,
    pub expired: bool,
    pub done: bool,
}

/// The result of confirming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// Carried out now.
    Done {
        list: String,
        action: Action,
    },
    /// Confirmed before (by this link, the mail, or another node): nothing changed.
    AlreadyDone,
    Expired,
    Unknown,
}

impl Store {
    pub async fn create_confirmation(
        &self,
        list: &str,
        action: &Action,
        done: Option<&Notice>,
        ttl_ms: i64,
    ) -> Result<i64> {
        let (kind, address, name) = match action {
            Action::Subscribe { address, name } => ("subscribe", address, name.as_deref()),
            Action::Unsubscribe { address } => ("unsubscribe", address, None),
        };
        let (to, subject, body) = match done {
            Some(n) => (
                Some(match &n.to {
                    NoticeTarget::Owners => "owners".to_string(),
                    NoticeTarget::Address(a) => a.clone(),
                }),
                Some(n.subject.as_str()),
                Some(n.body.as_str()),
            ),
            None => (None, None, None),
        };
        let now = now_ms();
        Ok(sqlx::query_scalar(
            "INSERT INTO confirmations (list, action, address, name, done_to, done_subject, \
             done_body, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING id",
        )
        .bind(list)
        .bind(kind)
        .bind(address)
        .bind(name)
        .bind(to)
        .bind(subject)
        .bind(body)
        .bind(now)
        .bind(now + ttl_ms)
        .fetch_one(self.pool())
        .await?)
    }

    pub async fn pending_confirmation(&self, id: i64) -> Result<Option<Pending>> {
        let row: Option<(String, String, String, Option<String>, String, i64)> = sqlx::query_as(
            "SELECT list, action, address, name, state, expires_at FROM confirmations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.and_then(|(list, kind, address, name, state, expires)| {
            Some(Pending {
                list,
                action: action(&kind, address, name)?,
                expired: expires < now_ms(),
                done: state == "done",
            })
        }))
    }

    /// Confirm: one conditional update takes the row from `pending` to `done`; only the
    /// caller that changed it adds or removes the member and queues the `done` notice, in
    /// the same transaction.
    pub async fn confirm(&self, id: i64) -> Result<Confirmed> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        type Row = (
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let row: Option<Row> = sqlx::query_as(
            "UPDATE confirmations SET state = 'done', decided_at = $1 \
             WHERE id = $2 AND state = 'pending' AND expires_at >= $1 \
             RETURNING list, action, address, name, done_to, done_subject, done_body",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((list, kind, address, name, to, subject, body)) = row else {
            drop(tx);
            return Ok(match self.pending_confirmation(id).await? {
                None => Confirmed::Unknown,
                Some(p) if p.done => Confirmed::AlreadyDone,
                Some(_) => Confirmed::Expired,
            });
        };
        let Some(act) = action(&kind, address, name) else {
            return Ok(Confirmed::Unknown);
        };
        match &act {
            Action::Subscribe { address, name } => {
                super::members::insert_member(&mut tx, &list, address, name.as_deref(), now)
                    .await?;
            }
            Action::Unsubscribe { address } => {
                sqlx::query("DELETE FROM members WHERE list = $1 AND address_key = $2")
                    .bind(&list)
                    .bind(address.trim().to_lowercase())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if let (Some(to), Some(subject), Some(body)) = (to, subject, body) {
            let notice = Notice {
                to: if to == "owners" {
                    NoticeTarget::Owners
                } else {
                    NoticeTarget::Address(to)
                },
                subject,
                body,
                reply_to: None,
            };
            insert_notice_for_list(&mut *tx, &list, "", &notice, now).await?;
        }
        tx.commit().await?;
        Ok(Confirmed::Done { list, action: act })
    }
}

fn action(kind: &str, address: String, name: Option<String>) -> Option<Action> {
    match kind {
        "subscribe" => Some(Action::Subscribe { address, name }),
        "unsubscribe" => Some(Action::Unsubscribe { address }),
        _ => None,
    }
}

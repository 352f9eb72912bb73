//! What the reports read: a post's delivery and tracking figures.

use std::collections::BTreeMap;

use super::{Result, Store};

/// Total and distinct-member counts of one kind of event.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub total: i64,
    pub unique: i64,
}

/// One post's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PostReport {
    pub id: String,
    pub list: String,
    pub subject: String,
    pub received_at: i64,
    pub recipients: i64,
    pub delivered: i64,
    /// Still waiting, after at least one failed attempt.
    pub deferred: i64,
    /// Still waiting, not yet tried.
    pub waiting: i64,
    /// Refused permanently or given up (bounces).
    pub bounced: i64,
    /// Recipients who are no longer members.
    pub unsubscribed: i64,
    pub opens: Counts,
    pub clicks: Counts,
    /// Opens and clicks by known prefetchers (not counted above).
    pub prefetches: i64,
    /// Clicks per link number.
    pub links: BTreeMap<i64, Counts>,
}

impl Store {
    pub async fn post_report(&self, id: &str) -> Result<Option<PostReport>> {
        let Some((list, head, received_at)): Option<(String, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT list, substr(raw, 1, 8192), received_at FROM messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(None);
        };
        let mut r = PostReport {
            id: id.to_string(),
            list,
            subject: crate::message::header(&head, "subject").unwrap_or_default(),
            received_at,
            ..PostReport::default()
        };
        let states: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT state, CASE WHEN attempts > 0 THEN 1 ELSE 0 END, COUNT(*) FROM recipients \
             WHERE message_id = $1 GROUP BY state, CASE WHEN attempts > 0 THEN 1 ELSE 0 END",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        for (state, tried, n) in states {
            r.recipients += n;
            match (state.as_str(), tried) {
                ("sent", _) => r.delivered += n,
                ("queued", 1) => r.deferred += n,
                ("queued", _) => r.waiting += n,
                _ => r.bounced += n,
            }
        }
        r.unsubscribed = sqlx::query_scalar(
            "SELECT COUNT(*) FROM recipients r WHERE r.message_id = $1 AND r.member_id IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM members m WHERE m.id = r.member_id)",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        // Kept as the events came in (`event_counts`): no scan of the events.
        for ((kind, key), (total, unique)) in self.post_event_counts(id, "tracking").await? {
            let counts = Counts { total, unique };
            match (kind.as_str(), key.as_str()) {
                ("open", "") => r.opens = counts,
                ("click", "") => r.clicks = counts,
                ("click", n) => {
                    if let Ok(n) = n.parse::<i64>() {
                        r.links.insert(n, counts);
                    }
                }
                (k, "") if k.ends_with("-prefetch") => r.prefetches += total,
                _ => {}
            }
        }
        Ok(Some(r))
    }
}

/// A post in the list of recent ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostLine {
    pub id: String,
    pub list: String,
    pub subject: String,
    pub received_at: i64,
    pub state: String,
}

impl Store {
    /// Posts sent out (accepted or approved), newest first; of one list, or of all when
    /// `list` is empty. Reads only the first bytes of each (for the subject).
    pub async fn recent_posts(&self, list: &str, limit: u32) -> Result<Vec<PostLine>> {
        let rows: Vec<(String, String, Vec<u8>, i64, String)> = sqlx::query_as(
            "SELECT id, list, substr(raw, 1, 8192), received_at, state FROM messages \
             WHERE kind = 'post' AND state IN ('accepted', 'approved') \
             AND ($1 = '' OR list = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(list)
        .bind(i64::from(limit.min(200)))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, list, head, received_at, state)| PostLine {
                id,
                list,
                subject: crate::message::header(&head, "subject").unwrap_or_default(),
                received_at,
                state,
            })
            .collect())
    }
}

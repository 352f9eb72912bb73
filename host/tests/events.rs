//! Old events are pruned in batches once counted, on SQLite and PostgreSQL; the counts the
//! reports read stay (a plugin's own `events.count` over a span older than
//! `[http] events_retention` sees only what is left).

mod common;

use common::TestDb;
use roost::store::NewEvent;

const LIST: &str = "news@lists.example.org";

on_both_backends!(
    old_counted_events_are_pruned_in_batches,
    |db: TestDb| async move {
        let store = &db.store;
        let events: Vec<(String, NewEvent)> = (0..25)
            .map(|i| {
                (
                    LIST.to_string(),
                    NewEvent {
                        kind: "click".into(),
                        post_id: Some("post-1".into()),
                        member: Some(format!("m{i}@example.org")),
                        key: Some("0".into()),
                    },
                )
            })
            .collect();
        store.emit_events("tracking", &events).await.unwrap();
        // The first 20 are old; none is counted yet, so none may go.
        sqlx::query(
            "UPDATE events SET at = 1000 WHERE id IN (SELECT id FROM events ORDER BY id LIMIT 20)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        assert_eq!(store.prune_events(5_000, 8).await.unwrap(), 0);
        assert_eq!(store.count_new_events(0, 1000).await.unwrap(), 25);
        let mut batches = Vec::new();
        loop {
            let n = store.prune_events(5_000, 8).await.unwrap();
            batches.push(n);
            if n < 8 {
                break;
            }
        }
        assert_eq!(batches, [8, 8, 4]);
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(left, 5);
        // The reports read the counts, which keep all 25.
        let counts = store.post_event_counts("post-1", "tracking").await.unwrap();
        assert_eq!(
            counts.get(&("click".to_string(), String::new())),
            Some(&(25, 25)),
            "{counts:?}"
        );
    }
);

//! Accepted posts become recipients and batches exactly once, in transactions of many
//! posts, even when several nodes expand at the same moment; on SQLite and PostgreSQL.

mod common;

use common::TestDb;
use roost::store::{Decision, Job, MessageKind, NewMessage, Store, now_ms};

const LIST: &str = "news@lists.example.org";
const POSTS: usize = 60;

fn post(i: usize) -> NewMessage {
    NewMessage {
        id: format!("post-{i:04}"),
        list: LIST.into(),
        kind: MessageKind::Post,
        token: None,
        mail_from: "ann@example.org".into(),
        rcpt_to: vec![LIST.into()],
        client_ip: "127.0.0.1".into(),
        helo: "client.example.org".into(),
        raw: format!("Subject: post {i}\r\n\r\nhello\r\n").into_bytes(),
        received_at: now_ms(),
        node: "a".into(),
        lease: None,
    }
}

fn accepted() -> Decision {
    Decision {
        state: "accepted",
        reason: None,
        edits: None,
        notice: None,
        forward_to: Vec::new(),
        bounces: Vec::new(),
    }
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

on_both_backends!(
    racing_expansions_take_each_post_once,
    |db: TestDb| async move {
        let store = &db.store;
        // Three domains, one member disabled: batches are per domain, and only the enabled
        // get a copy.
        for domain in ["a.example", "b.example", "c.example"] {
            for n in 0..5 {
                store
                    .add_member(LIST, &format!("m{n}@{domain}"), None)
                    .await
                    .unwrap();
            }
        }
        sqlx::query("UPDATE members SET status = 'disabled' WHERE address = 'm0@c.example'")
            .execute(store.pool())
            .await
            .unwrap();
        let posts: Vec<NewMessage> = (0..POSTS).map(post).collect();
        store.insert_messages(&posts).await.unwrap();
        let jobs = store
            .claim_processing("a", 60_000, POSTS as u32)
            .await
            .unwrap();
        assert_eq!(jobs.len(), POSTS);
        let decided: Vec<(Job, Decision)> = jobs.into_iter().map(|j| (j, accepted())).collect();
        assert_eq!(store.finish_processing("a", &decided).await.unwrap(), POSTS);

        // Two "nodes" (their own connections) expand at once, a few posts per transaction.
        let other = Store::connect(&db.url).await.unwrap();
        let run = |s: Store| async move {
            let mut mine = Vec::new();
            loop {
                let (posts, recipients) = s.expand_posts(7, 2).await.unwrap();
                if posts.is_empty() {
                    return mine;
                }
                assert_eq!(recipients, 14 * posts.len() as u64, "{posts:?}");
                mine.extend(posts);
            }
        };
        let (a, b) = tokio::join!(
            tokio::spawn(run(store.clone())),
            tokio::spawn(run(other.clone()))
        );
        let mut all: Vec<String> = a.unwrap().into_iter().chain(b.unwrap()).collect();
        all.sort();
        let expected: Vec<String> = (0..POSTS).map(|i| format!("post-{i:04}")).collect();
        assert_eq!(all, expected, "every post expanded, none twice");

        assert_eq!(
            count(store, "SELECT COUNT(*) FROM jobs WHERE kind = 'deliver'").await,
            0
        );
        assert_eq!(
            count(store, "SELECT COUNT(*) FROM recipients").await,
            14 * POSTS as i64
        );
        assert_eq!(
            count(
                store,
                "SELECT COUNT(*) FROM (SELECT DISTINCT message_id, address FROM recipients) AS r"
            )
            .await,
            14 * POSTS as i64,
            "no recipient twice"
        );
        // Batches of two per domain: a.example and b.example have 5 (3 batches), c.example 4
        // (2 batches); every recipient's batch exists.
        assert_eq!(
            count(store, "SELECT COUNT(*) FROM batches").await,
            8 * POSTS as i64
        );
        assert_eq!(
            count(
                store,
                "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM recipients \
             GROUP BY message_id, domain, seq) AS r"
            )
            .await,
            2
        );
        assert_eq!(
            count(
                store,
                "SELECT COUNT(*) FROM recipients r WHERE NOT EXISTS (SELECT 1 FROM batches b \
             WHERE b.message_id = r.message_id AND b.domain = r.domain AND b.seq = r.seq)"
            )
            .await,
            0
        );
        other.close().await;
    }
);

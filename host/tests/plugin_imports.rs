//! Every host import does something real against the database, through a real component
//! (tests/plugins/probe), on SQLite and on PostgreSQL, confined to the call's list.

mod common;

use std::sync::Arc;

use common::TestDb;
use roost::{
    plugins::{Bound, Failure, Runtime, wit},
    store::{DeliveryStatus, KvScope},
};

const LIST: &str = "announce@lists.example.org";

async fn probe(rt: &Runtime, db: &TestDb, list: &str) -> Bound {
    let config = "greeting = \"hello\"\n";
    common::bind(
        rt,
        "probe",
        list,
        config,
        common::limits(5_000, 64),
        Some(db.store.clone()),
    )
    .await
}

/// Call the probe's HTTP route; returns (status, body).
async fn call(rt: &Runtime, b: &Bound, path: &str, query: &str, body: &str) -> (u16, String) {
    let r = rt
        .on_http(b, &common::http(path, query, body))
        .await
        .unwrap_or_else(|e| panic!("{path}?{query}: {e}"));
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

async fn ok(rt: &Runtime, b: &Bound, path: &str, query: &str, body: &str) -> String {
    let (status, body) = call(rt, b, path, query, body).await;
    assert_eq!(status, 200, "{path}?{query}: {body}");
    body
}

on_both_backends!(config_and_clock, |db: TestDb| async move {
    let rt = common::runtime();
    let b = probe(&rt, &db, LIST).await;
    assert_eq!(
        ok(&rt, &b, "/config", "", "").await,
        "greeting = \"hello\"\n"
    );
    let now: i64 = ok(&rt, &b, "/now", "", "").await.parse().unwrap();
    assert!(
        (now - roost::store::now_ms()).abs() < 5_000,
        "clock off: {now}"
    );
});

on_both_backends!(kv_is_versioned_and_scoped, |db: TestDb| async move {
    let rt = common::runtime();
    let b = probe(&rt, &db, LIST).await;
    assert_eq!(ok(&rt, &b, "/kv/set", "key=a", "one").await, "1");
    assert_eq!(ok(&rt, &b, "/kv/set", "key=a", "two").await, "2");
    assert_eq!(ok(&rt, &b, "/kv/get", "key=a", "").await, "2 two");
    assert_eq!(
        ok(&rt, &b, "/kv/cas", "key=a&expected=2", "three").await,
        "3"
    );
    assert_eq!(
        call(&rt, &b, "/kv/cas", "key=a&expected=2", "late").await,
        (409, "3".into())
    );
    assert_eq!(
        call(&rt, &b, "/kv/cas", "key=a&expected=none", "x").await,
        (409, "3".into())
    );
    assert_eq!(
        ok(&rt, &b, "/kv/cas", "key=b&expected=none", "new").await,
        "1"
    );
    assert_eq!(
        call(&rt, &b, "/kv/cas", "key=c&expected=1", "x").await,
        (409, "absent".into())
    );

    for k in ["p/1", "p/2", "p/3", "q/1"] {
        ok(&rt, &b, "/kv/set", &format!("key={k}"), "v").await;
    }
    assert_eq!(
        ok(&rt, &b, "/kv/keys", "prefix=p/&limit=2", "").await,
        "p/1\np/2"
    );
    assert_eq!(
        ok(&rt, &b, "/kv/keys", "prefix=p/&after=p/2", "").await,
        "p/3"
    );
    assert_eq!(ok(&rt, &b, "/kv/delete", "key=a", "").await, "true");
    assert_eq!(ok(&rt, &b, "/kv/delete", "key=a", "").await, "false");
    assert_eq!(call(&rt, &b, "/kv/get", "key=a", "").await.0, 404);

    // Another list's plugin sees none of it; the database holds it under this list only.
    let other = probe(&rt, &db, "other@lists.example.org").await;
    assert_eq!(call(&rt, &other, "/kv/get", "key=b", "").await.0, 404);
    let scope = KvScope {
        list: LIST.into(),
        plugin: "probe".into(),
        quota: Default::default(),
    };
    assert_eq!(
        db.store.kv_get(&scope, "b").await.unwrap().unwrap().value,
        b"new"
    );
});

on_both_backends!(
    kv_compare_and_swap_has_one_winner,
    |db: TestDb| async move {
        let rt = Arc::new(common::runtime());
        let b = probe(&rt, &db, LIST).await;
        let mut racers = Vec::new();
        for i in 0..16 {
            let (rt, b) = (rt.clone(), b.clone());
            racers.push(tokio::spawn(async move {
                call(
                    &rt,
                    &b,
                    "/kv/cas",
                    "key=race&expected=none",
                    &format!("racer-{i}"),
                )
                .await
            }));
        }
        let mut winners = 0;
        for r in racers {
            let (status, _) = r.await.unwrap();
            assert!(status == 200 || status == 409);
            winners += usize::from(status == 200);
        }
        assert_eq!(winners, 1, "exactly one racer may win");
    }
);

on_both_backends!(
    members_are_managed_in_the_database,
    |db: TestDb| async move {
        let rt = common::runtime();
        let b = probe(&rt, &db, LIST).await;
        assert_eq!(
            ok(
                &rt,
                &b,
                "/members/add",
                "address=Bob@Example.org&name=Bob",
                ""
            )
            .await,
            "true"
        );
        assert_eq!(
            ok(&rt, &b, "/members/add", "address=bob@example.org", "").await,
            "false"
        );
        assert_eq!(
            ok(&rt, &b, "/members/add", "address=carol@example.org", "").await,
            "true"
        );
        assert_eq!(
            call(&rt, &b, "/members/add", "address=no+at+sign", "")
                .await
                .0,
            400
        );
        assert_eq!(ok(&rt, &b, "/members/count", "", "").await, "2");
        assert_eq!(
            ok(
                &rt,
                &b,
                "/members/status",
                "address=bob@example.org&status=bounces",
                ""
            )
            .await,
            "true"
        );
        assert_eq!(
            ok(
                &rt,
                &b,
                "/members/score",
                "address=bob@example.org&score=2.5",
                ""
            )
            .await,
            "true"
        );
        assert_eq!(
            ok(
                &rt,
                &b,
                "/members/moderated",
                "address=bob@example.org&value=true",
                ""
            )
            .await,
            "true"
        );
        assert_eq!(
            ok(
                &rt,
                &b,
                "/members/status",
                "address=nobody@example.org&status=bounces",
                ""
            )
            .await,
            "false"
        );
        assert_eq!(
            ok(&rt, &b, "/members/get", "address=BOB@example.org", "").await,
            "Bob@Example.org DeliveryStatus::DisabledBounces moderated=true score=2.5"
        );
        let m = db
            .store
            .member(LIST, "bob@example.org")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.status, m.moderated, m.bounce_score),
            (DeliveryStatus::DisabledBounces, true, 2.5)
        );
        assert_eq!(m.name.as_deref(), Some("Bob"));
        assert_eq!(
            ok(&rt, &b, "/members/page", "limit=1", "").await,
            "Bob@Example.org"
        );
        assert_eq!(
            ok(&rt, &b, "/members/page", "after=bob@example.org", "").await,
            "carol@example.org"
        );
        assert_eq!(
            ok(&rt, &b, "/members/remove", "address=carol@example.org", "").await,
            "true"
        );
        assert!(
            db.store
                .member(LIST, "carol@example.org")
                .await
                .unwrap()
                .is_none()
        );
        // Members of another list are out of reach.
        let other = probe(&rt, &db, "other@lists.example.org").await;
        assert_eq!(
            call(&rt, &other, "/members/get", "address=bob@example.org", "")
                .await
                .0,
            404
        );
        assert_eq!(ok(&rt, &other, "/members/count", "", "").await, "0");
    }
);

on_both_backends!(events_notices_and_stats, |db: TestDb| async move {
    let rt = common::runtime();
    let b = probe(&rt, &db, LIST).await;
    for member in ["a@example.org", "b@example.org", "a@example.org"] {
        ok(
            &rt,
            &b,
            "/events/emit",
            &format!("kind=click&post=p1&member={member}&key=0"),
            "",
        )
        .await;
    }
    ok(
        &rt,
        &b,
        "/events/emit",
        "kind=open&post=p1&member=a@example.org",
        "",
    )
    .await;
    assert_eq!(
        ok(&rt, &b, "/events/count", "kind=click&post=p1", "").await,
        "3 2"
    );
    assert_eq!(
        ok(&rt, &b, "/events/count", "kind=click&post=p1&key=1", "").await,
        "0 0"
    );
    assert_eq!(ok(&rt, &b, "/events/count", "kind=open", "").await, "1 1");

    // The id is the message id the notice is sent under (`notice-N`).
    let id: i64 = ok(
        &rt,
        &b,
        "/notify",
        "to=owners&subject=Held+post",
        "Please look.",
    )
    .await
    .strip_prefix("notice-")
    .unwrap()
    .parse()
    .unwrap();
    let (owners, subject, body): (i64, String, String) =
        sqlx::query_as("SELECT to_owners, subject, body FROM notices WHERE id = $1")
            .bind(id)
            .fetch_one(db.store.pool())
            .await
            .unwrap();
    assert_eq!(
        (owners, subject.as_str(), body.as_str()),
        (1, "Held post", "Please look.")
    );
    // Bad input is the plugin's to handle; nothing is queued. A plugin writes only to the
    // list's owners and members (and the sender in hand, in hooks that have one).
    let (status, why) = call(&rt, &b, "/notify", "to=not-an-address", "x").await;
    assert_eq!(status, 400, "{why}");
    let (status, why) = call(&rt, &b, "/notify", "to=stranger@example.net", "x").await;
    assert_eq!(
        (status, why.as_str()),
        (
            400,
            "`stranger@example.net` is not a member or the sender in hand: notify writes only to them (and to the owners, as `owners`)"
        )
    );
    db.store
        .add_member(LIST, "m@example.org", None)
        .await
        .unwrap();
    ok(&rt, &b, "/notify", "to=m@example.org", "Hello member").await;
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notices")
        .fetch_one(db.store.pool())
        .await
        .unwrap();
    assert_eq!(queued, 2);
});

on_both_backends!(
    a_call_has_a_budget_of_events_notices_and_imports,
    |db: TestDb| async move {
        let rt = common::runtime();
        let b = probe(&rt, &db, LIST).await;
        // Within the limits: as asked.
        assert_eq!(
            ok(&rt, &b, "/events/flood", "n=200", "").await,
            "emitted 200"
        );
        assert_eq!(ok(&rt, &b, "/notify/flood", "n=10", "").await, "sent 10");
        // Past them: the events call traps (nothing more is recorded), the notice is refused
        // with an error the plugin sees, the imports trap.
        let trapped = |path: &'static str, query: &'static str| {
            let (rt, b) = (&rt, &b);
            async move {
                match rt.on_http(b, &common::http(path, query, "")).await {
                    Ok(r) => panic!("{path}: answered {}", r.status),
                    Err(e) => e.to_string(),
                }
            }
        };
        let why = trapped("/events/flood", "n=201").await;
        assert!(why.contains("more than 200 events in one call"), "{why}");
        let (status, why) = call(&rt, &b, "/notify/flood", "n=11", "").await;
        assert_eq!(
            (status, why.as_str()),
            (429, "10 sent; at most 10 notices in one call")
        );
        let why = trapped("/kv/flood", "n=10001").await;
        assert!(
            why.contains("more than 10000 database imports in one call"),
            "{why}"
        );
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE kind = 'flood'")
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        assert_eq!(
            events, 400,
            "the trapped call's first 200 were recorded, no more"
        );
        // A fresh call has its budget back.
        assert_eq!(ok(&rt, &b, "/kv/flood", "n=100", "").await, "read 100");
    }
);

on_both_backends!(stats_are_read_per_hour_and_node, |db: TestDb| async move {
    let rt = common::runtime();
    let b = probe(&rt, &db, LIST).await;
    let hour = 1_790_000_000_000i64 - 1_790_000_000_000i64 % 3_600_000;
    db.store
        .add_delivery_stats("node-a", hour + 10, 10, 8, 2)
        .await
        .unwrap();
    db.store
        .add_delivery_stats("node-a", hour + 20, 5, 5, 0)
        .await
        .unwrap();
    db.store
        .add_delivery_stats("node-b", hour + 30, 1, 0, 1)
        .await
        .unwrap();
    let q = format!("start={hour}&end={}", hour + 3_600_000);
    assert_eq!(
        ok(&rt, &b, "/stats", &q, "").await,
        format!("{hour} node-a 15 13 2\n{hour} node-b 1 0 1")
    );
    assert_eq!(
        ok(&rt, &b, "/stats", &format!("{q}&node=node-b"), "").await,
        format!("{hour} node-b 1 0 1")
    );
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_failures_stop_the_call_with_a_reason() {
    let db = common::sqlite().await;
    let rt = common::runtime();
    // A node-level plugin has no list, so it has no members.
    let node = probe(&rt, &db, "").await;
    let e = rt
        .on_http(&node, &common::http("/members/count", "", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(&e.failure, Failure::Host(w) if w.contains("no list")),
        "{e}"
    );
    // Oversized kv keys are refused by the host, not stored.
    let b = probe(&rt, &db, LIST).await;
    let long = "k".repeat(600);
    let e = rt
        .on_http(&b, &common::http("/kv/set", &format!("key={long}"), "v"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e.failure, Failure::Host(w) if w.contains("exceeds 512")),
        "{e}"
    );
    // The database going away fails calls cleanly; nothing hangs.
    db.store.close().await;
    let e = rt
        .on_http(&b, &common::http("/kv/get", "key=a", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(&e.failure, Failure::Host(w) if w.contains("kv.get")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_deliver_edits_come_back_per_recipient() {
    let db = common::sqlite().await;
    let rt = common::runtime();
    let b = probe(&rt, &db, LIST).await;
    let rcpt = wit::Recipient {
        address: "dee@example.org".into(),
        name: None,
    };
    let edits = rt
        .on_deliver(&b, &common::message("x", 100), &rcpt)
        .await
        .unwrap();
    assert!(matches!(&edits[..], [wit::Edit::AddHeader(h)] if h.value == "dee@example.org"));
}

on_both_backends!(kv_keeps_to_its_quota, |db: TestDb| async move {
    let rt = common::runtime();
    let limits = roost::config::PluginLimits {
        kv_keys: 3,
        kv_bytes: 10,
        ..common::limits(5_000, 64)
    };
    let b = common::bind(
        &rt,
        "probe",
        LIST,
        "greeting = \"hello\"\n",
        limits,
        Some(db.store.clone()),
    )
    .await;
    let refused = |key: &'static str, value: &'static str| {
        let (rt, b) = (&rt, &b);
        async move {
            let query = format!("key={key}");
            match rt.on_http(b, &common::http("/kv/set", &query, value)).await {
                Ok(r) => panic!("{key}: answered {}", r.status),
                Err(e) => e.to_string(),
            }
        }
    };
    ok(&rt, &b, "/kv/set", "key=a", "12345").await;
    ok(&rt, &b, "/kv/set", "key=b", "12345").await;
    // One byte over: refused, nothing written.
    let why = refused("c", "x").await;
    assert!(why.contains("kv quota of plugin `probe`"), "{why}");
    assert_eq!(call(&rt, &b, "/kv/get", "key=c", "").await.0, 404);
    // Shrinking is always allowed, and makes room.
    ok(&rt, &b, "/kv/set", "key=a", "12").await;
    ok(&rt, &b, "/kv/cas", "key=c&expected=none", "x").await;
    // A fourth key is one too many, until one goes.
    let why = refused("d", "").await;
    assert!(why.contains("at most 3 keys"), "{why}");
    assert_eq!(ok(&rt, &b, "/kv/delete", "key=a", "").await, "true");
    ok(&rt, &b, "/kv/set", "key=d", "").await;
    let usage: (i64, i64) = sqlx::query_as(
        "SELECT keys, bytes FROM plugin_kv_usage WHERE list = $1 AND plugin = 'probe'",
    )
    .bind(LIST)
    .fetch_one(db.store.pool())
    .await
    .unwrap();
    assert_eq!(usage, (3, 6));
});

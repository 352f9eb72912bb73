//! Bounce handling end to end: a receiving MTA on loopback rejects some members at RCPT
//! (synchronous 5xx), real DSNs and an ARF complaint for others come back to Roost over
//! SMTP from Python's smtplib (to the VERP address of the copy they are about, or without
//! a token), and the `bounce` plugin's scores and decisions are checked through
//! `roost members list`, the REST API and the database.

mod common;

use std::{collections::HashMap, time::Duration};

use common::{
    node::{Node, NodeSpec, curl, eventually, send, send_raw},
    recorder::{Received, Recorder},
};
use roost::store::Store;

const LIST: &str = "news@lists.example.org";

fn start(sink: &Recorder, bounce: &str) -> (Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("roost.db").display());
    (start_on(&url, sink, bounce), dir)
}

fn start_on(url: &str, sink: &Recorder, bounce: &str) -> Node {
    let extra = format!("\n[delivery]\nsmarthost = \"{}\"\n", sink.addr());
    let mut node = Node::new(NodeSpec {
        db_url: url,
        smtp_extra: &extra,
        lists: vec![(
            "news.toml",
            format!(
                "address = \"{LIST}\"\nname = \"News\"\nowners = [\"boss@example.org\"]\n\n\
                 [[plugin]]\nuse = \"bounce\"\n{bounce}\n"
            ),
        )],
    });
    node.start();
    node
}

/// Send a raw message from the null sender, as an MTA returns a bounce.
fn bounce_back(node: &Node, to: &str, raw: &str) {
    send_raw(&node.smtp, "<>", to, raw);
}

/// An RFC 3464 report for `rcpt` as Postfix writes it.
fn dsn(rcpt: &str, action: &str, status: &str, diagnostic: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
         To: news-bounces@lists.example.org\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\r\n\
         \r\n\
         --B1\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         This is the mail system at host mx.example.net.\r\n\
         \r\n\
         --B1\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.net\r\n\
         \r\n\
         Final-Recipient: rfc822; {rcpt}\r\n\
         Original-Recipient: rfc822; {rcpt}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         \r\n\
         --B1\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         From: Ann <ann@example.org>\r\n\
         Subject: Hello\r\n\
         \r\n\
         --B1--\r\n"
    )
}

/// An ARF (RFC 5965) abuse report about the copy sent to `rcpt`.
fn complaint(rcpt: &str) -> String {
    format!(
        "From: fbl@isp.example\r\n\
         To: news-bounces@lists.example.org\r\n\
         Subject: Abuse report\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"F1\"\r\n\
         \r\n\
         --F1\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         This is an email abuse report.\r\n\
         \r\n\
         --F1\r\n\
         Content-Type: message/feedback-report\r\n\
         \r\n\
         Feedback-Type: abuse\r\n\
         User-Agent: isp-fbl/1.0\r\n\
         Version: 1\r\n\
         Original-Rcpt-To: <{rcpt}>\r\n\
         \r\n\
         --F1\r\n\
         Content-Type: message/rfc822\r\n\
         \r\n\
         From: news@lists.example.org\r\n\
         To: {rcpt}\r\n\
         Subject: Hello\r\n\
         \r\n\
         body\r\n\
         \r\n\
         --F1--\r\n"
    )
}

/// The VERP return path of the copy each member got.
fn return_paths(got: &[Received]) -> HashMap<String, String> {
    got.iter()
        .map(|r| (r.to[0].clone(), r.from.clone()))
        .collect()
}

/// address -> (status, score, note) from `roost members list`.
fn members(node: &Node) -> HashMap<String, (String, f64, String)> {
    let (code, out, err) = node.roost(&["members", "list", "news"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 6).then(|| {
                (
                    f[0].to_string(),
                    (f[2].to_string(), f[4].parse().unwrap(), f[5].to_string()),
                )
            })
        })
        .collect()
}

with_database_urls!(
    scores_and_states_follow_the_list_config,
    |url: String| async move {
        let sink = Recorder::start(&["--reject", "rcptbad"]);
        let mut node = start_on(
            &url,
            &sink,
            "threshold = 1.0\nsummary = \"never\"\nwarn = true\n\
         [plugin.scores]\nmailbox-full = 0.5\npolicy = 0.0\n",
        );
        let people = [
            "ok@a.example",
            "rcptbad@b.example",
            "dsnbad@c.example",
            "full@c.example",
            "delayed@c.example",
            "policy@c.example",
            "noverp@c.example",
            "spam@c.example",
            "redacted@c.example",
            "forged@c.example",
        ];
        let mut args = vec!["members", "add", "news"];
        args.extend(people);
        let (code, _, err) = node.roost(&args);
        assert_eq!(code, 0, "{err}");
        let store = Store::connect(&node.db_url).await.unwrap();

        send(&node.smtp, "ann@example.org", LIST, "Hello", "body");
        let got = sink
            .wait_for(people.len() - 1, Duration::from_secs(30))
            .await;
        let verp = return_paths(&got);
        assert!(!verp.contains_key("rcptbad@b.example"));
        for (rcpt, path) in &verp {
            assert!(path.starts_with("news-bounces+"), "{rcpt}: {path}");
        }

        // Asynchronous bounces, each to the VERP address of its copy.
        let back = |rcpt: &str, raw: String| bounce_back(&node, &verp[rcpt], &raw);
        back(
            "dsnbad@c.example",
            dsn(
                "dsnbad@c.example",
                "failed",
                "5.1.1",
                "550 5.1.1 <dsnbad@c.example>: Recipient address rejected: User unknown",
            ),
        );
        back(
            "full@c.example",
            dsn(
                "full@c.example",
                "failed",
                "5.2.2",
                "552 5.2.2 Mailbox full",
            ),
        );
        back(
            "delayed@c.example",
            dsn(
                "delayed@c.example",
                "delayed",
                "4.4.1",
                "connect to mx.c.example: Connection timed out",
            ),
        );
        back(
            "policy@c.example",
            dsn(
                "policy@c.example",
                "failed",
                "5.7.1",
                "550 5.7.1 Message rejected as spam",
            ),
        );
        back("spam@c.example", complaint("spam@c.example"));
        // A provider that removed the address: only the VERP token says whose copy it was.
        back(
            "redacted@c.example",
            complaint("redacted@c.example")
                .replace("Original-Rcpt-To: <redacted@c.example>\r\n", "")
                .replace("To: redacted@c.example\r\n", ""),
        );
        // Forwarded or mangled: no token in the address, but the returned headers are the
        // copy's own (its List-Id, Message-ID and unsubscribe link): proof enough.
        let copy = got
            .iter()
            .find(|r| r.to[0] == "noverp@c.example")
            .unwrap()
            .text();
        let head = &copy[..copy.find("\r\n\r\n").unwrap() + 2];
        bounce_back(
            &node,
            "news-bounces@lists.example.org",
            &dsn(
                "noverp@c.example",
                "failed",
                "5.1.1",
                "550 5.1.1 No such user",
            )
            .replace("From: Ann <ann@example.org>\r\nSubject: Hello\r\n", head),
        );
        // Forged by anyone: a member's address written into bounces and a complaint sent
        // to the bare bounce address, with no proof of a copy. Kept, acted on never.
        let forged = dsn(
            "forged@c.example",
            "failed",
            "5.1.1",
            "550 5.1.1 No such user",
        );
        for _ in 0..3 {
            bounce_back(&node, "news-bounces@lists.example.org", &forged);
        }
        bounce_back(
            &node,
            "news-bounces@lists.example.org",
            &complaint("forged@c.example"),
        );
        // A real copy's headers quoted for another list's bounce address prove nothing here.
        let forged_head = head.replace("List-Id: \"News\"", "List-Id: \"Other\"");
        bounce_back(
            &node,
            "news-bounces@lists.example.org",
            &forged.replace(
                "From: Ann <ann@example.org>\r\nSubject: Hello\r\n",
                &forged_head.replace("<news.lists.example.org>", "<other.lists.example.org>"),
            ),
        );

        let settled = |m: &HashMap<String, (String, f64, String)>| {
            ["rcptbad@b.example", "dsnbad@c.example", "noverp@c.example"]
                .iter()
                .all(|a| m.get(*a).is_some_and(|s| s.0 == "disabled-bounces"))
                && m.get("full@c.example").is_some_and(|s| s.1 == 0.5)
                && !m.contains_key("spam@c.example")
                && !m.contains_key("redacted@c.example")
        };
        let mut seen = HashMap::new();
        for _ in 0..150 {
            seen = members(&node);
            if settled(&seen) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(settled(&seen), "{seen:#?}");
        for a in ["rcptbad@b.example", "dsnbad@c.example", "noverp@c.example"] {
            let (_, score, note) = &seen[a];
            assert_eq!(*score, 1.0, "{a}");
            assert!(
                note.starts_with("disabled:") && note.contains("mailbox-unknown"),
                "{a}: {note}"
            );
        }
        assert!(
            seen["full@c.example"].2.contains("mailbox-full"),
            "{seen:#?}"
        );
        // A delay notice, a spam rejection and forged reports change nothing.
        for a in [
            "ok@a.example",
            "delayed@c.example",
            "policy@c.example",
            "forged@c.example",
        ] {
            assert_eq!(
                seen[a],
                ("enabled".to_string(), 0.0, "-".to_string()),
                "{a}"
            );
        }

        // What was recorded, with its reason class and detector.
        let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT address, source, format, reason, state FROM bounces ORDER BY id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let find = |a: &str| {
            rows.iter()
                .find(|r| r.0 == a)
                .cloned()
                .unwrap_or_else(|| panic!("{a}: {rows:?}"))
        };
        assert_eq!(find("rcptbad@b.example").1, "delivery");
        assert_eq!(find("rcptbad@b.example").3, "mailbox-unknown");
        assert_eq!(find("dsnbad@c.example").1, "dsn");
        assert_eq!(find("dsnbad@c.example").2, "rfc3464");
        assert_eq!(find("delayed@c.example").3, "delay-notice");
        assert_eq!(find("policy@c.example").3, "policy");
        assert_eq!(find("spam@c.example").3, "complaint");
        assert_eq!(find("redacted@c.example").3, "complaint");
        assert_eq!(find("noverp@c.example").1, "dsn");
        assert_eq!(find("noverp@c.example").4, "handled");
        eventually(
            "forged reports recorded",
            Duration::from_secs(10),
            || async {
                let forged: Vec<String> = sqlx::query_scalar(
                    "SELECT state FROM bounces WHERE address = 'forged@c.example' ORDER BY id",
                )
                .fetch_all(store.pool())
                .await
                .unwrap();
                forged.len() == 5 && forged.iter().all(|s| s == "unverified")
            },
        )
        .await;
        let (code, out, err) = node.roost(&["bounce", "list", "news"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            out.lines()
                .filter(|l| l.contains("forged@c.example") && l.contains("\tunverified\t"))
                .count(),
            5,
            "{out}"
        );
        eventually("every bounce handled", Duration::from_secs(10), || async {
            let open: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM bounces WHERE state NOT IN ('handled', 'unverified')",
            )
            .fetch_one(store.pool())
            .await
            .unwrap();
            open == 0
        })
        .await;

        // The same through the REST API.
        let (status, body) = curl(&[
            "-H",
            &format!("Authorization: Bearer {}", common::node::API_TOKEN),
            &format!("http://{}/api/v1/lists/news/members", node.http),
        ]);
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let m = json["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["address"] == "dsnbad@c.example")
            .cloned()
            .unwrap();
        assert_eq!(m["status"], "disabled-bounces");
        assert!(m["bounce_note"].as_str().unwrap().contains("5.1.1"), "{m}");

        // Members whose delivery stopped were told (the one rejected at RCPT cannot be).
        eventually("warnings delivered", Duration::from_secs(20), || async {
            sink.received()
                .iter()
                .filter(|r| {
                    r.text()
                        .contains("Subject: Delivery from this list to you has stopped")
                })
                .map(|r| r.to[0].clone())
                .collect::<std::collections::HashSet<_>>()
                .is_superset(
                    &[
                        "dsnbad@c.example".to_string(),
                        "noverp@c.example".to_string(),
                    ]
                    .into(),
                )
        })
        .await;
        // A second post goes to nobody disabled or unsubscribed.
        let before = sink.received().len();
        send(&node.smtp, "ann@example.org", LIST, "Second", "body");
        eventually("second post delivered", Duration::from_secs(20), || async {
            sink.received()
                .iter()
                .filter(|r| r.text().contains("Subject: Second"))
                .count()
                == 5
        })
        .await;
        let second: Vec<String> = sink.received()[before..]
            .iter()
            .filter(|r| r.text().contains("Subject: Second"))
            .map(|r| r.to[0].clone())
            .collect();
        for a in [
            "rcptbad@b.example",
            "dsnbad@c.example",
            "noverp@c.example",
            "spam@c.example",
            "redacted@c.example",
        ] {
            assert!(!second.contains(&a.to_string()), "{a} got the second post");
        }
        // An owner turns delivery back on through the REST API.
        let auth = format!("Authorization: Bearer {}", common::node::API_TOKEN);
        let member_url = format!(
            "http://{}/api/v1/lists/news/members/dsnbad@c.example",
            node.http
        );
        let (status, body) = curl(&[
            "-X",
            "PATCH",
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"status": "enabled", "bounce_score": 0}"#,
            &member_url,
        ]);
        assert_eq!(status, 200, "{body}");
        let (status, body) = curl(&[
            "-X",
            "PATCH",
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"status": "asleep"}"#,
            &member_url,
        ]);
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("asleep"), "{body}");
        let m = members(&node);
        assert_eq!(m["dsnbad@c.example"].0, "enabled");
        assert_eq!(m["dsnbad@c.example"].1, 0.0);
        assert!(node.stop().success());
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_decides_before_disabling() {
    let sink = Recorder::start(&[]);
    let (mut node, _dir) = start(
        &sink,
        "threshold = 1.0\nprobe = true\nprobe_wait = \"4s\"\nsummary = \"1s\"\n",
    );
    let (code, _, err) = node.roost(&[
        "members",
        "add",
        "news",
        "dead@d.example",
        "alive@d.example",
    ]);
    assert_eq!(code, 0, "{err}");
    send(&node.smtp, "ann@example.org", LIST, "Hello", "body");
    let got = sink.wait_for(2, Duration::from_secs(30)).await;
    let verp = return_paths(&got);
    for a in ["dead@d.example", "alive@d.example"] {
        bounce_back(
            &node,
            &verp[a],
            &dsn(a, "failed", "5.1.1", "550 5.1.1 User unknown"),
        );
    }
    // Over the threshold, each gets a probe rather than being disabled.
    let mut probes = HashMap::new();
    for _ in 0..150 {
        probes = sink
            .received()
            .iter()
            .filter(|r| r.text().contains("Subject: Checking your address"))
            .map(|r| (r.to[0].clone(), r.from.clone()))
            .collect();
        if probes.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(probes.len(), 2, "{probes:?}");
    let m = members(&node);
    assert_eq!(m["dead@d.example"].0, "enabled");
    assert!(m["dead@d.example"].2.starts_with("probe notice-"), "{m:?}");
    // The dead address's probe bounces: now it is disabled. The live one's does not.
    bounce_back(
        &node,
        &probes["dead@d.example"],
        &dsn(
            "dead@d.example",
            "failed",
            "5.1.1",
            "550 5.1.1 User unknown",
        ),
    );
    let mut m = HashMap::new();
    for _ in 0..150 {
        m = members(&node);
        if m["dead@d.example"].0 == "disabled-bounces"
            && m["alive@d.example"].2.contains("went through")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(m["dead@d.example"].0, "disabled-bounces", "{m:?}");
    assert!(m["dead@d.example"].2.contains("the probe bounced"), "{m:?}");
    assert_eq!(
        m["alive@d.example"],
        ("enabled".to_string(), 0.0, m["alive@d.example"].2.clone())
    );
    assert!(m["alive@d.example"].2.contains("went through"), "{m:?}");
    // The owners' summary names both decisions.
    eventually("owner summary", Duration::from_secs(30), || async {
        sink.received().iter().any(|r| {
            let t = r.text();
            r.to[0] == "boss@example.org"
                && t.contains("Subject: Bounces:")
                && t.contains("dead@d.example: disabled")
        })
    })
    .await;
    assert!(node.stop().success());
}

#[test]
fn the_parse_command_explains_a_bounce() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.eml");
    std::fs::write(
        &file,
        dsn("x@example.com", "failed", "5.1.1", "550 5.1.1 User unknown"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["bounce", "parse"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["format"], "rfc3464");
    let r = &json["recipients"][0];
    assert_eq!(r["address"], "x@example.com");
    assert_eq!(r["action"], "failed");
    assert_eq!(r["status"], "5.1.1");
    assert_eq!(r["temporary"], false);
    assert_eq!(r["reason"], "mailbox-unknown");
    assert!(r["diagnostic"].as_str().unwrap().contains("User unknown"));

    std::fs::write(
        &file,
        "From: a@example.org\r\nSubject: hi\r\n\r\nJust mail.\r\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["bounce", "parse"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["bounce", "parse", "/nonexistent.eml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bounces_are_handled_and_harm_nothing() {
    let sink = Recorder::start(&[]);
    let (mut node, _dir) = start(&sink, "threshold = 1.0\nsummary = \"never\"\n");
    let (code, _, err) = node.roost(&["members", "add", "news", "x@e.example"]);
    assert_eq!(code, 0, "{err}");
    let store = Store::connect(&node.db_url).await.unwrap();
    // A MIME bomb: thousands of nested multiparts.
    let mut bomb =
        String::from("From: MAILER-DAEMON@mx.example\r\nSubject: bomb\r\nMIME-Version: 1.0\r\n");
    for i in 0..3000 {
        bomb.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    bomb.push_str("Content-Type: text/plain\r\n\r\nx\r\n");
    // Truncated in the middle of the report, in a charset nobody knows.
    let full = dsn("x@e.example", "failed", "5.1.1", "550 5.1.1 User unknown");
    let truncated = full[..full.find("Status:").unwrap() + 9].replace(
        "Content-Type: text/plain",
        "Content-Type: text/plain; charset=x-unknown-42",
    );
    // Enormous: more than the parser reads, addresses everywhere.
    let huge = format!(
        "From: MAILER-DAEMON@mx.example\r\nSubject: huge\r\n\r\n{}",
        "<a@b.example>: 550 5.1.1 user unknown\r\n".repeat(60_000)
    );
    for raw in [&bomb, &truncated, &huge] {
        bounce_back(&node, "news-bounces@lists.example.org", raw);
    }
    eventually("all three decided", Duration::from_secs(30), || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE kind = 'bounce' AND state = 'stored'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        open == 0
    })
    .await;
    let states: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT state, reason FROM messages WHERE kind = 'bounce'")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(states.len(), 3, "{states:?}");
    // The node goes on: a post still goes out.
    send(&node.smtp, "ann@example.org", LIST, "Still here", "body");
    sink.wait_for(1, Duration::from_secs(20)).await;
    assert!(node.stop().success());
}

with_database_urls!(
    a_nul_byte_or_a_message_that_keeps_failing_blocks_nothing,
    |url: String| async move {
        let sink = Recorder::start(&[]);
        let mut node = start_on(&url, &sink, "threshold = 1.0\nsummary = \"never\"\n");
        let (code, _, err) = node.roost(&["members", "add", "news", "x@e.example"]);
        assert_eq!(code, 0, "{err}");
        let store = Store::connect(&node.db_url).await.unwrap();
        // A bounce whose words carry NUL and other control bytes (PostgreSQL refuses NUL in
        // a text column: the whole batch of decisions used to fail, for ever), sent beside
        // a post that must go out all the same.
        let nul = dsn(
            "x@e.example",
            "failed",
            "5.1.1",
            "550 5.1.1 no\u{0}such\u{1}user",
        );
        bounce_back(&node, "news-bounces@lists.example.org", &nul);
        send(&node.smtp, "ann@example.org", LIST, "Still going", "body");
        sink.wait_for(1, Duration::from_secs(20)).await;
        eventually("the bounce recorded", Duration::from_secs(20), || async {
            let rows: Vec<String> =
                sqlx::query_scalar("SELECT diagnostic FROM bounces WHERE address = 'x@e.example'")
                    .fetch_all(store.pool())
                    .await
                    .unwrap();
            rows == ["550 5.1.1 no such user"]
        })
        .await;

        // A message that failed too often (here: for a list no node knows) is set aside
        // with its last error, and shown by `roost queue`.
        let ghost = roost::store::NewMessage {
            id: "0000ghost".into(),
            list: "ghost@lists.example.org".into(),
            kind: roost::store::MessageKind::Post,
            token: None,
            mail_from: "ann@example.org".into(),
            rcpt_to: vec!["ghost@lists.example.org".into()],
            client_ip: "127.0.0.1".into(),
            helo: "client".into(),
            raw: b"Subject: ghost\r\n\r\nbody\r\n".to_vec(),
            received_at: 0,
            node: "elsewhere".into(),
            lease: None,
        };
        store.insert_messages(&[ghost]).await.unwrap();
        sqlx::query(
            "UPDATE messages SET attempts = 8, last_error = 'unknown list' WHERE id = '0000ghost'",
        )
        .execute(store.pool())
        .await
        .unwrap();
        eventually("set aside", Duration::from_secs(20), || async {
            store
                .message("0000ghost")
                .await
                .is_ok_and(|m| m.state == "failed")
        })
        .await;
        let m = store.message("0000ghost").await.unwrap();
        assert_eq!(
            m.reason.as_deref(),
            Some("set aside after 8 tries: unknown list")
        );
        let (code, out, err) = node.roost(&["queue"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("0000ghost\tghost@lists.example.org\tpost\tset-aside\t9\tset aside after 8 tries: unknown list"),
            "{out}"
        );
        assert!(node.stop().success());
    }
);

//! The bundled `moderation` plugin end to end: posts from real SMTP clients (Python's email
//! package builds the MIME), decisions checked in the database, copies and notices caught
//! by a real receiving MTA, and held posts expiring through the cluster scheduler.

mod common;

use std::time::Duration;

use common::{
    node::{API_TOKEN, Node, curl, eventually, python},
    recorder::Recorder,
};
use roost::store::Store;

const LIST: &str = "news@lists.example.org";

fn start(sink: &Recorder, moderation: &str) -> (Node, tempfile::TempDir) {
    start_with(sink, moderation, "")
}

fn start_with(sink: &Recorder, moderation: &str, delivery: &str) -> (Node, tempfile::TempDir) {
    // `delivery`: more lines of [delivery], which Node::news opens last.
    let (mut node, dir) = Node::news(
        &sink.addr(),
        "",
        &format!(
            "[limits]\nplugin_timeout = \"2s\"\n\n\
             [[plugin]]\nuse = \"moderation\"\n{moderation}\n\n\
             [[plugin]]\nuse = \"subject-tag\"\ntag = \"[news]\"\n"
        ),
    );
    let config = std::fs::read_to_string(node.config()).unwrap();
    std::fs::write(node.config(), format!("{config}{delivery}\n")).unwrap();
    node.start();
    (node, dir)
}

/// Post with Python's email package: `attach` is (media type, file name, size) parts.
fn post(
    node: &Node,
    from: &str,
    subject: &str,
    body_len: usize,
    attach: &[(&str, &str, usize)],
) -> String {
    let program = r#"
import smtplib, sys, json
from email.message import EmailMessage
host, port = sys.argv[1].split(":")
m = EmailMessage()
m["From"] = sys.argv[2]
m["To"] = "news@lists.example.org"
m["Subject"] = sys.argv[3]
m.set_content("x" * int(sys.argv[4]) + "\n")
for media, name, size in json.loads(sys.argv[5]):
    maintype, subtype = media.split("/")
    m.add_attachment(b"A" * size, maintype=maintype, subtype=subtype, filename=name)
s = smtplib.SMTP(host, int(port), timeout=30)
code, resp = s.sendmail(sys.argv[2], ["news@lists.example.org"], m.as_bytes()), None
s.quit()
"#;
    let attach: Vec<serde_json::Value> = attach
        .iter()
        .map(|(m, n, s)| serde_json::json!([m, n, s]))
        .collect();
    python(
        program,
        &[
            &node.smtp,
            from,
            subject,
            &body_len.to_string(),
            &serde_json::to_string(&attach).unwrap(),
        ],
    );
    subject.to_string()
}

/// (state, reason) of the post with this subject, once processed.
async fn decided(store: &Store, subject: &str) -> (String, String) {
    for _ in 0..200 {
        let rows: Vec<(String, Option<String>, Vec<u8>)> =
            sqlx::query_as("SELECT state, reason, raw FROM messages WHERE kind = 'post'")
                .fetch_all(store.pool())
                .await
                .unwrap();
        for (state, reason, raw) in rows {
            let s = roost::message::header(&raw, "subject").unwrap_or_default();
            if s == subject && state != "stored" {
                return (state, reason.unwrap_or_default());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("post `{subject}` was not decided");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_patterns_sizes_and_types() {
    let sink = Recorder::start(&[]);
    let (mut node, _dir) = start(
        &sink,
        "members = \"accept\"\nnonmembers = \"hold\"\nmoderated = \"reject\"\n\
         allow = [\"vip@*\"]\ndeny = [\"*@spam.example\"]\ndeny_action = \"discard\"\n\
         hold_above_kb = 8\nreject_types = [\"application/x-msdownload\"]\n\
         strip_types = [\"application/pdf\"]\n",
    );
    let (code, _, err) = node.roost(&[
        "members",
        "add",
        "news",
        "m1@example.org",
        "mod@example.org",
    ]);
    assert_eq!(code, 0, "{err}");
    let store = Store::connect(&node.db_url).await.unwrap();
    // An owner sets the moderated flag over the REST API.
    let (code, body) = curl(&[
        "-X",
        "PATCH",
        "-H",
        &format!("Authorization: Bearer {API_TOKEN}"),
        "-H",
        "Content-Type: application/json",
        "--data",
        r#"{"moderated": true}"#,
        &format!(
            "http://{}/api/v1/lists/news/members/mod@example.org",
            node.http
        ),
    ]);
    assert_eq!(code, 200, "{body}");
    assert!(
        store
            .member(LIST, "mod@example.org")
            .await
            .unwrap()
            .is_some_and(|m| m.moderated)
    );

    post(&node, "m1@example.org", "member", 100, &[]);
    post(&node, "x@example.net", "stranger", 100, &[]);
    post(&node, "vip@example.net", "vip", 100, &[]);
    post(&node, "bot@spam.example", "spam", 100, &[]);
    post(&node, "mod@example.org", "moderated", 100, &[]);
    post(&node, "m1@example.org", "big", 10_000, &[]);
    post(
        &node,
        "m1@example.org",
        "exe",
        100,
        &[("application/x-msdownload", "a.exe", 500)],
    );
    post(
        &node,
        "m1@example.org",
        "pdf",
        100,
        &[("application/pdf", "a.pdf", 500), ("text/csv", "a.csv", 50)],
    );

    assert_eq!(decided(&store, "member").await.0, "accepted");
    let (state, reason) = decided(&store, "stranger").await;
    assert_eq!(state, "held");
    assert!(reason.contains("not a member"), "{reason}");
    assert_eq!(decided(&store, "vip").await.0, "accepted");
    assert_eq!(decided(&store, "spam").await.0, "discarded");
    let (state, reason) = decided(&store, "moderated").await;
    assert_eq!(state, "rejected");
    assert!(
        reason.contains("5.7.1") && reason.contains("moderated"),
        "{reason}"
    );
    let (state, reason) = decided(&store, "big").await;
    assert_eq!(state, "held");
    assert!(reason.contains("8 KB"), "{reason}");
    let (state, reason) = decided(&store, "exe").await;
    assert_eq!(state, "rejected");
    assert!(reason.contains("application/x-msdownload"), "{reason}");
    let (state, reason) = decided(&store, "pdf").await;
    assert_eq!(state, "accepted", "{reason}");

    // Accepted posts went on down the chain (tagged) and out, the pdf part removed.
    sink.wait_for(6, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let copies: Vec<String> = sink
        .received()
        .iter()
        .filter(|r| r.to[0] == "m1@example.org" || r.to[0] == "mod@example.org")
        .map(|r| r.text())
        .collect();
    let pdf: Vec<&String> = copies
        .iter()
        .filter(|t| t.contains("Subject: [news] pdf"))
        .collect();
    assert_eq!(pdf.len(), 2, "one pdf-post copy per member");
    for t in pdf {
        assert!(!t.contains("application/pdf"), "{t}");
        assert!(t.contains("text/csv"), "{t}");
    }
    assert!(copies.iter().any(|t| t.contains("Subject: [news] member")));
    assert!(!copies.iter().any(|t| t.contains("Subject: [news] spam")));
    // The rejected sender is told; the owners hear of the held posts.
    let notices: Vec<String> = sink
        .received()
        .iter()
        .filter(|r| r.to[0] == "boss@example.org")
        .map(|r| r.text())
        .collect();
    assert!(
        notices.iter().any(|t| t.contains("Held for moderation")),
        "{notices:?}"
    );
    eventually(
        "the moderated member is told of the rejection",
        Duration::from_secs(10),
        || async {
            sink.received()
                .iter()
                .any(|r| r.to[0] == "mod@example.org" && r.text().contains("was not accepted"))
        },
    )
    .await;
    assert!(node.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_discarded_nonmembers_and_denied_senders_rejected() {
    let sink = Recorder::start(&[]);
    let (mut node, _dir) = start(
        &sink,
        "members = \"discard\"\nnonmembers = \"reject\"\n\
         deny = [\"*@spam.example\"]\ndeny_action = \"reject\"\n",
    );
    let (code, _, err) = node.roost(&["members", "add", "news", "m1@example.org"]);
    assert_eq!(code, 0, "{err}");
    let store = Store::connect(&node.db_url).await.unwrap();
    post(&node, "m1@example.org", "member", 100, &[]);
    post(&node, "x@example.net", "stranger", 100, &[]);
    post(&node, "bot@spam.example", "spam", 100, &[]);
    assert_eq!(decided(&store, "member").await.0, "discarded");
    let (state, reason) = decided(&store, "stranger").await;
    assert_eq!(state, "rejected");
    assert!(reason.contains("not a member"), "{reason}");
    let (state, reason) = decided(&store, "spam").await;
    assert_eq!(state, "rejected");
    assert!(reason.contains("5.7.1"), "{reason}");
    // The refused senders are told; the discarded post leaves no trace outside.
    let got = sink.wait_for(2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = sink.received().len().max(got.len());
    let to: Vec<Vec<String>> = sink.received().iter().map(|r| r.to.clone()).collect();
    assert!(to.contains(&vec!["x@example.net".to_string()]), "{to:?}");
    assert!(to.contains(&vec!["bot@spam.example".to_string()]), "{to:?}");
    assert_eq!(got, 2, "nothing for the member's discarded post: {to:?}");
    assert!(node.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_posts_expire_with_a_notice_to_the_author() {
    let sink = Recorder::start(&[]);
    let (mut node, _dir) = start(&sink, "nonmembers = \"hold\"\nhold_days = 0\n");
    let store = Store::connect(&node.db_url).await.unwrap();
    post(&node, "x@example.net", "waiting", 100, &[]);
    assert_eq!(decided(&store, "waiting").await.0, "held");
    // The expiry runs every minute (once in the cluster).
    let mut state = String::new();
    for _ in 0..150 {
        state = decided(&store, "waiting").await.0;
        if state == "rejected" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(state, "rejected");
    let (_, reason) = decided(&store, "waiting").await;
    assert!(reason.contains("not approved within 0 days"), "{reason}");
    let got = sink.wait_for(2, Duration::from_secs(30)).await;
    let told = got
        .iter()
        .find(|r| r.to == ["x@example.net"])
        .expect("author told");
    assert!(told.text().contains("not approved within 0 days"));
    let runs: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM schedule_runs WHERE plugin = 'moderation' AND state = 'done'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(runs >= 2, "one run per minute: {runs}");
    assert!(node.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_failing_a_strict_dmarc_policy_follow_auth_failures() {
    let dns = common::dns::Dns::start(&[
        "--txt-record=_dmarc.strict.example,v=DMARC1; p=reject".into(),
        "--txt-record=_dmarc.lax.example,v=DMARC1; p=none".into(),
    ]);
    let sink = Recorder::start(&[]);
    let (mut node, _dir) = start_with(
        &sink,
        "members = \"accept\"\nnonmembers = \"accept\"\nauth_failures = \"hold\"\n",
        &format!("nameservers = [\"127.0.0.1:{}\"]", dns.port),
    );
    let store = Store::connect(&node.db_url).await.unwrap();
    // Unsigned, from an address its domain does not authorise: DMARC fails for both.
    post(&node, "alice@strict.example", "strict", 100, &[]);
    post(&node, "bob@lax.example", "lax", 100, &[]);
    post(&node, "carl@nopolicy.example", "none", 100, &[]);
    let (state, reason) = decided(&store, "strict").await;
    assert_eq!(state, "held");
    assert!(reason.contains("fails DMARC"), "{reason}");
    assert_eq!(
        decided(&store, "lax").await.0,
        "accepted",
        "p=none asks for nothing"
    );
    assert_eq!(decided(&store, "none").await.0, "accepted");
    assert!(node.stop().success());
}

/// Sender checks fail closed: with DNS that never answers, a list that holds auth failures
/// holds every post it could not check (each checked on its own, none let through for a
/// while after the first timed out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_that_could_not_be_checked_are_held_not_passed() {
    // A DNS server that takes queries and never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let sink = Recorder::start(&[]);
    let (mut node, _dir) = start_with(
        &sink,
        "members = \"accept\"\nnonmembers = \"accept\"\nauth_failures = \"reject\"\n",
        &format!("nameservers = [\"127.0.0.1:{port}\"]"),
    );
    let store = Store::connect(&node.db_url).await.unwrap();
    post(&node, "alice@strict.example", "first", 100, &[]);
    post(&node, "bob@lax.example", "second", 100, &[]);
    for subject in ["first", "second"] {
        let (state, reason) = decided(&store, subject).await;
        assert_eq!(state, "held", "{subject}: {reason}");
        assert!(reason.contains("could not be done"), "{reason}");
    }
    assert!(node.stop().success());
    drop(silent);
}

/// With `verify_members`, writing a member's address in From: is not enough: the post is
/// the member's only with an aligned SPF (or DKIM) pass; otherwise it is a non-member's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_must_prove_their_posts_with_verify_members() {
    let dns = common::dns::Dns::start(&[
        "--txt-record=good.example,v=spf1 ip4:127.0.0.1 -all".into(),
        "--txt-record=bad.example,v=spf1 -all".into(),
    ]);
    let sink = Recorder::start(&[]);
    let (mut node, _dir) = start_with(
        &sink,
        "members = \"accept\"\nnonmembers = \"hold\"\nverify_members = true\n",
        &format!("nameservers = [\"127.0.0.1:{}\"]", dns.port),
    );
    let (code, _, err) = node.roost(&[
        "members",
        "add",
        "news",
        "m@good.example",
        "m@bad.example",
        "m@nospf.example",
    ]);
    assert_eq!(code, 0, "{err}");
    let store = Store::connect(&node.db_url).await.unwrap();
    post(&node, "m@good.example", "vouched", 100, &[]);
    post(&node, "m@bad.example", "refused-by-spf", 100, &[]);
    post(&node, "m@nospf.example", "no-record", 100, &[]);
    assert_eq!(decided(&store, "vouched").await.0, "accepted");
    for subject in ["refused-by-spf", "no-record"] {
        let (state, reason) = decided(&store, subject).await;
        assert_eq!(state, "held", "{subject}: {reason}");
        assert!(reason.contains("neither DKIM nor SPF passes"), "{reason}");
    }
    assert!(node.stop().success());
}

//! SMTP intake end to end: a real `roost serve` process, real clients (Python's smtplib,
//! swaks, Postfix's smtp-source), storage on SQLite and PostgreSQL, and the plugin pipeline
//! after the 250. Raw sockets only where no real client would misbehave on purpose.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    time::Duration,
};

use common::node::{Node, NodeSpec, eventually, peer, python, send};
use roost::store::Store;

const LIST: &str = "announce@lists.example.org";

fn list_file(address: &str, extra: &str) -> String {
    format!(
        "address = \"{address}\"\nowners = [\"owner@example.org\"]\n{extra}\n\n\
         [[plugin]]\nuse = \"subject-tag\"\ntag = \"[announce]\"\n"
    )
}

fn hostile_list(address: &str, policy: &str) -> String {
    format!(
        "address = \"{address}\"\non_plugin_error = \"{policy}\"\n\n[[plugin]]\nuse = \"{}\"\n",
        common::component("hostile").display()
    )
}

/// A SQLite file in the node's own directory (resolved against its config file).
const NODE_SQLITE: &str = "sqlite://roost.db";

async fn node(db_url: &str, smtp_extra: &str, lists: Vec<(&str, String)>) -> (Node, Store) {
    let mut node = Node::new(NodeSpec {
        db_url,
        smtp_extra,
        lists,
    });
    node.start();
    let url = match db_url {
        NODE_SQLITE => format!("sqlite://{}", node.dir.path().join("roost.db").display()),
        other => other.to_string(),
    };
    let store = Store::connect(&url)
        .await
        .expect("open the node's database");
    (node, store)
}

/// A node on its own SQLite file with the one list `announce`, and `smtp_extra` in [smtp].
async fn announce(smtp_extra: &str) -> (Node, Store) {
    node(
        NODE_SQLITE,
        smtp_extra,
        vec![("announce.toml", list_file(LIST, ""))],
    )
    .await
}

async fn state(store: &Store, id: &str) -> String {
    store.message(id).await.map(|m| m.state).unwrap_or_default()
}

with_database_urls!(
    a_post_is_stored_then_processed_by_the_chain,
    |url: String| async move {
        let (node, store) = node(&url, "", vec![("announce.toml", list_file(LIST, ""))]).await;
        let id = send(
            &node.smtp,
            "ann@example.org",
            LIST,
            "Hello list",
            "First post.",
        );
        // Stored before the 250: the row is there as soon as the client has its answer.
        let m = store.message(&id).await.expect("stored before 250");
        let raw = String::from_utf8_lossy(&m.raw).into_owned();
        assert!(raw.starts_with("Received: from client.example.org ([127.0.0.1])\r\n\tby lists.example.org (Roost test-node) with ESMTP id "), "{raw}");
        assert!(
            raw.contains(&format!("Message-ID: <{id}@lists.example.org>")),
            "{raw}"
        );
        assert_eq!(
            (m.kind.as_str(), m.mail_from.as_str()),
            ("post", "ann@example.org")
        );
        eventually("the post is processed", Duration::from_secs(10), || async {
            state(&store, &id).await == "accepted"
        })
        .await;
        let edits: Option<String> = sqlx::query_scalar("SELECT edits FROM messages WHERE id = $1")
            .bind(&id)
            .fetch_one(store.pool())
            .await
            .unwrap();
        let (prepared, _) =
            roost::pipeline::edits::prepare(&m.raw, edits.as_deref()).expect("stored edits decode");
        assert_eq!(
            roost::message::header(&prepared, "subject").as_deref(),
            Some("[announce] Hello list")
        );
        assert!(!store.awaits_processing(&id).await.unwrap());
        // Accepted means queued for delivery: the deliver job is taken and expanded (this
        // list has no members, so into nothing).
        eventually(
            "the post is expanded for delivery",
            Duration::from_secs(10),
            || async { store.jobs_for(&id, "deliver").await.unwrap() == 0 },
        )
        .await;
        assert!(store.recipient_states(&id).await.unwrap().is_empty());
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smtp_dialogue_follows_rfc_5321() {
    let extra = "max_recipients = 3\nmax_message_size = \"2000\"\nmax_errors = 50\n";
    let (node, _store) = announce(extra).await;
    let program = r#"
import smtplib, sys, json
host, port = sys.argv[1].split(":")
s = smtplib.SMTP(host, int(port), timeout=30)
out = []
def cmd(label, line):
    code, msg = s.docmd(line)
    out.append([label, code, msg.decode()])
cmd("mail-before-ehlo", "MAIL FROM:<ann@example.org>")
code, msg = s.ehlo("client.example.org")
out.append(["ehlo", code, msg.decode()])
cmd("rcpt-before-mail", "RCPT TO:<announce@lists.example.org>")
cmd("data-before-mail", "DATA")
cmd("size-too-big", "MAIL FROM:<ann@example.org> SIZE=9999999")
cmd("mail", "MAIL FROM:<ann@example.org>")
cmd("nested-mail", "MAIL FROM:<ann@example.org>")
cmd("relay", "RCPT TO:<victim@elsewhere.example.com>")
cmd("unknown-list", "RCPT TO:<nobody@lists.example.org>")
cmd("rcpt-list", "RCPT TO:<announce@lists.example.org>")
cmd("rcpt-request", "RCPT TO:<announce-request@lists.example.org>")
cmd("rcpt-owner", "RCPT TO:<ANNOUNCE-owner@Lists.Example.org>")
cmd("rcpt-again", "RCPT TO:<ANNOUNCE@Lists.Example.org>")
cmd("rcpt-third", "RCPT TO:<announce@lists.example.org>")
cmd("rcpt-too-many", "RCPT TO:<announce@lists.example.org>")
cmd("rset", "RSET")
cmd("vrfy", "VRFY announce")
cmd("expn", "EXPN announce")
cmd("help", "HELP")
cmd("noop", "NOOP")
cmd("garbage", "FROBNICATE now")
cmd("bad-address", "MAIL FROM:<not an address")
cmd("mail-2", "MAIL FROM:<>")
cmd("rcpt-2", "RCPT TO:<announce@lists.example.org>")
cmd("starttls-without-cert", "STARTTLS")
code, msg = s.data(b"Subject: big\r\n\r\n" + b"x" * 5000 + b"\r\n")
out.append(["data-too-big", code, msg.decode()])
# The node stops reading after a size refusal: the session is over.
try:
    code, msg = s.docmd("QUIT")
    out.append(["after-too-big", code, msg.decode()])
except smtplib.SMTPServerDisconnected:
    out.append(["after-too-big", 0, "closed"])
print(json.dumps(out))
"#;
    let out: Vec<(String, u16, String)> =
        serde_json::from_str(&python(program, &[&node.smtp])).unwrap();
    let get = |label: &str| {
        out.iter()
            .find(|(l, _, _)| l == label)
            .cloned()
            .unwrap_or_else(|| panic!("{label}"))
    };
    let expect = [
        ("mail-before-ehlo", 503, "5.5.1"),
        ("rcpt-before-mail", 503, "5.5.1"),
        ("data-before-mail", 503, "5.5.1"),
        ("size-too-big", 552, "5.3.4"),
        ("mail", 250, "2.1.0"),
        ("nested-mail", 503, "5.5.1"),
        ("relay", 550, "5.1.1"),
        ("unknown-list", 550, "5.1.1"),
        ("rcpt-list", 250, "2.1.5"),
        // One copy of a message per list: another address of the list waits for another
        // transaction (452, as for too many recipients).
        ("rcpt-request", 452, "4.5.3"),
        ("rcpt-owner", 452, "4.5.3"),
        ("rcpt-again", 250, "2.1.5"),
        ("rcpt-third", 250, "2.1.5"),
        ("rcpt-too-many", 452, "4.5.3"),
        ("rset", 250, "2.0.0"),
        ("vrfy", 502, "5.5.1"),
        ("expn", 502, "5.5.1"),
        ("help", 214, "2.0.0"),
        ("noop", 250, "2.0.0"),
        ("garbage", 500, "5.5.1"),
        ("bad-address", 501, ""),
        ("mail-2", 250, "2.1.0"),
        ("rcpt-2", 250, "2.1.5"),
        ("starttls-without-cert", 454, "4.7.0"),
        ("data-too-big", 552, "5.3.4"),
        ("after-too-big", 0, "closed"),
    ];
    for (label, code, enhanced) in expect {
        let (_, got, text) = get(label);
        assert_eq!(got, code, "{label}: {text}");
        assert!(text.starts_with(enhanced), "{label}: {text}");
    }
    let (_, _, ehlo) = get("ehlo");
    for feature in [
        "PIPELINING",
        "SIZE 2000",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
    ] {
        assert!(
            ehlo.lines().any(|l| l == feature),
            "EHLO lacks {feature}: {ehlo}"
        );
    }
    assert!(
        !ehlo.contains("STARTTLS"),
        "no certificate, no STARTTLS: {ehlo}"
    );
}

/// Read what the server says until it closes or `timeout` passes.
fn read_all(s: &mut TcpStream, timeout: Duration) -> String {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn connect(smtp: &str) -> TcpStream {
    let mut s = TcpStream::connect(smtp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut greeting = [0u8; 256];
    let n = s.read(&mut greeting).unwrap();
    assert!(
        greeting[..n].starts_with(b"220 "),
        "{}",
        String::from_utf8_lossy(&greeting[..n])
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_limits_have_their_replies() {
    let extra = "max_errors = 3\nmax_sessions = 2\nidle_timeout = \"1s\"\n\
                 max_session_time = \"3s\"\n";
    let (node, _store) = announce(extra).await;

    // Too many errors: the third gets its 500, then 421 and the connection closes.
    let mut s = connect(&node.smtp);
    s.write_all(b"BAD1\r\nBAD2\r\nBAD3\r\nNOOP\r\n").unwrap();
    let said = read_all(&mut s, Duration::from_secs(5));
    assert_eq!(said.matches("500 5.5.1").count(), 3, "{said}");
    assert!(
        said.ends_with("421 4.7.0 Too many errors; closing\r\n"),
        "{said}"
    );
    drop(s);

    // An overlong command line is refused and the session goes on.
    let mut s = connect(&node.smtp);
    let mut long = vec![b'A'; 10_000];
    long.extend_from_slice(b"\r\nNOOP\r\nQUIT\r\n");
    s.write_all(&long).unwrap();
    let said = read_all(&mut s, Duration::from_secs(5));
    assert!(
        said.starts_with("500 5.5.2 Line too long\r\n250 2.0.0"),
        "{said}"
    );
    drop(s);

    // Idle for longer than idle_timeout: 421 4.4.2 and closed.
    let mut idle = connect(&node.smtp);
    let said = read_all(&mut idle, Duration::from_secs(5));
    assert_eq!(said, "421 4.4.2 Idle for too long; closing\r\n");

    // A session may not last for ever, however busy it keeps (max_session_time).
    let mut busy = connect(&node.smtp);
    let started = std::time::Instant::now();
    let mut said = String::new();
    for _ in 0..40 {
        if busy.write_all(b"NOOP\r\n").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut buf = [0u8; 512];
        busy.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        if let Ok(n) = busy.read(&mut buf) {
            said.push_str(&String::from_utf8_lossy(&buf[..n]));
            if n == 0 || said.contains("421") {
                break;
            }
        }
    }
    assert!(
        said.ends_with("421 4.4.2 Session lasted too long; closing\r\n"),
        "{said}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    drop(busy);

    // Session limit: the third concurrent session is turned away with 421.
    let a = connect(&node.smtp);
    let b = connect(&node.smtp);
    let mut c = TcpStream::connect(&node.smtp).unwrap();
    let said = read_all(&mut c, Duration::from_secs(5));
    assert!(said.starts_with("421 4.3.2"), "{said}");
    drop((a, b));
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(connect(&node.smtp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_vanishing_peers_and_failed_tls_harm_no_other_session() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = test_certificate(dir.path());
    let extra = format!("tls = {{ cert = \"{cert}\", key = \"{key}\" }}\n");
    let (node, store) = announce(&extra).await;

    // A good client opens its session first and keeps it open through the abuse.
    let mut good = connect(&node.smtp);
    good.write_all(b"EHLO good.example.org\r\n").unwrap();

    // Binary garbage with NULs and no line ends.
    let mut junk = TcpStream::connect(&node.smtp).unwrap();
    let garbage: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = junk.write_all(&garbage);
    drop(junk);

    // A peer that vanishes in the middle of DATA.
    let mut quitter = connect(&node.smtp);
    quitter
        .write_all(b"EHLO q.example.org\r\nMAIL FROM:<q@example.org>\r\nRCPT TO:<announce@lists.example.org>\r\nDATA\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    quitter
        .write_all(b"Subject: half\r\n\r\nhalf a message")
        .unwrap();
    drop(quitter);

    // A TLS handshake that fails.
    let mut tls = connect(&node.smtp);
    tls.write_all(b"EHLO t.example.org\r\nSTARTTLS\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let _ = tls.write_all(b"this is not a TLS ClientHello\r\n\r\n");
    let _ = read_all(&mut tls, Duration::from_secs(2));
    drop(tls);

    // The good session finishes its post.
    good.write_all(
        b"MAIL FROM:<good@example.org>\r\nRCPT TO:<announce@lists.example.org>\r\nDATA\r\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    good.write_all(b"Subject: survived\r\n\r\nstill here\r\n.\r\nQUIT\r\n")
        .unwrap();
    let said = read_all(&mut good, Duration::from_secs(5));
    assert!(said.contains("250 2.0.0 OK: queued as "), "{said}");
    assert!(said.ends_with("221 2.0.0 Bye\r\n"), "{said}");

    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, 1, "only the good post is stored; the half one is not");
}

fn test_certificate(dir: &std::path::Path) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["lists.example.org".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c.display().to_string(), k.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_posts_over_starttls_with_pipelining() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = test_certificate(dir.path());
    let extra = format!("tls = {{ cert = \"{cert}\", key = \"{key}\" }}\n");
    let (node, store) = announce(&extra).await;
    let o = Command::new(peer("SWAKS"))
        .args([
            "--server",
            &node.smtp,
            "--tls",
            "--pipeline",
            "--helo",
            "swaks.example.org",
        ])
        .args([
            "--from",
            "ann@example.org",
            "--to",
            LIST,
            "--header",
            "Subject: over TLS",
        ])
        .args(["--body", "sent by swaks"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("STARTTLS") && out.contains("PIPELINING"),
        "{out}"
    );
    let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM messages")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(
        raw.contains("with ESMTPS id"),
        "TLS noted in Received: {raw}"
    );
    assert!(raw.contains("Subject: over TLS"), "{raw}");
}

with_database_urls!(
    smtp_source_load_is_stored_in_full,
    |url: String| async move {
        let (node, store) = node(&url, "", vec![("announce.toml", list_file(LIST, ""))]).await;
        let o = Command::new(peer("SMTP_SOURCE"))
            .env("LD_LIBRARY_PATH", peer("POSTFIX_LIB"))
            .args([
                "-s",
                "10",
                "-m",
                "300",
                "-l",
                "2048",
                "-f",
                "ann@example.org",
                "-t",
                LIST,
                &node.smtp,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(n, 300);
        eventually("all 300 are processed", Duration::from_secs(60), || async {
            let left: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE state = 'stored'")
                    .fetch_one(store.pool())
                    .await
                    .unwrap();
            left == 0
        })
        .await;
    }
);

with_database_urls!(
    sigkill_loses_no_acknowledged_message,
    |url: String| async move {
        let (mut node, store) = node(&url, "", vec![("announce.toml", list_file(LIST, ""))]).await;
        // The client streams posts and prints each id the moment its 250 arrives.
        let program = r#"
import smtplib, sys
host, port = sys.argv[1].split(":")
i = 0
try:
    s = smtplib.SMTP(host, int(port), timeout=10)
    s.ehlo("streamer.example.org")
    while True:
        i += 1
        s.mail("ann@example.org")
        s.rcpt("announce@lists.example.org")
        code, resp = s.data(("Subject: post %d\r\n\r\n%s\r\n" % (i, "x" * 2000)).encode())
        if code != 250:
            break
        print(resp.decode().split()[-1], flush=True)
except Exception:
    pass
"#;
        let client = Command::new("python3")
            .args(["-c", program, &node.smtp])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        node.kill();
        let out = client.wait_with_output().unwrap();
        let acked: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert!(
            acked.len() >= 10,
            "the client got too few answers before the kill: {}",
            acked.len()
        );

        node.start();
        for id in &acked {
            assert!(
                store.message(id).await.is_ok(),
                "acknowledged message {id} is lost"
            );
        }
        eventually(
            "every acknowledged post is processed after the restart",
            Duration::from_secs(30),
            || async {
                let mut all = true;
                for id in &acked {
                    all &= state(&store, id).await == "accepted";
                }
                all
            },
        )
        .await;
    }
);

with_database_urls!(verdicts_and_failure_policies, |url: String| async move {
    let lists = vec![
        ("hold.toml", hostile_list("hold@lists.example.org", "hold")),
        (
            "accept.toml",
            hostile_list("accept@lists.example.org", "accept"),
        ),
        (
            "reject.toml",
            hostile_list("reject@lists.example.org", "reject"),
        ),
    ];
    let (node, store) = node(&url, "", lists).await;
    let post =
        |list: &str, subject: &str| send(&node.smtp, "ann@example.org", list, subject, "body");
    let cases = [
        (post("hold@lists.example.org", "reject"), "rejected"),
        (post("hold@lists.example.org", "hold"), "held"),
        (post("hold@lists.example.org", "discard"), "discarded"),
        (post("hold@lists.example.org", "hello"), "accepted"),
        (post("hold@lists.example.org", "error"), "held"),
        (post("hold@lists.example.org", "loop"), "held"),
        (post("accept@lists.example.org", "panic"), "accepted"),
        (post("reject@lists.example.org", "trap"), "rejected"),
    ];
    for (id, want) in &cases {
        eventually(
            &format!("{id} becomes {want}"),
            Duration::from_secs(15),
            || async { state(&store, id).await == *want },
        )
        .await;
    }
    let reason = |i: usize| {
        let store = store.clone();
        let id = cases[i].0.clone();
        async move { store.message(&id).await.unwrap().reason.unwrap_or_default() }
    };
    assert_eq!(
        reason(0).await,
        "550 5.7.1 posts about that are not welcome"
    );
    assert!(reason(4).await.contains("plugin `hostile` (list hold@lists.example.org) on-post: returned an error: refusing on purpose"));
    assert!(reason(5).await.contains("timed out after 100ms"));
    assert!(reason(7).await.contains("trapped"));
    // Rejections tell the sender.
    let notices: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM notices WHERE to_address = 'ann@example.org'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(notices, 2);

    // The hold queue, by name or address.
    let (code, out, err) = node.roost(&["held", "list", "hold"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines.iter().all(|l| l.split('\t').count() == 5), "{out}");
    assert!(
        out.contains("\tann@example.org\thold\theld on purpose"),
        "{out}"
    );

    let held_id = &cases[1].0;
    let (code, out, err) = node.roost(&["held", "approve", "hold@lists.example.org", held_id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("approved"), "{out}");
    assert_eq!(state(&store, held_id).await, "approved");
    assert_eq!(store.jobs_for(held_id, "deliver").await.unwrap(), 1);
    let (code, _, err) = node.roost(&["held", "approve", "hold", held_id]);
    assert_eq!(code, 1, "a second approval must fail: {err}");
    assert!(err.contains("is not held"), "{err}");
    assert_eq!(
        store.jobs_for(held_id, "deliver").await.unwrap(),
        1,
        "sent once"
    );

    let (code, _, err) = node.roost(&[
        "held",
        "reject",
        "hold",
        &cases[4].0,
        "--reason",
        "off topic",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(state(&store, &cases[4].0).await, "rejected");
    let (code, _, err) = node.roost(&["held", "list", "nosuchlist"]);
    assert_eq!(code, 2, "{err}");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_approvals_send_a_held_post_once() {
    let url = common::postgres_empty().await;
    let (mut node, store) = node(
        &url,
        "",
        vec![("hold.toml", hostile_list("hold@lists.example.org", "hold"))],
    )
    .await;
    let id = send(
        &node.smtp,
        "ann@example.org",
        "hold@lists.example.org",
        "hold",
        "x",
    );
    eventually("held", Duration::from_secs(10), || async {
        state(&store, &id).await == "held"
    })
    .await;
    // Approvals are conditional updates in the database; with the node stopped, its delivery
    // cannot take the `deliver` job before it is counted.
    assert!(node.stop().success());
    let config = node.config();
    let approvers: Vec<_> = (0..10)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_roost"))
                .args(["held", "approve", "hold", &id, "--config"])
                .arg(&config)
                .env("ROOST_LOG", "error")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let wins = approvers
        .into_iter()
        .map(|mut c| c.wait().unwrap().success())
        .filter(|ok| *ok)
        .count();
    assert_eq!(wins, 1, "exactly one approval wins");
    assert_eq!(
        store.jobs_for(&id, "deliver").await.unwrap(),
        1,
        "one delivery job"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_leased_work_at_once() {
    let url = common::postgres_empty().await;
    // Each post makes the plugin spin to its 500 ms deadline, so posts queue up in memory
    // (60 posts take 15 s with two processors; sending them takes a second or two).
    let list = hostile_list("hold@lists.example.org", "hold").replace(
        "\n\n[[plugin]]",
        "\n\n[limits]\nplugin_timeout = \"500ms\"\n\n[[plugin]]",
    );
    let (mut node, store) = node(&url, "", vec![("hold.toml", list)]).await;
    let program = r#"
import smtplib, sys
host, port = sys.argv[1].split(":")
s = smtplib.SMTP(host, int(port), timeout=30)
s.ehlo("client.example.org")
for i in range(60):
    s.sendmail("ann@example.org", ["hold@lists.example.org"], b"Subject: loop\r\n\r\nspin\r\n")
s.quit()
"#;
    python(program, &[&node.smtp]);
    assert!(node.stop().success());

    let leased: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM jobs WHERE lease_owner IS NOT NULL) \
         + (SELECT COUNT(*) FROM messages WHERE lease_owner IS NOT NULL)",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(leased, 0, "a stopped node holds no leases");
    let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE state = 'stored'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(waiting > 0, "the stop came before all posts were processed");

    // Whoever runs next finishes them.
    node.start();
    eventually("every post is decided", Duration::from_secs(60), || async {
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE state = 'stored'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        left == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_smuggling_past_a_bare_lf_dot_and_no_control_characters() {
    let (node, store) = announce("").await;
    let mut s = connect(&node.smtp);
    s.write_all(b"EHLO a\0b.example.org\r\n").unwrap();
    s.write_all(b"EHLO client.example.org\r\nMAIL FROM:<ann@example.org>\r\nRCPT TO:<announce@lists.example.org>\r\nDATA\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // "\n.\r\n" and ".\n" must not end the data: what follows is body, not new commands.
    s.write_all(
        b"Subject: smuggle\r\n\r\nfirst\n.\r\nMAIL FROM:<ceo@bank.example>\r\n.\nRCPT TO:<announce@lists.example.org>\r\n.\r\nQUIT\r\n",
    )
    .unwrap();
    let said = read_all(&mut s, Duration::from_secs(5));
    assert!(said.starts_with("501 5.5.2 Control characters"), "{said}");
    assert_eq!(said.matches("queued as").count(), 1, "{said}");
    assert_eq!(
        said.matches("Sender OK").count(),
        1,
        "the smuggled MAIL was not run: {said}"
    );
    let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM messages")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.ends_with("first\r\n\r\nMAIL FROM:<ceo@bank.example>\r\n\r\nRCPT TO:<announce@lists.example.org>\r\n"), "{raw:?}");
}

/// Tokens are checked at RCPT: a made-up or altered `-bounces+` or `-confirm+` token gets
/// 550 5.1.1 before any DATA is read, and a transaction stores one copy per list however
/// many of the list's addresses it names (the second gets 452: send it again later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_at_rcpt_and_one_copy_is_stored_per_list() {
    // Each refusal counts against the session's error budget (10 by default): raised here
    // so one session can show them all.
    let (node, store) = node(
        NODE_SQLITE,
        "max_errors = 1000\n",
        vec![
            ("announce.toml", list_file(LIST, "")),
            ("other.toml", list_file("other@lists.example.org", "")),
        ],
    )
    .await;
    let keys = roost::tokens::TokenKey::new(&store.token_key().await.unwrap());
    let verp = |n: u64| keys.sign(roost::tokens::Purpose::Verp, &[n, n]);
    let program = r#"
import smtplib, sys
host, port = sys.argv[1].split(":")
s = smtplib.SMTP(host, int(port), timeout=30)
s.ehlo("client.example.org")
s.mail("")
codes = []
for a in sys.argv[2:]:
    codes.append(s.rcpt(a)[0])
print(" ".join(map(str, codes)))
if 250 in codes:
    print(s.data(b"From: mailer-daemon@example.org\r\nSubject: bounce\r\n\r\nx\r\n")[0])
s.quit()
"#;
    // 100 made-up tokens, a confirmation token used as a VERP token, an altered one.
    let mut made_up: Vec<String> = (0..100)
        .map(|i| format!("announce-bounces+{:0>20}@lists.example.org", i))
        .collect();
    made_up.push(format!(
        "announce-bounces+{}@lists.example.org",
        keys.sign(roost::tokens::Purpose::Confirm, &[1])
    ));
    made_up.push(format!("announce-confirm+{}@lists.example.org", verp(1)));
    let args: Vec<&str> = std::iter::once(node.smtp.as_str())
        .chain(made_up.iter().map(String::as_str))
        .collect();
    let out = python(program, &args);
    assert_eq!(out.trim(), ["550"; 102].join(" "), "{out}");
    // Real tokens: the first is taken, the other addresses of the same list wait.
    let real = [
        format!("announce-bounces+{}@lists.example.org", verp(1)),
        format!("announce-bounces+{}@lists.example.org", verp(2)),
        "announce-request@lists.example.org".to_string(),
        format!("announce-bounces+{}@lists.example.org", verp(1)).to_uppercase(),
    ];
    let args: Vec<&str> = std::iter::once(node.smtp.as_str())
        .chain(real.iter().map(String::as_str))
        .collect();
    let out = python(program, &args);
    assert_eq!(out.trim(), "250 452 452 250\n250", "{out}");
    // Another list in the same transaction waits too: one message, one list, one answer.
    let args = [
        node.smtp.as_str(),
        "announce-request@lists.example.org",
        "other@lists.example.org",
    ];
    let out = python(program, &args);
    assert_eq!(out.trim(), "250 452\n250", "{out}");
    // One stored copy per transaction.
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT list, kind FROM messages ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(
        stored,
        [
            (LIST.to_string(), "bounce".to_string()),
            (LIST.to_string(), "request".to_string())
        ]
    );
    drop(node);
}

/// What one client address may hold: sessions at once (421 4.7.0 beyond), and message data
/// in memory across all sessions (452 4.3.1 for a message that would pass it, while
/// smaller ones go on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_per_address_and_data_in_memory_are_bounded() {
    let extra = "max_sessions_per_ip = 2\nmax_message_size = \"100KiB\"\n\
                 max_data_memory = \"128KiB\"\n";
    let (node, store) = announce(extra).await;
    let a = connect(&node.smtp);
    let b = connect(&node.smtp);
    let mut c = TcpStream::connect(&node.smtp).unwrap();
    let said = read_all(&mut c, Duration::from_secs(5));
    assert_eq!(
        said,
        "421 4.7.0 Too many connections from your address; try again later\r\n"
    );
    drop(b);
    // Two sessions each in the middle of a 90 KiB message hold more than 128 KiB: the
    // second is refused at its end with 452, the first is stored.
    let mut first = a;
    let mut second = {
        std::thread::sleep(Duration::from_millis(200));
        connect(&node.smtp)
    };
    let start = |s: &mut TcpStream| {
        s.write_all(
            b"EHLO c.example\r\nMAIL FROM:<ann@example.org>\r\n\
              RCPT TO:<announce@lists.example.org>\r\nDATA\r\n",
        )
        .unwrap();
        s.write_all(b"Subject: big\r\n\r\n").unwrap();
        s.write_all(&b"0123456789abcdef\r\n".repeat(5000)).unwrap();
    };
    start(&mut first);
    std::thread::sleep(Duration::from_millis(300));
    start(&mut second);
    for s in [&mut second, &mut first] {
        s.write_all(b".\r\nQUIT\r\n").unwrap();
    }
    let first = read_all(&mut first, Duration::from_secs(5));
    let second = read_all(&mut second, Duration::from_secs(5));
    assert!(first.contains("250 2.0.0 OK: queued as"), "{first}");
    assert!(
        second.contains("452 4.3.1 Too much mail arriving at once; try again later"),
        "{second}"
    );
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(stored, 1);
    drop(node);
}

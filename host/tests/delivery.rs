//! Delivery end to end: a real `roost serve` posts to a real receiving MTA on loopback
//! (aiosmtpd recording what it acknowledges), with real DNS (dnsmasq) for MX and DMARC,
//! DKIM checked by an independent verifier (dkimpy), on SQLite and PostgreSQL.

mod common;

use std::{
    collections::{HashMap, HashSet},
    process::Command,
    time::Duration,
};

use common::{
    node::{Node, NodeSpec, eventually, peer, send},
    recorder::{Received, Recorder},
};
use roost::store::{DeliveryStatus, Store};

const LIST: &str = "news@lists.example.org";

fn list_file(extra: &str) -> String {
    format!("address = \"{LIST}\"\nname = \"News\"\nowners = [\"boss@example.org\"]\n{extra}\n")
}

/// A node whose copies go to `smarthost`, with retries after one second.
fn node(db_url: &str, delivery: &str, lists: Vec<(&str, String)>) -> Node {
    let extra = format!("\n[delivery]\nretry_base = \"1s\"\nretry_max = \"2s\"\n{delivery}\n");
    let mut node = Node::new(NodeSpec {
        db_url,
        smtp_extra: &extra,
        lists,
    });
    node.start();
    node
}

/// Import `address,name` rows.
fn import(node: &Node, rows: &[(String, String)]) {
    let csv = node.dir.path().join("members.csv");
    let text: String = rows.iter().map(|(a, n)| format!("{a},{n}\n")).collect();
    std::fs::write(&csv, text).unwrap();
    let (code, _, err) = node.roost(&["members", "import", "news", csv.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

fn members(n: usize, domains: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("member{i}@d{}.example", i % domains),
                format!("Member {i}"),
            )
        })
        .collect()
}

fn verp_token(from: &str) -> Option<&str> {
    from.strip_prefix("news-bounces+")?
        .strip_suffix("@lists.example.org")
}

with_database_urls!(
    every_enabled_member_gets_one_personalised_copy,
    |url: String| async move {
        let sink = Recorder::start(&["--pipelining"]);
        let stamp = format!(
            "\n[[plugin]]\nuse = \"{}\"\n",
            common::component("stamp").display()
        );
        let mut node = node(
            &url,
            &format!("smarthost = \"{}\"", sink.addr()),
            vec![("news.toml", list_file(&stamp))],
        );
        let rows = members(30, 3);
        import(&node, &rows);
        let (code, _, err) = node.roost(&[
            "members",
            "add",
            "news",
            "gone@d9.example",
            "bounced@d9.example",
        ]);
        assert_eq!(code, 0, "{err}");
        let store = Store::connect(&node.db_url).await.unwrap();
        for (address, status) in [
            ("gone@d9.example", DeliveryStatus::DisabledMember),
            ("bounced@d9.example", DeliveryStatus::DisabledBounces),
        ] {
            sqlx::query("UPDATE members SET status = $1 WHERE address = $2")
                .bind(status.as_str())
                .bind(address)
                .execute(store.pool())
                .await
                .unwrap();
        }

        let id = send(
            &node.smtp,
            "ann@example.org",
            LIST,
            "Hello",
            "Dear {{roost:name}} <{{roost:address}}>, see you.",
        );
        let got = sink.wait_for(30, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = if sink.received().len() > got.len() {
            sink.received()
        } else {
            got
        };
        assert_eq!(
            got.len(),
            30,
            "one copy per enabled member, none to the disabled ones"
        );

        let expected: HashMap<String, String> = rows.into_iter().collect();
        let mut tokens = HashSet::new();
        for copy in &got {
            assert_eq!(copy.to.len(), 1, "one recipient per copy (VERP)");
            let rcpt = &copy.to[0];
            let name = expected
                .get(rcpt)
                .unwrap_or_else(|| panic!("{rcpt} is no member"));
            let token = verp_token(&copy.from).unwrap_or_else(|| panic!("not VERP: {}", copy.from));
            assert!(
                tokens.insert(token.to_string()),
                "VERP tokens differ per copy"
            );
            let text = copy.text();
            assert!(
                text.contains(&format!("Dear {name} <{rcpt}>, see you.")),
                "{text}"
            );
            for field in [
                "List-Id: \"News\" <news.lists.example.org>\r\n",
                "List-Unsubscribe: <https://lists.example.org/u/",
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
                "List-Post: <mailto:news@lists.example.org>\r\n",
                "List-Help: <mailto:news-request@lists.example.org?subject=help>\r\n",
                "Precedence: list\r\n",
                "Subject: Hello\r\n",
            ] {
                assert!(text.contains(field), "{field} missing in\n{text}");
            }
            assert!(!text.contains("{{roost:"), "placeholders left in\n{text}");
            assert!(
                text.contains(&format!("X-Roost-Recipient: {rcpt}\r\n")),
                "the on-deliver edit for this recipient in\n{text}"
            );
        }
        // MAIL, RCPT and DATA go in one write to a receiver that announces PIPELINING, and
        // a connection carries many copies.
        assert!(
            got.iter().all(|c| c.pipelined),
            "every copy pipelined: {:?}",
            got.iter().map(|c| c.pipelined).collect::<Vec<_>>()
        );
        let connections: HashSet<u64> = got.iter().map(|c| c.port).collect();
        assert!(
            connections.len() <= 6,
            "30 copies over {} connections",
            connections.len()
        );
        // Outcomes are group-committed a moment after the replies, longer when the
        // database is loaded (the other tests run beside this one): wait, then check.
        let waited = std::time::Instant::now();
        let mut states = store.recipient_states(&id).await.unwrap();
        while states.get("sent") != Some(&30) && waited.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            states = store.recipient_states(&id).await.unwrap();
        }
        assert_eq!(states.get("sent"), Some(&30), "{states:?}");
        assert_eq!(states.len(), 1, "{states:?}");
        let stats = store
            .hourly_stats(0, i64::MAX, Some("test-node"))
            .await
            .unwrap();
        let succeeded: u64 = stats.iter().map(|h| h.succeeded).sum();
        assert_eq!(succeeded, 30, "{stats:?}");
        // A batch's end is recorded after its outcomes, possibly in the next group.
        let mut queue = node.roost(&["queue"]);
        while !queue.1.contains("nothing waits") && waited.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            queue = node.roost(&["queue"]);
        }
        let (code, out, _) = queue;
        assert_eq!(code, 0);
        assert!(out.contains("nothing waits"), "{out}");
        assert!(node.stop().success());
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_until_the_receiver_is_up() {
    let port = common::node::free_port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("roost.db").display());
    let mut node = node(
        &url,
        &format!("smarthost = \"127.0.0.1:{port}\""),
        vec![("news.toml", list_file(""))],
    );
    import(&node, &members(2, 1));
    let store = Store::connect(&node.db_url).await.unwrap();
    let id = send(&node.smtp, "ann@example.org", LIST, "Later", "body");
    // Nothing listens yet: the copies wait with the connection's failure as last reply.
    eventually(
        "the refused connection shown by roost queue",
        Duration::from_secs(10),
        || async {
            let (_, out, _) = node.roost(&["queue"]);
            out.contains("d0.example") && out.contains("4.4.1")
        },
    )
    .await;
    let sink = Recorder::start_on(port, &[]);
    let got = sink.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 2, "both copies once the receiver is up");
    let mut states = HashMap::new();
    for _ in 0..50 {
        states = store.recipient_states(&id).await.unwrap();
        if states.get("sent") == Some(&2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(states.get("sent"), Some(&2), "{states:?}");
    let attempts: i64 =
        sqlx::query_scalar("SELECT MIN(attempts) FROM recipients WHERE message_id = $1")
            .bind(&id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(
        attempts >= 2,
        "refused first, delivered on a retry: {attempts}"
    );
    assert!(node.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_failures_retry_and_permanent_ones_become_bounces() {
    let sink = Recorder::start(&["--reject", "bad", "--defer", "slow:2"]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("roost.db").display());
    let mut node = node(
        &url,
        &format!("smarthost = \"{}\"", sink.addr()),
        vec![("news.toml", list_file(""))],
    );
    let rows = vec![
        ("ok@a.example".to_string(), String::new()),
        ("bad@b.example".to_string(), String::new()),
        ("slow@c.example".to_string(), String::new()),
    ];
    import(&node, &rows);
    let store = Store::connect(&node.db_url).await.unwrap();
    let id = send(&node.smtp, "ann@example.org", LIST, "Retry", "body");

    sink.wait_for(1, Duration::from_secs(20)).await;
    // While slow@ waits, the queue shows its domain and the last reply.
    let mut shown = String::new();
    for _ in 0..40 {
        let (code, out, _) = node.roost(&["queue"]);
        assert_eq!(code, 0);
        // a.example may still show for a moment: its copy is acknowledged
        // before the recorder's group commit marks it sent.
        if out.contains("c.example") && out.contains("451") && !out.contains("a.example") {
            shown = out;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !shown.is_empty(),
        "roost queue never showed the deferred domain alone"
    );
    // DOMAIN, RECIPIENTS, BATCHES, SENDING, NEXT ATTEMPT, LAST REPLY
    let line = shown
        .lines()
        .find(|l| l.starts_with("c.example\t"))
        .unwrap_or_else(|| panic!("{shown}"));
    let cols: Vec<&str> = line.split('\t').collect();
    assert_eq!(cols.len(), 6, "{line}");
    assert_eq!(cols[1], "1", "one recipient waits: {line}");
    assert!(
        cols[4] == "now" || (cols[4].contains("T") && cols[4].contains("(in ")),
        "next attempt: {line}"
    );
    assert!(cols[5].starts_with("451 4.2.0"), "last reply: {line}");

    let got = sink.wait_for(2, Duration::from_secs(30)).await;
    let to: HashSet<String> = got.iter().flat_map(|r| r.to.clone()).collect();
    assert_eq!(
        to,
        HashSet::from(["ok@a.example".to_string(), "slow@c.example".to_string()])
    );
    let mut states = HashMap::new();
    for _ in 0..50 {
        states = store.recipient_states(&id).await.unwrap();
        if states.get("sent") == Some(&2) && states.get("failed") == Some(&1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(states.get("sent"), Some(&2), "{states:?}");
    assert_eq!(states.get("failed"), Some(&1), "{states:?}");
    let attempts: i64 =
        sqlx::query_scalar("SELECT attempts FROM recipients WHERE address = 'slow@c.example'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(attempts, 3, "two deferrals, then delivered");
    // The hour's stats: five attempts (ok once, bad once, slow three times), two delivered,
    // one failed for good.
    let stats = store.hourly_stats(0, i64::MAX, None).await.unwrap();
    let sum = |f: fn(&roost::store::HourStats) -> u64| stats.iter().map(f).sum::<u64>();
    assert_eq!(
        (
            sum(|h| h.attempted),
            sum(|h| h.succeeded),
            sum(|h| h.failed)
        ),
        (5, 2, 1),
        "{stats:?}"
    );
    let bounce: (String, String, String) =
        sqlx::query_as("SELECT address, status, source FROM bounces WHERE message_id = $1")
            .bind(&id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(
        bounce,
        ("bad@b.example".into(), "5.1.1".into(), "delivery".into())
    );
    assert!(node.stop().success());
}

/// `openssl genpkey` key in `dir`; returns (private key path, DNS TXT record).
fn dkim_key(dir: &std::path::Path, name: &str, rsa: bool) -> (std::path::PathBuf, String) {
    let key = dir.join(format!("{name}.pem"));
    let mut keygen = Command::new("openssl");
    keygen.arg("genpkey");
    if rsa {
        keygen.args(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    } else {
        keygen.args(["-algorithm", "ed25519"]);
    }
    let status = keygen
        .arg("-out")
        .arg(&key)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let der = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .output()
        .expect("openssl")
        .stdout;
    // RSA: the SubjectPublicKeyInfo; Ed25519 (RFC 8463): the raw 32-byte key.
    let (k, p) = if rsa {
        ("rsa", der)
    } else {
        ("ed25519", der[der.len() - 32..].to_vec())
    };
    let b64 = common::node::python(
        "import base64,sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())",
        &[&hex::encode(p)],
    );
    (key, format!("v=DKIM1; k={k}; p={}", b64.trim()))
}

/// dkimpy's verdict on each copy, with `record` as the selector's DNS answer.
fn dkim_verify(copies: &[Received], record: &str) -> Vec<bool> {
    let program = r#"
import sys, dkim
record = sys.argv[1].encode()
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    print(dkim.verify(data, dnsfunc=lambda name, timeout=5: record))
"#;
    let mut cmd = Command::new(peer("PEER_PYTHON"));
    cmd.arg("-c").arg(program).arg(record);
    for c in copies {
        cmd.arg(&c.file);
    }
    let out = cmd.output().expect("dkimpy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim() == "True")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_are_dkim_signed_with_rsa_and_ed25519() {
    let sink = Recorder::start(&[]);
    let keys = tempfile::tempdir().unwrap();
    let (rsa_key, rsa_record) = dkim_key(keys.path(), "rsa", true);
    let (ed_key, ed_record) = dkim_key(keys.path(), "ed", false);
    let ed_list = "address = \"ed@lists.example.org\"\n\n[dkim]\nselector = \"e1\"\n".to_string()
        + &format!("private_key = \"{}\"\n", ed_key.display());
    let rsa_list = list_file(&format!(
        "\n[dkim]\nselector = \"s1\"\nprivate_key = \"{}\"\n",
        rsa_key.display()
    ));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("roost.db").display());
    let mut node = node(
        &url,
        &format!("smarthost = \"{}\"", sink.addr()),
        vec![("news.toml", rsa_list), ("ed.toml", ed_list)],
    );
    import(&node, &members(4, 2));
    let (code, _, err) = node.roost(&["members", "add", "ed", "x@d0.example", "y@d1.example"]);
    assert_eq!(code, 0, "{err}");
    send(
        &node.smtp,
        "ann@example.org",
        LIST,
        "Signed",
        "Dear {{roost:name}}",
    );
    let rsa_copies = sink.wait_for(4, Duration::from_secs(30)).await;
    send(
        &node.smtp,
        "ann@example.org",
        "ed@lists.example.org",
        "Signed",
        "text",
    );
    let all = sink.wait_for(6, Duration::from_secs(30)).await;
    let ed_copies: Vec<Received> = all
        .iter()
        .filter(|c| c.from.starts_with("ed-bounces+"))
        .cloned()
        .collect();
    assert_eq!(ed_copies.len(), 2);
    let rsa_copies: Vec<Received> = rsa_copies
        .into_iter()
        .filter(|c| c.from.starts_with("news-bounces+"))
        .collect();
    assert_eq!(rsa_copies.len(), 4);
    for c in &rsa_copies {
        let text = c.text();
        assert!(text.starts_with("DKIM-Signature: "), "{text}");
        assert!(text.contains("a=rsa-sha256"), "{text}");
        assert!(text.contains("d=lists.example.org"), "{text}");
        // RFC 8058: the signature covers the unsubscribe fields.
        let signed: String = text
            .split("h=")
            .nth(1)
            .and_then(|h| h.split(';').next())
            .unwrap_or_default()
            .to_lowercase()
            .split_whitespace()
            .collect();
        assert!(
            signed.split(':').any(|f| f == "list-unsubscribe")
                && signed.split(':').any(|f| f == "list-unsubscribe-post"),
            "h= is {signed}"
        );
    }
    assert_eq!(dkim_verify(&rsa_copies, &rsa_record), vec![true; 4]);
    assert_eq!(dkim_verify(&ed_copies, &ed_record), vec![true; 2]);
    // The verifier can say no: a key that did not sign, and a copy changed in transit.
    assert_eq!(dkim_verify(&ed_copies, &rsa_record), vec![false; 2]);
    let tampered = &rsa_copies[0];
    let text = tampered.text().replace("Dear Member", "Dear Mallory");
    std::fs::write(&tampered.file, text).unwrap();
    assert_eq!(dkim_verify(&rsa_copies[..1], &rsa_record), vec![false]);
    assert!(node.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mx_lookup_dmarc_rewrite_and_unknown_domains() {
    let sink = Recorder::start(&[]);
    let dns = common::dns::Dns::start(&[
        "--mx-host=mx-domain.example,mx.mx-domain.example,10".into(),
        "--host-record=mx.mx-domain.example,127.0.0.1".into(),
        "--host-record=plain.example,127.0.0.1".into(),
        "--txt-record=_dmarc.strict.example,v=DMARC1; p=reject".into(),
        "--txt-record=_dmarc.relaxed.example,v=DMARC1; p=none".into(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("roost.db").display());
    let mut node = node(
        &url,
        &format!(
            "nameservers = [\"127.0.0.1:{}\"]\nmx_port = {}",
            dns.port, sink.port
        ),
        vec![("news.toml", list_file(""))],
    );
    let (code, _, err) = node.roost(&[
        "members",
        "add",
        "news",
        "bob@mx-domain.example",
        "carl@plain.example",
        "nobody@no-such-domain.example",
    ]);
    assert_eq!(code, 0, "{err}");
    let store = Store::connect(&node.db_url).await.unwrap();

    let strict = send(&node.smtp, "alice@strict.example", LIST, "Strict", "one");
    let got = sink.wait_for(2, Duration::from_secs(30)).await;
    let to: HashSet<String> = got.iter().flat_map(|r| r.to.clone()).collect();
    assert_eq!(
        to,
        HashSet::from([
            "bob@mx-domain.example".to_string(),
            "carl@plain.example".to_string()
        ]),
        "the MX host and the implicit MX (the domain's own address)"
    );
    for copy in &got {
        let text = copy.text();
        assert!(
            text.contains("From: \"Ann via News\" <news@lists.example.org>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Reply-To: <alice@strict.example>\r\n"),
            "{text}"
        );
    }
    send(&node.smtp, "carol@relaxed.example", LIST, "Relaxed", "two");
    let got = sink.wait_for(4, Duration::from_secs(30)).await;
    for copy in &got[2..] {
        let text = copy.text();
        assert!(
            text.contains("From: Ann <carol@relaxed.example>\r\n"),
            "{text}"
        );
        assert!(!text.contains("Reply-To:"), "{text}");
    }
    let mut status = String::new();
    for _ in 0..50 {
        status = sqlx::query_scalar::<_, String>(
            "SELECT status FROM bounces WHERE message_id = $1 AND address = 'nobody@no-such-domain.example'",
        )
        .bind(&strict)
        .fetch_optional(store.pool())
        .await
        .unwrap()
        .unwrap_or_default();
        if !status.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, "5.1.2",
        "a domain that does not exist bounces at once"
    );
    assert!(node.stop().success());
}

with_database_urls!(
    sigkill_mid_fan_out_loses_nothing_and_repeats_only_what_was_in_flight,
    |url: String| async move {
        // Slow enough to be killed in the middle: a few ms per copy, four sessions.
        let sink = Recorder::start(&["--delay-ms", "4"]);
        let mut node = node(
            &url,
            &format!(
                "smarthost = \"{}\"\nconcurrency = 4\nbatch_size = 50",
                sink.addr()
            ),
            vec![("news.toml", list_file(""))],
        );
        let total = 2_000;
        import(&node, &members(total, 20));
        let store = Store::connect(&node.db_url).await.unwrap();
        let id = send(&node.smtp, "ann@example.org", LIST, "Big", "to everyone");
        sink.wait_for(400, Duration::from_secs(60)).await;
        node.kill();
        // Let the receiver finish the copy it was reading when the node died: it counts as
        // acknowledged, as a real MTA would have queued it.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let acked: Vec<String> = sink.received().iter().flat_map(|r| r.to.clone()).collect();
        let recorded: HashSet<String> = sqlx::query_scalar(
            "SELECT address FROM recipients WHERE message_id = $1 AND state = 'sent'",
        )
        .bind(&id)
        .fetch_all(store.pool())
        .await
        .unwrap()
        .into_iter()
        .collect();
        let in_flight: HashSet<&String> = acked.iter().filter(|a| !recorded.contains(*a)).collect();
        assert!(acked.len() < total, "killed too late to prove anything");
        // Outcomes are committed as the node goes (every 50 ms), so what a kill can repeat
        // is bounded: four sessions at ~4 ms a copy send ~50 copies in 50 ms; 150 leaves
        // room for a slow commit on a loaded machine, far below the 400+ already sent.
        assert!(
            in_flight.len() <= 150,
            "{} of {} acknowledged copies were not recorded at the kill",
            in_flight.len(),
            acked.len()
        );

        node.start();
        let got = sink.wait_for(total, Duration::from_secs(120)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = sink.received().len().max(got.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for r in sink.received() {
            for a in r.to {
                *seen.entry(a).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), total, "every member got the post");
        let repeated: Vec<&String> = seen
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(a, _)| a)
            .collect();
        println!(
            "acked before the kill: {}, recorded: {}, in flight: {}, repeated after restart: {}, copies: {got}",
            acked.len(),
            recorded.len(),
            in_flight.len(),
            repeated.len()
        );
        for a in &repeated {
            assert!(
                in_flight.contains(a),
                "{a} was repeated but was not in flight at the kill"
            );
            assert_eq!(seen[*a], 2);
        }
        let states = store.recipient_states(&id).await.unwrap();
        assert_eq!(states.get("sent"), Some(&(total as i64)), "{states:?}");
        assert!(node.stop().success());
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_posts_approved_go_out_and_rejections_notify_the_author() {
    let sink = Recorder::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("roost.db").display());
    let hostile = format!(
        "address = \"{LIST}\"\nname = \"News\"\nowners = [\"boss@example.org\"]\n\n[[plugin]]\nuse = \"{}\"\n",
        common::component("hostile").display()
    );
    let mut node = node(
        &url,
        &format!("smarthost = \"{}\"", sink.addr()),
        vec![("news.toml", hostile)],
    );
    import(&node, &members(3, 1));
    let keep = send(&node.smtp, "ann@example.org", LIST, "hold", "keep me");
    let drop_ = send(&node.smtp, "ann@example.org", LIST, "hold", "drop me");
    let store = Store::connect(&node.db_url).await.unwrap();
    for _ in 0..100 {
        let held = store.messages_in_state(LIST, "held", 10).await.unwrap();
        if held.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, _, err) = node.roost(&["held", "approve", "news", &keep]);
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = node.roost(&["held", "approve", "news", &keep]);
    assert_ne!(code, 0, "a second approval changes nothing");
    let (code, _, err) = node.roost(&["held", "reject", "news", &drop_, "--reason", "off topic"]);
    assert_eq!(code, 0, "{err}");
    sink.wait_for(6, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    // The owners heard of both held posts; everyone else got theirs once.
    let (owners, all): (Vec<Received>, Vec<Received>) = sink
        .received()
        .into_iter()
        .partition(|r| r.to == ["boss@example.org"]);
    assert_eq!(owners.len(), 2, "one moderation notice per held post");
    assert_eq!(
        all.len(),
        4,
        "three members' copies and one notice, each once"
    );
    let notice = all
        .iter()
        .find(|r| r.to == ["ann@example.org"])
        .expect("the author's notice");
    let text = notice.text();
    assert!(text.contains("off topic"), "{text}");
    assert!(text.contains("Auto-Submitted: auto-generated"), "{text}");
    assert!(
        notice.from.starts_with("news-bounces+"),
        "notices have a VERP return path too: {}",
        notice.from
    );
    let copies: Vec<&Received> = all.iter().filter(|r| r.to != ["ann@example.org"]).collect();
    assert!(copies.iter().all(|c| c.text().contains("keep me")));
    assert!(node.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_when_offered_and_the_domain_rate_is_held() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=mx.example"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let sink = Recorder::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("roost.db").display());
    let mut node = node(
        &url,
        &format!(
            "smarthost = \"{}\"\n\n[delivery.domain.\"d0.example\"]\nrate = 20\nconnections = 2",
            sink.addr()
        ),
        vec![("news.toml", list_file(""))],
    );
    import(&node, &members(50, 1));
    send(&node.smtp, "ann@example.org", LIST, "Paced", "slowly");
    let got = sink.wait_for(50, Duration::from_secs(30)).await;
    assert!(got.iter().all(|c| c.tls), "every copy went over STARTTLS");
    let first = got.iter().map(|c| c.at).fold(f64::MAX, f64::min);
    let last = got.iter().map(|c| c.at).fold(0.0, f64::max);
    // At most 20 in any second (windows aligned to the second): 50 copies need three
    // windows, so they span more than a second.
    assert!(
        last - first >= 1.0,
        "50 copies at 20/s took only {:.2}s",
        last - first
    );
    let store = Store::connect(&node.db_url).await.unwrap();
    let windows: Vec<i64> =
        sqlx::query_scalar("SELECT taken FROM rate_windows WHERE domain = 'd0.example'")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(
        windows.len() >= 3 && windows.iter().all(|t| *t <= 20),
        "{windows:?}"
    );
    assert!(node.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_that_keep_failing_expire_into_bounces() {
    let sink = Recorder::start(&["--defer", "stuck:1000"]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("roost.db").display());
    let mut node = node(
        &url,
        &format!("smarthost = \"{}\"\nmax_age = \"2s\"", sink.addr()),
        vec![("news.toml", list_file(""))],
    );
    let (code, _, err) = node.roost(&[
        "members",
        "add",
        "news",
        "stuck@a.example",
        "fine@a.example",
    ]);
    assert_eq!(code, 0, "{err}");
    let store = Store::connect(&node.db_url).await.unwrap();
    let id = send(&node.smtp, "ann@example.org", LIST, "Expiring", "body");
    let mut row = None;
    for _ in 0..100 {
        row = sqlx::query_as::<_, (String, String, i64)>(
            "SELECT source, status, temporary FROM bounces WHERE message_id = $1",
        )
        .bind(&id)
        .fetch_optional(store.pool())
        .await
        .unwrap();
        if row.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(row, Some(("expiry".into(), "4.4.7".into(), 0)));
    let states = store.recipient_states(&id).await.unwrap();
    assert_eq!(states.get("expired"), Some(&1), "{states:?}");
    assert_eq!(states.get("sent"), Some(&1), "{states:?}");
    let (_, out, _) = node.roost(&["queue"]);
    assert!(out.contains("nothing waits"), "{out}");
    assert!(node.stop().success());
}

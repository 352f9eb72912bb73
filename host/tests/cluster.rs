//! Several real nodes on one PostgreSQL: takeover of a killed node's fan-out and posts,
//! graceful rolling restarts, approvals raced from many places, and scheduled runs once in
//! the cluster. A real receiving MTA (aiosmtpd) records every copy.

mod common;

use std::{
    collections::{HashMap, HashSet},
    process::Command,
    time::{Duration, Instant},
};

use common::{
    node::{API_TOKEN, Node, NodeSpec, eventually, send},
    recorder::Recorder,
};
use roost::store::Store;

const LIST: &str = "news@lists.example.org";

/// `n` nodes named node-a, node-b, ... on one database, copies to `sink`.
fn cluster(n: usize, db_url: &str, sink: &Recorder, list_extra: &str, delivery: &str) -> Vec<Node> {
    cluster_with(n, db_url, sink, list_extra, delivery, None, None)
}

/// [`cluster`] whose nodes log at `log_filter` into files the test reads.
fn cluster_with(
    n: usize,
    db_url: &str,
    sink: &Recorder,
    list_extra: &str,
    delivery: &str,
    log_filter: Option<&'static str>,
    lease: Option<&str>,
) -> Vec<Node> {
    let extra = format!(
        "\n[delivery]\nsmarthost = \"{}\"\nretry_base = \"1s\"\nretry_max = \"2s\"\n{delivery}\n",
        sink.addr()
    );
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            let mut node = Node::new(NodeSpec {
                db_url,
                smtp_extra: &extra,
                lists: vec![(
                    "news.toml",
                    format!(
                        "address = \"{LIST}\"\nname = \"News\"\nowners = [\"boss@example.org\"]\n{list_extra}"
                    ),
                )],
            });
            node.name = format!("node-{}", (b'a' + i as u8) as char);
            node.log_filter = log_filter;
            node
        })
        .collect();
    for node in &mut nodes {
        if let Some(lease) = lease {
            node.set_lease(lease);
        }
        node.start();
    }
    nodes
}

fn import(node: &Node, n: usize, domains: usize) {
    let csv = node.dir.path().join("members.csv");
    let rows: String = (0..n)
        .map(|i| format!("member{i}@d{}.example\n", i % domains))
        .collect();
    std::fs::write(&csv, rows).unwrap();
    let (code, _, err) = node.roost(&["members", "import", "news", csv.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

/// The single number a `SELECT COUNT(*) ...` gives.
async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// How many copies each recipient got.
fn tally(sink: &Recorder) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in sink.received() {
        for a in r.to {
            *seen.entry(a).or_default() += 1;
        }
    }
    seen
}

async fn wait_for_all(sink: &Recorder, n: usize, timeout: Duration) -> HashMap<String, usize> {
    let started = Instant::now();
    loop {
        let seen = tally(sink);
        if seen.len() >= n {
            return seen;
        }
        assert!(
            started.elapsed() < timeout,
            "only {} of {n} members got the post",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_recipients_are_finished_by_the_survivors() {
    let url = common::postgres_empty().await;
    let sink = Recorder::start(&[]);
    // A lease well beyond the database stalls of a loaded test machine (seconds): a live
    // node that cannot renew in time has its batches taken too, and what it sent in the
    // meantime is repeated. This test is about the killed node only.
    let lease = Duration::from_secs(6);
    let mut nodes = cluster_with(3, &url, &sink, "", "batch_size = 50", None, Some("6s"));
    let total = 20_000;
    import(&nodes[0], total, 50);
    let store = Store::connect(&url).await.unwrap();
    let id = send(&nodes[0].smtp, "ann@example.org", LIST, "Big", "to all");

    // Kill node-b once it has copies of its own out.
    let started = Instant::now();
    loop {
        let sent_by_b: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(succeeded), 0)::BIGINT FROM delivery_stats WHERE node = 'node-b'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        if sent_by_b >= 500 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "node-b never got going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nodes[1].kill();
    let killed_at = Instant::now();
    let orphans: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM batches WHERE lease_owner = 'node-b'")
            .fetch_all(store.pool())
            .await
            .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked: HashSet<String> = tally(&sink).into_keys().collect();
    let recorded: HashSet<String> = sqlx::query_scalar(
        "SELECT address FROM recipients WHERE message_id = $1 AND state = 'sent'",
    )
    .bind(&id)
    .fetch_all(store.pool())
    .await
    .unwrap()
    .into_iter()
    .collect();
    let unrecorded: HashSet<&String> = acked.difference(&recorded).collect();
    assert!(acked.len() < total, "killed too late to prove anything");

    // The survivors take the dead node's batches over once its lease lapses.
    eventually(
        "node-b's batches taken over",
        Duration::from_secs(30),
        || async {
            count(
                &store,
                "SELECT COUNT(*) FROM batches WHERE lease_owner = 'node-b'",
            )
            .await
                == 0
        },
    )
    .await;
    let taken_over = killed_at.elapsed();
    assert!(
        taken_over < lease + Duration::from_millis(1_500),
        "node-b's {} batches taken over only after {taken_over:?}",
        orphans.len()
    );
    // ... and finish them within the lease plus one retry (1 s) plus the time their
    // copies take at the rate this cluster had before the kill (node-b was in the middle
    // of 64 batches: thousands of copies, not a handful).
    let left_recipients: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM recipients WHERE message_id = $1 AND state <> 'sent'",
    )
    .bind(&id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    let rate_before = acked.len() as f64 / (killed_at - started).as_secs_f64();
    let sending = Duration::from_secs_f64(left_recipients as f64 / rate_before);
    let ids: Vec<String> = orphans.iter().map(i64::to_string).collect();
    let left_sql = format!(
        "SELECT COUNT(*) FROM batches WHERE id IN ({})",
        if ids.is_empty() {
            "0".into()
        } else {
            ids.join(", ")
        }
    );
    eventually(
        "node-b's batches finished",
        Duration::from_secs(60),
        || async { count(&store, &left_sql).await == 0 },
    )
    .await;
    let orphans_done = killed_at.elapsed();
    assert!(
        orphans_done < lease + Duration::from_millis(1_000) + sending * 2,
        "node-b's {} batches finished only {orphans_done:?} after the kill \
         ({left_recipients} copies left at {rate_before:.0}/s: {sending:?})",
        orphans.len()
    );
    let seen = wait_for_all(&sink, total, Duration::from_secs(300)).await;
    let finished_after = killed_at.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = if tally(&sink).len() > seen.len() {
        tally(&sink)
    } else {
        seen
    };
    let repeated: Vec<&String> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(a, _)| a)
        .collect();
    println!(
        "killed node-b with {} of {total} acknowledged; its {} batches taken over after {:.1}s; \
         {} acknowledged but unrecorded at the kill; {} repeated; all delivered {:.1}s after the kill",
        acked.len(),
        orphans.len(),
        taken_over.as_secs_f64(),
        unrecorded.len(),
        repeated.len(),
        finished_after.as_secs_f64()
    );
    println!(
        "node-b's {} batches: taken over after {taken_over:?}, finished after {orphans_done:?} \
         ({left_recipients} copies were left at the takeover; {rate_before:.0} copies/s before the kill)",
        orphans.len()
    );
    assert_eq!(seen.len(), total, "every member got the post");
    for a in &repeated {
        assert!(
            unrecorded.contains(a),
            "{a} was repeated but was recorded before the kill"
        );
        assert_eq!(seen[*a], 2);
    }
    let states = store.recipient_states(&id).await.unwrap();
    assert_eq!(states.get("sent"), Some(&(total as i64)), "{states:?}");
    let by_node: Vec<(String, i64)> = sqlx::query_as(
        "SELECT node, SUM(succeeded)::BIGINT FROM delivery_stats GROUP BY node ORDER BY node",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(
        by_node.iter().filter(|(_, n)| *n > 0).count() >= 2,
        "{by_node:?}"
    );
    for n in nodes.iter_mut().filter(|n| n.pid().is_some()) {
        assert!(n.stop().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_of_a_node_killed_while_processing_are_taken_over() {
    let url = common::postgres_empty().await;
    let sink = Recorder::start(&[]);
    let mut nodes = cluster(2, &url, &sink, "", "");
    let store = Store::connect(&url).await.unwrap();
    let source = Command::new(common::node::peer("SMTP_SOURCE"))
        .env("LD_LIBRARY_PATH", common::node::peer("POSTFIX_LIB"))
        .args([
            "-s",
            "5",
            "-m",
            "200",
            "-l",
            "1024",
            "-f",
            "ann@example.org",
            "-t",
            LIST,
        ])
        .arg(&nodes[0].smtp)
        .output()
        .unwrap();
    assert!(source.status.success());
    nodes[0].kill();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE kind = 'post'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(stored, 200, "every acknowledged post is stored");
    let started = Instant::now();
    loop {
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE state = 'stored'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{left} posts still wait for the survivor"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(nodes[1].stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_node_in_turn_loses_and_repeats_nothing() {
    let url = common::postgres_empty().await;
    // Slow enough that the restarts happen during the fan-out.
    let sink = Recorder::start(&["--delay-ms", "2"]);
    let mut nodes = cluster(3, &url, &sink, "", "concurrency = 4\nbatch_size = 25");
    let total = 3_000;
    import(&nodes[0], total, 30);
    send(
        &nodes[0].smtp,
        "ann@example.org",
        LIST,
        "Rolling",
        "restart",
    );
    sink.wait_for(200, Duration::from_secs(60)).await;
    for node in nodes.iter_mut() {
        assert!(node.stop().success(), "graceful stop");
        node.start();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let seen = wait_for_all(&sink, total, Duration::from_secs(240)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let seen = if tally(&sink).len() >= seen.len() {
        tally(&sink)
    } else {
        seen
    };
    let repeated: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(seen.len(), total);
    assert!(
        repeated.is_empty(),
        "graceful restarts repeated {repeated:?}"
    );
    for n in &mut nodes {
        assert!(n.stop().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_approvals_at_once_from_cli_and_rest_send_once() {
    let url = common::postgres_empty().await;
    let sink = Recorder::start(&[]);
    let hostile = format!(
        "\n[[plugin]]\nuse = \"{}\"\n",
        common::component("hostile").display()
    );
    let mut nodes = cluster(3, &url, &sink, &hostile, "");
    import(&nodes[0], 5, 1);
    let store = Store::connect(&url).await.unwrap();
    let id = send(
        &nodes[0].smtp,
        "ann@example.org",
        LIST,
        "hold",
        "approve me",
    );
    for _ in 0..100 {
        if store.message(&id).await.map(|m| m.state).ok().as_deref() == Some("held") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 25 `roost held approve` processes and 25 REST calls to the three nodes, all at once.
    let mut children = Vec::new();
    for i in 0..50 {
        let node = &nodes[i % 3];
        let child = if i % 2 == 0 {
            Command::new(env!("CARGO_BIN_EXE_roost"))
                .args(["held", "approve", "news", &id, "--config"])
                .arg(node.config())
                .env("ROOST_LOG", "error")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        } else {
            Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-X",
                    "POST",
                    "-H",
                ])
                .arg(format!("Authorization: Bearer {API_TOKEN}"))
                .arg(format!(
                    "http://{}/api/v1/lists/news/held/{id}/approve",
                    node.http
                ))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        children.push((i % 2 == 0, child));
    }
    let mut won = 0;
    for (cli, child) in children {
        let out = child.wait_with_output().unwrap();
        let ok = if cli {
            out.status.success()
        } else {
            String::from_utf8_lossy(&out.stdout) == "200"
        };
        won += usize::from(ok);
    }
    assert_eq!(won, 1, "exactly one approval changes the post");
    sink.wait_for(5, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = tally(&sink);
    assert_eq!(
        seen.len(),
        5 + 1,
        "5 members and the owners' moderation notice"
    );
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    for n in &mut nodes {
        assert!(n.stop().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scheduled_occurrence_runs_once_and_outlives_its_node() {
    let url = common::postgres_empty().await;
    let sink = Recorder::start(&[]);
    let probe = format!(
        "\n[[plugin]]\nuse = \"{}\"\n",
        common::component("probe").display()
    );
    let mut nodes = cluster(3, &url, &sink, &probe, "");
    let store = Store::connect(&url).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    nodes[0].kill();
    nodes[1].kill();
    let killed = roost::store::now_ms();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT key, COUNT(*) FROM events WHERE kind = 'tick' GROUP BY key ORDER BY key",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(rows.len() >= 8, "an occurrence a second: {rows:?}");
    assert!(
        rows.iter().all(|(_, n)| *n == 1),
        "each occurrence once: {rows:?}"
    );
    let runners: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT node FROM schedule_runs WHERE plugin = 'probe'")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(!runners.is_empty());
    let after: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM schedule_runs WHERE plugin = 'probe' AND started_at > $1 AND state = 'done'",
    )
    .bind(killed + 1000)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(after >= 3, "the survivor keeps the schedule going: {after}");
    assert!(nodes[2].stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_whose_node_dies_mid_run_is_finished_by_another() {
    let url = common::postgres_empty().await;
    let sink = Recorder::start(&[]);
    // Each run takes 1.5 s, so a node is caught in the middle of one.
    let probe = format!(
        "\n[[plugin]]\nuse = \"{}\"\nslow_tick_ms = 1500\n",
        common::component("probe").display()
    );
    let mut nodes = cluster_with(2, &url, &sink, &probe, "", Some("info"), None);
    let store = Store::connect(&url).await.unwrap();
    let running = "SELECT occurrence FROM schedule_runs WHERE plugin = 'probe' \
                   AND node = 'node-a' AND state = 'running'";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let occurrence: String = loop {
        let row: Option<String> = sqlx::query_scalar(running)
            .fetch_optional(store.pool())
            .await
            .unwrap();
        if let Some(o) = row {
            break o;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node-a never ran a tick"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    nodes[0].kill();
    let killed = std::time::Instant::now();
    // The survivor takes the run over once node-a's lease (2 s) lapses, and runs it (1.5 s).
    let (node, state): (String, String) = loop {
        let row: (String, String) = sqlx::query_as(
            "SELECT node, state FROM schedule_runs WHERE plugin = 'probe' AND occurrence = $1",
        )
        .bind(&occurrence)
        .fetch_one(store.pool())
        .await
        .unwrap();
        if row.1 != "running" || killed.elapsed() > Duration::from_secs(20) {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = killed.elapsed();
    assert_eq!(
        (node.as_str(), state.as_str()),
        ("node-b", "done"),
        "occurrence {occurrence} after node-a died mid-run"
    );
    assert!(
        took < Duration::from_secs(8),
        "finished {took:?} after the kill"
    );
    let ticks: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE kind = 'tick' AND key = $1")
            .bind(&occurrence)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(ticks, 1, "the interrupted occurrence ran to its end once");
    println!("occurrence {occurrence}: finished by node-b {took:?} after node-a was killed");
    assert!(nodes[1].stop().success());
    // Log lines name their node, also those of tasks the node started (the scheduler's).
    let log = nodes[1].log();
    assert!(
        log.lines().any(|l| l.contains("node{name=node-b}")
            && l.contains("taking over a scheduled run")
            && l.contains(&occurrence)),
        "node-b's log: {log}"
    );
}

/// The code of the reply to the end of DATA (or of the first refused command).
fn post_code(smtp: &str) -> u16 {
    let program = r#"
import smtplib, sys
host, port = sys.argv[1].split(":")
s = smtplib.SMTP(host, int(port), timeout=60)
s.ehlo("client.example.org")
try:
    s.sendmail("ann@example.org", ["news@lists.example.org"], b"Subject: x\r\n\r\nbody\r\n")
    print(250)
except smtplib.SMTPDataError as e:
    print(e.smtp_code)
except smtplib.SMTPResponseException as e:
    print(e.smtp_code)
"#;
    common::node::python(program, &[smtp])
        .trim()
        .parse()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_the_database_answers_4xx_and_rejoins() {
    let direct = common::postgres_empty().await;
    let proxy_port = common::node::free_port();
    let control = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(control.path(), "up").unwrap();
    let mut proxy = Command::new("python3")
        .arg(common::root().join("host/tests/peers/tcp_proxy.py"))
        .args([
            "--port",
            &proxy_port.to_string(),
            "--to",
            "127.0.0.1:5432",
            "--control",
        ])
        .arg(control.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(proxy.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    let via_proxy = direct.replace(":5432/", &format!(":{proxy_port}/"));
    let sink = Recorder::start(&[]);
    let mut nodes = cluster(1, &via_proxy, &sink, "", "");
    import(&nodes[0], 2, 1);
    assert_eq!(post_code(&nodes[0].smtp), 250);
    sink.wait_for(2, Duration::from_secs(30)).await;

    std::fs::write(control.path(), "down").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        post_code(&nodes[0].smtp),
        451,
        "no database: a temporary failure"
    );
    let health = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "30",
        ])
        .arg(format!("http://{}/healthz", nodes[0].http))
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&health.stdout).to_string();
    assert_eq!(code, "503");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        nodes[0]
            .pid()
            .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
    );

    std::fs::write(control.path(), "up").unwrap();
    let started = Instant::now();
    loop {
        if post_code(&nodes[0].smtp) == 250 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the node never came back"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    sink.wait_for(4, Duration::from_secs(60)).await;
    let store = Store::connect(&direct).await.unwrap();
    let age: i64 = sqlx::query_scalar(
        "SELECT (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT - heartbeat_at FROM nodes WHERE name = 'node-a'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(age < 5_000, "heartbeats resumed ({age} ms old)");
    assert!(nodes[0].stop().success());
    let _ = proxy.kill();
    let _ = proxy.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_rate_limit_holds_for_the_cluster_as_a_whole() {
    let url = common::postgres_empty().await;
    let sink = Recorder::start(&[]);
    let mut nodes = cluster(
        3,
        &url,
        &sink,
        "",
        "batch_size = 10\nconcurrency = 2\n\n[delivery.domain.\"d0.example\"]\nrate = 10\nconnections = 6",
    );
    import(&nodes[0], 60, 1);
    send(&nodes[0].smtp, "ann@example.org", LIST, "Paced", "gently");
    // While it is paced, `roost nodes` shows who is sending what.
    let mut busy = String::new();
    for _ in 0..40 {
        let (code, out, err) = nodes[2].roost(&["nodes"]);
        assert_eq!(code, 0, "{err}");
        if let Some(line) = out
            .lines()
            .find(|l| l.contains(" batches") && !l.contains("\t0 processing, 0 batches"))
        {
            busy = line.to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        busy.starts_with("node-") && busy.contains("\talive\t"),
        "no node shown at work: {busy}"
    );
    let got = sink.wait_for(60, Duration::from_secs(60)).await;
    let first = got.iter().map(|c| c.at).fold(f64::MAX, f64::min);
    let last = got.iter().map(|c| c.at).fold(0.0, f64::max);
    // 10 per second for the cluster: 60 copies take about 5 s. Three nodes each pacing
    // at 10/s on their own would be done in about 1 s.
    assert!(last - first >= 4.0, "60 copies in {:.2}s", last - first);
    let store = Store::connect(&url).await.unwrap();
    let windows: Vec<i64> =
        sqlx::query_scalar("SELECT taken FROM rate_windows WHERE domain = 'd0.example'")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(windows.iter().all(|t| *t <= 10), "{windows:?}");
    let by_node: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT node) FROM delivery_stats WHERE succeeded > 0")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(by_node >= 2, "several nodes shared the work");
    for n in &mut nodes {
        assert!(n.stop().success());
    }
}

//! SMTP intake benchmark: 5,000 messages of 4 KB over 20 concurrent sessions, sent by
//! Postfix's smtp-source, to Roost on SQLite and on PostgreSQL, and in the same run to
//! Postfix's smtp-sink (no storage: the limit of the SMTP dialogue here) and to a private
//! Postfix instance that queues durably. A second pass with the same shape measures the
//! latency of each message's final dot to its 250 with a small Rust client. All four
//! targets run at once and are measured in turn, round after round, so a change in the
//! machine's speed during the run (this 2-core machine's rates drift by a third between
//! minutes) falls on every target alike; each rate is the median of its rounds. Before each
//! measurement the machine is let go quiet, so no target's work after its 250s (Postfix
//! discarding its queue, Roost processing its posts) slows the target measured next.
//!
//! Run with `make bench` (it installs the peers and builds the plugins). Prints figures.

mod common;
// The tests' dnsmasq, for the nodes' resolver.
#[path = "../tests/common/mod.rs"]
mod test_common;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{free_port, peer, reply, root, wait_listening};
use tokio::{
    io::{AsyncWriteExt, BufReader},
    net::TcpStream,
};

const SESSIONS: usize = 20;
const MESSAGES: usize = 5_000;
const SIZE: usize = 4096;
const RCPT: &str = "announce@lists.example.org";

struct Row {
    name: &'static str,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    note: String,
}

/// smtp-source runs per target; each rate is their median. Rates here move by a quarter
/// between rounds a few seconds apart, so the ratios are taken round by round (each
/// target against the peers measured beside it) and their median is the figure.
const ROUNDS: usize = 7;

fn throughput_once(addr: &str) -> f64 {
    let started = Instant::now();
    let status = Command::new(peer("SMTP_SOURCE"))
        .env("LD_LIBRARY_PATH", peer("POSTFIX_LIB"))
        .args([
            "-s",
            &SESSIONS.to_string(),
            "-m",
            &MESSAGES.to_string(),
            "-l",
            &SIZE.to_string(),
        ])
        .args(["-f", "ann@example.org", "-t", RCPT, addr])
        .status()
        .expect("smtp-source");
    assert!(status.success(), "smtp-source failed against {addr}");
    MESSAGES as f64 / started.elapsed().as_secs_f64()
}

/// Wait until the machine is quiet: what a target does after its 250s (Postfix's queue
/// manager discarding its queue, Roost processing its posts) must not be charged to the
/// target measured next. Up to a minute; a busy share under 10% of all cores counts as quiet.
fn settle() {
    fn ticks() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let idle = cpu.get(3)? + cpu.get(4).unwrap_or(&0);
        Some((cpu.iter().sum(), idle))
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let Some((t0, i0)) = ticks() else { return };
        std::thread::sleep(Duration::from_millis(300));
        let Some((t1, i1)) = ticks() else { return };
        let (total, idle) = (t1.saturating_sub(t0), i1.saturating_sub(i0));
        if total > 0 && (total - idle) * 10 < total {
            return;
        }
    }
    eprintln!("the machine did not go quiet within a minute; measuring anyway");
}

/// Final-dot-to-250 latency of every message, same load shape.
async fn latencies(addr: &str) -> Vec<Duration> {
    let per_session = MESSAGES / SESSIONS;
    let mut tasks = Vec::new();
    for s in 0..SESSIONS {
        let addr = addr.to_string();
        tasks.push(tokio::spawn(
            async move { session(&addr, s, per_session).await },
        ));
    }
    let mut all = Vec::with_capacity(MESSAGES);
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    all.sort_unstable();
    all
}

async fn session(addr: &str, s: usize, count: usize) -> Vec<Duration> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    // The dot goes out at once, not after a delayed ACK of the body (Nagle).
    tcp.set_nodelay(true).expect("nodelay");
    let (rd, mut wr) = tcp.into_split();
    let mut rd = BufReader::new(rd);
    assert_eq!(reply(&mut rd).await.0, 220);
    wr.write_all(b"EHLO bench.example.org\r\n").await.unwrap();
    assert_eq!(reply(&mut rd).await.0, 250);
    let filler = "x".repeat(76);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let envelope = format!("MAIL FROM:<ann@example.org>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n");
        wr.write_all(envelope.as_bytes()).await.unwrap();
        assert_eq!(reply(&mut rd).await.0, 250);
        assert_eq!(reply(&mut rd).await.0, 250);
        assert_eq!(reply(&mut rd).await.0, 354);
        let mut body =
            format!("From: ann@example.org\r\nTo: {RCPT}\r\nSubject: bench {s}-{i}\r\n\r\n");
        while body.len() < SIZE {
            body.push_str(&filler);
            body.push_str("\r\n");
        }
        wr.write_all(body.as_bytes()).await.unwrap();
        let t = Instant::now();
        wr.write_all(b".\r\n").await.unwrap();
        let code = reply(&mut rd).await.0;
        out.push(t.elapsed());
        assert_eq!(code, 250, "message refused");
    }
    let _ = wr.write_all(b"QUIT\r\n").await;
    out
}

/// p50 and p99 of the final-dot-to-250 latency, in ms.
async fn latency_quantiles(addr: &str) -> (f64, f64) {
    let lat = latencies(addr).await;
    let pick =
        |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    (pick(0.50), pick(0.99))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Roost {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
}

fn start_roost(db_url: &str, dns_port: u16) -> Roost {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "[node]\nname = \"bench\"\nhostname = \"lists.example.org\"\n[database]\nurl = \"{db_url}\"\n\
         [plugins]\ndir = \"{}\"\ncache_dir = \"{}\"\n[smtp]\nlisten = [\"{addr}\"]\nmax_sessions = 1000\n[http]\nlisten = \"127.0.0.1:{}\"\n\
         [delivery]\nnameservers = [\"127.0.0.1:{dns_port}\"]\n",
        root().join("target/plugins").display(),
        root().join("target/plugin-cache-bench").display(),
        free_port()
    );
    std::fs::write(dir.path().join("roost.toml"), config).unwrap();
    std::fs::create_dir(dir.path().join("lists")).unwrap();
    std::fs::write(
        dir.path().join("lists/announce.toml"),
        format!("address = \"{RCPT}\"\n[[plugin]]\nuse = \"subject-tag\"\n"),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["serve", "--config"])
        .arg(dir.path().join("roost.toml"))
        .env("ROOST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start roost");
    Roost { child, dir, addr }
}

async fn count_stored(url: &str) -> i64 {
    let store = roost::store::Store::connect(url).await.expect("db");
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(store.pool())
        .await
        .expect("count");
    store.close().await;
    n
}

/// Stop a Roost node and check that every message it acknowledged is in its database.
async fn stop_roost(mut node: Roost, url: &str) -> String {
    let stored = count_stored(url).await;
    let _ = node.child.kill();
    let _ = node.child.wait();
    let sent = (ROUNDS + 1) * MESSAGES;
    assert_eq!(
        stored, sent as i64,
        "every acknowledged message is in the database"
    );
    format!("{stored} stored, fsync'd before 250")
}

#[tokio::main]
async fn main() {
    let sink_addr = format!("127.0.0.1:{}", free_port());
    let mut sink = Command::new(peer("SMTP_SINK"))
        .env("LD_LIBRARY_PATH", peer("POSTFIX_LIB"))
        .args(["-u", "nobody", &sink_addr, "256"])
        .spawn()
        .expect("smtp-sink");
    wait_listening(&sink_addr).await;

    let pf_dir = tempfile::tempdir().unwrap();
    let pf_port = free_port();
    let script = root().join("scripts/bench-postfix.sh");
    let ok = Command::new(&script)
        .args(["start", &pf_port.to_string()])
        .arg(pf_dir.path())
        .status()
        .expect("bench-postfix.sh");
    assert!(ok.success(), "cannot start the Postfix instance");

    // A local resolver for the sender checks (SPF, DMARC of `example.org`), as a mail server
    // should have: the machine's own reaches no Internet and now and then stops answering
    // for seconds, which would put its outages into the figures.
    let dns = test_common::dns::Dns::start(&["--local=/example.org/".into()]);
    let sqlite = start_roost("sqlite://roost.db", dns.port);
    let sqlite_url = format!("sqlite://{}", sqlite.dir.path().join("roost.db").display());
    let pg_name = format!("roost_t_bench_{}", std::process::id());
    let pg_url = common::pg_create(&pg_name).await;
    let pg = start_roost(&pg_url, dns.port);
    wait_listening(&sqlite.addr).await;
    wait_listening(&pg.addr).await;

    let targets: [(&'static str, String, &str); 4] = [
        (
            "Postfix smtp-sink (no storage)",
            sink_addr.clone(),
            "SMTP dialogue only",
        ),
        (
            "Postfix, durable queue",
            format!("127.0.0.1:{pf_port}"),
            "queue fsync'd, then discarded",
        ),
        ("Roost, SQLite", sqlite.addr.clone(), ""),
        ("Roost, PostgreSQL", pg.addr.clone(), ""),
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for round in 1..=ROUNDS {
        eprintln!("round {round} of {ROUNDS}");
        for (i, (name, addr, _)) in targets.iter().enumerate() {
            settle();
            let rate = throughput_once(addr);
            eprintln!("  {name}: {rate:.0} msg/s");
            rates[i].push(rate);
        }
    }
    // Per-round ratios, before the rates go into the rows: each Roost target against the
    // sink and the durable Postfix of its own round.
    let ratios = |of: usize, to: usize| -> Vec<f64> {
        rates[of]
            .iter()
            .zip(&rates[to])
            .map(|(a, b)| a / b)
            .collect()
    };
    let paired = [
        (2, ratios(2, 1), ratios(2, 0)),
        (3, ratios(3, 1), ratios(3, 0)),
    ];
    let mut rows = Vec::new();
    for ((name, addr, note), rates) in targets.iter().zip(rates) {
        settle();
        let (p50_ms, p99_ms) = latency_quantiles(addr).await;
        rows.push(Row {
            name,
            per_sec: median(rates),
            p50_ms,
            p99_ms,
            note: note.to_string(),
        });
    }

    rows[2].note = stop_roost(sqlite, &sqlite_url).await;
    rows[3].note = stop_roost(pg, &pg_url).await;
    common::pg_drop(&pg_name).await;
    let _ = Command::new(&script)
        .arg("stop")
        .arg(pf_dir.path())
        .status();
    let _ = sink.kill();
    let _ = sink.wait();
    drop(dns);

    println!();
    println!(
        "SMTP intake: {MESSAGES} messages of {SIZE} B over {SESSIONS} sessions (smtp-source),"
    );
    println!(
        "median of {ROUNDS} rounds over all targets; latency = final dot to 250, same load from a Rust client."
    );
    println!();
    println!(
        "{:<34} {:>9} {:>9} {:>9}  note",
        "target", "msg/s", "p50 ms", "p99 ms"
    );
    for r in &rows {
        println!(
            "{:<34} {:>9.0} {:>9.2} {:>9.2}  {}",
            r.name, r.per_sec, r.p50_ms, r.p99_ms, r.note
        );
    }
    println!();
    for (i, postfix, sink) in paired {
        let span = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(0.0, f64::max);
            (lo, hi)
        };
        let ((plo, phi), (slo, shi)) = (span(&postfix), span(&sink));
        println!(
            "{}: {:.2}x Postfix (durable), {:.0}% of smtp-sink \
             (median of per-round ratios; rounds {plo:.2}x-{phi:.2}x, {:.0}%-{:.0}%)",
            rows[i].name,
            median(postfix),
            100.0 * median(sink),
            100.0 * slo,
            100.0 * shi
        );
    }
}

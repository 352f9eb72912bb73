//! Cluster benchmark: one post to 50,000 members over 100 domains, delivered by 1, 2 and 3
//! nodes sharing one PostgreSQL database, through a smarthost to Postfix's smtp-sink. For
//! each: recipients per second from the post's 250 to the last recorded copy, CPU per node,
//! and database transactions per delivered recipient (from `pg_stat_database`), the figure
//! that says whether PostgreSQL would be the bottleneck on bigger machines.
//!
//! Run with `make bench`. `ROOST_BENCH_MEMBERS` changes the list size. All nodes run on
//! this one machine, so more nodes share the same two cores.

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{cpu_seconds, free_port, members, peer, root, submit, wait_listening};

const DOMAINS: usize = 100;
const LIST: &str = "news@lists.example.org";

struct Node {
    child: Child,
    smtp: String,
    _dir: tempfile::TempDir,
}

fn node(i: usize, db: &str, sink: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let smtp = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "[node]\nname = \"bench-{i}\"\nhostname = \"lists.example.org\"\n\
         [database]\nurl = \"{db}\"\n\
         [plugins]\ndir = \"{}\"\ncache_dir = \"{}\"\n\
         [smtp]\nlisten = [\"{smtp}\"]\n\
         [delivery]\nsmarthost = \"{sink}\"\n\
         [http]\nlisten = \"127.0.0.1:{}\"\npublic_url = \"https://lists.example.org\"\n",
        root().join("target/plugins").display(),
        root().join("target/plugin-cache-bench").display(),
        free_port()
    );
    std::fs::write(dir.path().join("roost.toml"), config).unwrap();
    std::fs::create_dir(dir.path().join("lists")).unwrap();
    std::fs::write(
        dir.path().join("lists/news.toml"),
        format!("address = \"{LIST}\"\nname = \"News\"\n"),
    )
    .unwrap();
    (dir, smtp)
}

struct Row {
    nodes: usize,
    seconds: f64,
    cpu: Vec<f64>,
    transactions: i64,
    recipients: usize,
}

async fn transactions(store: &roost::store::Store, db: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::BIGINT FROM pg_stat_database WHERE datname = $1",
    )
    .bind(db)
    .fetch_one(store.pool())
    .await
    .expect("pg_stat_database")
}

async fn run(n_nodes: usize, members_n: usize, sink: &str) -> Row {
    let name = format!("roost_t_cluster_{n_nodes}_{}", std::process::id());
    let url = common::pg_create(&name).await;
    let dirs: Vec<(tempfile::TempDir, String)> =
        (0..n_nodes).map(|i| node(i, &url, sink)).collect();
    let csv = dirs[0].0.path().join("members.csv");
    std::fs::write(&csv, members(members_n, DOMAINS).join("\n")).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["members", "import", "news"])
        .arg(&csv)
        .arg("--config")
        .arg(dirs[0].0.path().join("roost.toml"))
        .env("ROOST_LOG", "error")
        .stdout(Stdio::null())
        .status()
        .expect("roost members import");
    assert!(status.success(), "members import failed");
    let mut nodes = Vec::new();
    for (dir, smtp) in dirs {
        let child = Command::new(env!("CARGO_BIN_EXE_roost"))
            .args(["serve", "--config"])
            .arg(dir.path().join("roost.toml"))
            .env("ROOST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start roost");
        wait_listening(&smtp).await;
        nodes.push(Node {
            child,
            smtp,
            _dir: dir,
        });
    }
    let store = roost::store::Store::connect(&url).await.expect("db");
    let admin = roost::store::Store::connect(&common::pg_admin())
        .await
        .expect("postgres");
    let cpu0: Vec<f64> = nodes
        .iter()
        .map(|n| cpu_seconds(n.child.id()).unwrap_or(0.0))
        .collect();
    let tx0 = transactions(&admin, &name).await;

    submit(&nodes[0].smtp, "<ann@example.org>", &[LIST.to_string()]).await;
    let started = Instant::now();
    loop {
        let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recipients WHERE state = 'sent'")
            .fetch_one(store.pool())
            .await
            .expect("count");
        if sent as usize >= members_n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "{n_nodes} node(s): only {sent} of {members_n} delivered"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu: Vec<f64> = nodes
        .iter()
        .zip(&cpu0)
        .map(|(n, c0)| (cpu_seconds(n.child.id()).unwrap_or(0.0) - c0) / seconds)
        .collect();
    store.close().await;
    // PostgreSQL publishes its counters about once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tx = transactions(&admin, &name).await - tx0;
    for n in &mut nodes {
        let _ = Command::new("kill")
            .args(["-TERM", &n.child.id().to_string()])
            .status();
        let _ = n.child.wait();
    }
    admin.close().await;
    common::pg_drop(&name).await;
    Row {
        nodes: n_nodes,
        seconds,
        cpu,
        transactions: tx,
        recipients: members_n,
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("ROOST_BENCH_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let sink_addr = format!("127.0.0.1:{}", free_port());
    let mut sink = Command::new(peer("SMTP_SINK"))
        .env("LD_LIBRARY_PATH", peer("POSTFIX_LIB"))
        .args(["-u", "nobody", &sink_addr, "1024"])
        .spawn()
        .expect("smtp-sink");
    wait_listening(&sink_addr).await;
    let mut rows = Vec::new();
    for nodes in 1..=3 {
        rows.push(run(nodes, n, &sink_addr).await);
    }
    let _ = sink.kill();
    let _ = sink.wait();

    println!();
    println!(
        "Cluster: one 4 KB post to {n} members over {DOMAINS} domains, N nodes on one PostgreSQL,"
    );
    println!("smarthost to smtp-sink; all on this machine's 2 cores.");
    println!();
    println!(
        "{:>5} {:>9} {:>10} {:>22} {:>14}",
        "nodes", "seconds", "rcpt/s", "CPU per node (cores)", "DB tx / rcpt"
    );
    for r in &rows {
        let cpu: Vec<String> = r.cpu.iter().map(|c| format!("{c:.2}")).collect();
        println!(
            "{:>5} {:>9.1} {:>10.0} {:>22} {:>14.4}",
            r.nodes,
            r.seconds,
            r.recipients as f64 / r.seconds,
            cpu.join(" "),
            r.transactions as f64 / r.recipients as f64
        );
    }
    println!();
    println!("Target: under 0.05 database transactions per delivered recipient.");
}

//! Tracking and reports benchmark, on SQLite and on PostgreSQL:
//! - clicks per second one node serves at `/t/c/{token}` (each one a signed-token check, a
//!   lookup, an event row and a 302), measured with `wrk` (Debian) with p50/p99 latency:
//!   one token over and over (lookups cached), and 250,000 distinct recipients' tokens in
//!   turn (more than the node's lookup cache holds, so most lookups go to the database);
//! - how long the reports take over 30 days of a busy three-node cluster (every hour of
//!   30 days filled for three nodes) and for a 250,000-recipient post with 500,000 clicks
//!   and opens: the JSON API and the HTML pages.
//!
//! Run with `make bench` (it installs wrk). Prints figures.

mod common;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use common::{free_port, root, submit, wait_listening};
use roost::tokens::{Purpose, TokenKey};

const LIST: &str = "news@lists.example.org";
const TOKEN: &str = "bench-token-0123456789";

struct Row {
    name: &'static str,
    per_sec: f64,
    p50: String,
    p99: String,
    cold_per_sec: f64,
    cold_p99: String,
    /// (report, milliseconds: the slowest of 5 runs)
    reports: Vec<(&'static str, f64)>,
}

/// Distinct recipients for the cold-cache run (the node caches 200,000 lookups).
const DISTINCT: i64 = 250_000;

/// wrk's "Requests/sec" and its 50% and 99% latencies; `script` is a Lua file for wrk.
fn wrk(url: &str, script: Option<&std::path::Path>) -> (f64, String, String) {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c32", "-d10s", "--latency"]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd.arg(url).output().expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let per_sec = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let pct = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    (per_sec, pct("50%"), pct("99%"))
}

async fn run(name: &'static str, db: &str, direct: impl Fn(&std::path::Path) -> String) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let smtp = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let sink = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        dir.path().join("roost.toml"),
        format!(
            "[node]\nname = \"bench\"\nhostname = \"lists.example.org\"\n\
             [database]\nurl = \"{db}\"\n\
             [plugins]\ndir = \"{}\"\ncache_dir = \"{}\"\n\
             [smtp]\nlisten = [\"{smtp}\"]\n[delivery]\nsmarthost = \"{sink}\"\n\
             [http]\nlisten = \"{http}\"\npublic_url = \"http://{http}\"\n\
             api_token = \"{TOKEN}\"\n\n[[plugin]]\nuse = \"reports\"\n",
            root().join("target/plugins").display(),
            root().join("target/plugin-cache-bench").display(),
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("lists")).unwrap();
    std::fs::write(
        dir.path().join("lists/news.toml"),
        format!("address = \"{LIST}\"\n\n[[plugin]]\nuse = \"tracking\"\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["serve", "--config"])
        .arg(dir.path().join("roost.toml"))
        .env("ROOST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("start roost");
    wait_listening(&smtp).await;
    let status = Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["members", "add", "news", "bob@example.net"])
        .arg("--config")
        .arg(dir.path().join("roost.toml"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    // A post with one tracked link (its delivery fails: nothing listens at the sink, which
    // does not matter for the recipient row the click names).
    submit(&smtp, "<ann@example.org>", &[LIST.to_string()]).await;
    let store = roost::store::Store::connect(&direct(dir.path()))
        .await
        .unwrap();
    let mut recipient = None;
    for _ in 0..200 {
        recipient = sqlx::query_scalar::<_, i64>("SELECT id FROM recipients LIMIT 1")
            .fetch_optional(store.pool())
            .await
            .unwrap();
        if recipient.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recipient = recipient.expect("the post was expanded");
    // The post body of `submit` has no link; declare one as the tracking plugin would.
    sqlx::query("UPDATE messages SET edits = $1")
        .bind(r#"[{"op":"track-link","url":"https://example.org/landing"}]"#)
        .execute(store.pool())
        .await
        .unwrap();
    let key = TokenKey::new(&store.token_key().await.unwrap());
    let token = key.sign(Purpose::Click, &[u64::try_from(recipient).unwrap(), 0]);
    let (per_sec, p50, p99) = wrk(&format!("http://{http}/t/c/{token}"), None);
    let clicks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE kind = 'click'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(clicks > 0, "no click was recorded");
    let (cold_per_sec, cold_p99) = cold_clicks(&store, &key, &http, dir.path()).await;
    let reports = time_reports(&store, &http).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    Row {
        name,
        per_sec,
        p50,
        p99,
        cold_per_sec,
        cold_p99,
        reports,
    }
}

/// `DISTINCT` more recipients of the post, and wrk going through their tokens in turn.
async fn cold_clicks(
    store: &roost::store::Store,
    key: &TokenKey,
    http: &str,
    dir: &std::path::Path,
) -> (f64, String) {
    let post: String = sqlx::query_scalar("SELECT id FROM messages WHERE kind = 'post'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) \
         INSERT INTO recipients (message_id, address, domain, seq, state, updated_at) \
         SELECT $1, 'm' || i || '@example.net', 'example.net', 0, 'sent', 0 FROM n",
    )
    .bind(&post)
    .bind(DISTINCT)
    .execute(store.pool())
    .await
    .unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM recipients ORDER BY id DESC LIMIT $1")
        .bind(DISTINCT)
        .fetch_all(store.pool())
        .await
        .unwrap();
    let paths: String = ids
        .iter()
        .map(|&id| {
            let token = key.sign(Purpose::Click, &[u64::try_from(id).unwrap(), 0]);
            format!("/t/c/{token}\n")
        })
        .collect();
    let list = dir.join("paths.txt");
    std::fs::write(&list, paths).unwrap();
    // Each wrk thread walks the list from its own offset.
    let script = dir.join("paths.lua");
    std::fs::write(
        &script,
        format!(
            "local paths = {{}}\n\
             for line in io.lines(\"{}\") do paths[#paths + 1] = line end\n\
             local i = math.random(#paths)\n\
             request = function()\n\
               i = i % #paths + 1\n\
               return wrk.format(\"GET\", paths[i])\n\
             end\n",
            list.display()
        ),
    )
    .unwrap();
    let (per_sec, _, p99) = wrk(&format!("http://{http}"), Some(&script));
    (per_sec, p99)
}

/// Fill 30 days of hourly figures for three nodes and 500,000 events on the post (with the
/// counts the node keeps of them), then time each report (the slowest of 5 runs, in ms).
async fn time_reports(store: &roost::store::Store, http: &str) -> Vec<(&'static str, f64)> {
    let now = roost::store::now_ms();
    let hour = 3_600_000i64;
    let first = now - now % hour - 30 * 24 * hour;
    for node in ["bench", "bench-2", "bench-3"] {
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 719) \
             INSERT INTO delivery_stats (hour, node, attempted, succeeded, failed) \
             SELECT $1 + i * $2, $3, 50000, 49000, 1000 FROM n WHERE true \
             ON CONFLICT (hour, node) DO NOTHING",
        )
        .bind(first)
        .bind(hour)
        .bind(node)
        .execute(store.pool())
        .await
        .unwrap();
    }
    let post: String = sqlx::query_scalar("SELECT id FROM messages WHERE kind = 'post'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500000) \
         INSERT INTO events (list, plugin, kind, post_id, member, key, at) \
         SELECT $1, 'tracking', CASE WHEN i % 2 = 0 THEN 'click' ELSE 'open' END, $2, \
         'm' || (i % 200000) || '@example.net', CASE WHEN i % 2 = 0 THEN '0' END, $3 FROM n",
    )
    .bind(LIST)
    .bind(&post)
    .bind(now)
    .execute(store.pool())
    .await
    .unwrap();
    // The counts the node keeps of the events (as the migration backfills them), and the
    // watermark past them.
    for sql in [
        "INSERT INTO event_counts (post_id, plugin, kind, key, total, uniq) \
         SELECT post_id, plugin, kind, key, COUNT(*), COUNT(DISTINCT member) FROM events \
         WHERE key IS NOT NULL AND key <> '' GROUP BY post_id, plugin, kind, key \
         ON CONFLICT DO NOTHING",
        "INSERT INTO event_counts (post_id, plugin, kind, key, total, uniq) \
         SELECT post_id, plugin, kind, '', COUNT(*), COUNT(DISTINCT member) FROM events \
         WHERE post_id IS NOT NULL GROUP BY post_id, plugin, kind ON CONFLICT DO NOTHING",
        "UPDATE events_counted SET last_id = (SELECT MAX(id) FROM events)",
    ] {
        sqlx::query(sql).execute(store.pool()).await.unwrap();
    }
    let auth = format!("Authorization: Bearer {TOKEN}");
    let urls: [(&'static str, String); 4] = [
        (
            "API speed, 30 days",
            format!("http://{http}/api/v1/reports/speed?hours=720"),
        ),
        (
            "page speed, 30 days",
            format!("http://{http}/reports/speed?hours=720"),
        ),
        (
            "API post",
            format!("http://{http}/api/v1/reports/posts/{post}"),
        ),
        ("page post", format!("http://{http}/reports/posts/{post}")),
    ];
    let mut out = Vec::new();
    for (name, url) in urls {
        let mut slowest = 0.0f64;
        for _ in 0..5 {
            let started = std::time::Instant::now();
            let o = Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-H",
                    &auth,
                    &url,
                ])
                .output()
                .unwrap();
            let code = String::from_utf8_lossy(&o.stdout).into_owned();
            if code != "200" {
                eprintln!("{name}: {url} answered {code}");
            }
            slowest = slowest.max(started.elapsed().as_secs_f64() * 1000.0);
        }
        out.push((name, slowest));
    }
    out
}

#[tokio::main]
async fn main() {
    let mut rows = vec![
        run("SQLite", "sqlite://roost.db", |d| {
            format!("sqlite://{}", d.join("roost.db").display())
        })
        .await,
    ];
    let name = format!("roost_t_track_{}", std::process::id());
    let pg = common::pg_create(&name).await;
    rows.push(run("PostgreSQL", &pg, |_| pg.clone()).await);
    common::pg_drop(&name).await;
    println!();
    println!("Tracking: GET /t/c/TOKEN on one node, wrk -t2 -c32 for 10 s (each click recorded).");
    println!();
    println!(
        "{:<12} {:>12} {:>10} {:>10}",
        "database", "clicks/s", "p50", "p99"
    );
    for r in &rows {
        println!(
            "{:<12} {:>12.0} {:>10} {:>10}",
            r.name, r.per_sec, r.p50, r.p99
        );
    }
    println!();
    println!(
        "Cold lookups: {DISTINCT} distinct recipients' tokens in turn (more than the node's cache)."
    );
    println!();
    println!("{:<12} {:>12} {:>10}", "database", "clicks/s", "p99");
    for r in &rows {
        println!("{:<12} {:>12.0} {:>10}", r.name, r.cold_per_sec, r.cold_p99);
    }
    println!();
    println!("Target: 10,000 clicks per second per node.");
    println!();
    println!(
        "Reports over 30 days of three busy nodes (2,160 hourly rows) and a post with \
         250,000 recipients and 500,000 opens and clicks: slowest of 5, ms."
    );
    println!();
    for r in &rows {
        for (name, ms) in &r.reports {
            println!("{:<12} {:<22} {:>8.1}", r.name, name, ms);
        }
    }
    println!();
    println!("Target: under 1,000 ms.");
}

//! Tracking benchmark: clicks per second one node serves at `/t/c/{token}` (each one a
//! signed-token check, a lookup, an event row and a 302), measured with `wrk` (Debian),
//! with its p50/p99 latency, on SQLite and on PostgreSQL.
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

struct Row {
    name: &'static str,
    per_sec: f64,
    p50: String,
    p99: String,
}

/// wrk's "Requests/sec" and its 50% and 99% latencies.
fn wrk(url: &str) -> (f64, String, String) {
    let out = Command::new("wrk")
        .args(["-t2", "-c32", "-d10s", "--latency", url])
        .output()
        .expect("wrk (apt-get install wrk)");
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
             [http]\nlisten = \"{http}\"\npublic_url = \"http://{http}\"\n",
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
    let (per_sec, p50, p99) = wrk(&format!("http://{http}/t/c/{token}"));
    let clicks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE kind = 'click'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(clicks > 0, "no click was recorded");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    Row {
        name,
        per_sec,
        p50,
        p99,
    }
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
    println!("Target: 10,000 clicks per second per node.");
}

//! What the benchmarks share: the peers from `target/test-peers.env`, ports, a pipelined
//! SMTP submitter, process figures from `/proc`, scratch PostgreSQL databases.
#![allow(dead_code)]

use std::{path::PathBuf, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tool from target/test-peers.env (`make bench` writes it).
pub fn peer(name: &str) -> String {
    let text = std::fs::read_to_string(root().join("target/test-peers.env"))
        .expect("target/test-peers.env: run `make bench`, which installs the peers");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_string))
        .expect(name)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn wait_listening(addr: &str) {
    for _ in 0..300 {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {addr}");
}

/// One (possibly multi-line) SMTP reply: its code and text.
pub async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> (u16, String) {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).await.expect("read reply");
        assert!(n > 0, "server closed the connection");
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return (line[..3].parse().unwrap_or(0), all);
        }
    }
}

/// `member{i}@d{i % domains}.example`
pub fn members(n: usize, domains: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("member{i}@d{}.example", i % domains))
        .collect()
}

/// A 4 KB post with two links (for the tracking plugin to rewrite).
pub fn post_body() -> String {
    let mut body = String::from(
        "From: Ann <ann@example.org>\r\nTo: news@lists.example.org\r\nSubject: fan-out\r\n\r\n\
         Read https://example.org/news/1 and https://example.org/news/2 today.\r\n",
    );
    while body.len() < 4096 {
        body.push_str(&"x".repeat(76));
        body.push_str("\r\n");
    }
    body
}

/// Send one message to `rcpts` (pipelined RCPTs; `mail_from` is everything after
/// `MAIL FROM:`); returns when the 250 for the data came.
pub async fn submit(addr: &str, mail_from: &str, rcpts: &[String]) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).unwrap();
    let (rd, mut wr) = tcp.into_split();
    let mut rd = BufReader::new(rd);
    assert_eq!(reply(&mut rd).await.0, 220);
    wr.write_all(b"EHLO bench.example.org\r\n").await.unwrap();
    assert_eq!(reply(&mut rd).await.0, 250);
    wr.write_all(format!("MAIL FROM:{mail_from}\r\n").as_bytes())
        .await
        .unwrap();
    let (code, text) = reply(&mut rd).await;
    assert_eq!(code, 250, "{text}");
    for chunk in rcpts.chunks(1000) {
        let mut out = String::new();
        for r in chunk {
            out.push_str(&format!("RCPT TO:<{r}>\r\n"));
        }
        wr.write_all(out.as_bytes()).await.unwrap();
        for _ in chunk {
            let (code, text) = reply(&mut rd).await;
            assert_eq!(code, 250, "{text}");
        }
    }
    wr.write_all(b"DATA\r\n").await.unwrap();
    assert_eq!(reply(&mut rd).await.0, 354);
    wr.write_all(post_body().as_bytes()).await.unwrap();
    wr.write_all(b".\r\n").await.unwrap();
    let (code, text) = reply(&mut rd).await;
    assert_eq!(code, 250, "{text}");
    let _ = wr.write_all(b"QUIT\r\n").await;
}

/// Peak resident memory of a process (VmHWM), in MiB.
pub fn peak_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// CPU time (user + system) a process has used, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `)` that ends the command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The admin URL of the PostgreSQL the tests use.
pub fn pg_admin() -> String {
    std::env::var("ROOST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database named `name`; returns its URL.
pub async fn pg_create(name: &str) -> String {
    let admin = pg_admin();
    let store = roost::store::Store::connect(&admin)
        .await
        .expect("postgres");
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(store.pool())
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(store.pool())
        .await
        .expect("create db");
    store.close().await;
    format!(
        "{}/{name}",
        admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b)
    )
}

pub async fn pg_drop(name: &str) {
    if let Ok(store) = roost::store::Store::connect(&pg_admin()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(store.pool())
        .await;
        store.close().await;
    }
}

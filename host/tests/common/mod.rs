//! Shared test helpers: real databases (a SQLite file, a fresh PostgreSQL database), the
//! plugin components `make plugins` built, and messages to feed them.
#![allow(dead_code)]

pub mod dns;
pub mod node;
pub mod recorder;

use std::{
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use roost::{
    config::PluginLimits,
    plugins::{Bound, Runtime, RuntimeOptions, wit},
    store::Store,
};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A component built by `make plugins` (test plugins live in target/test-plugins).
pub fn component(name: &str) -> PathBuf {
    for dir in ["target/test-plugins", "target/plugins"] {
        let p = root().join(dir).join(format!("{name}.wasm"));
        if p.is_file() {
            return p;
        }
    }
    panic!("component {name}.wasm not built: run `make plugins` (or `make test`) first");
}

pub struct TestDb {
    pub store: Store,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

// A `move` block captures only the fields it names (edition 2021 on), so a test body that
// uses `db.store` alone would drop `_dir` (and delete the SQLite file's directory) as it
// starts. A type with `Drop` is captured whole.
impl Drop for TestDb {
    fn drop(&mut self) {}
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("roost.db").display());
    let store = Store::connect(&url).await.expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    TestDb {
        store,
        url,
        _dir: Some(dir),
    }
}

/// The server the tests use; `make test` makes sure it runs.
pub fn pg_admin_url() -> String {
    std::env::var("ROOST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh, migrated PostgreSQL database for one test (dropped by the next `make test`).
pub async fn postgres() -> TestDb {
    let url = postgres_empty().await;
    let store = Store::connect(&url).await.expect("open postgres");
    store.migrate().await.expect("migrate postgres");
    TestDb {
        store,
        url,
        _dir: None,
    }
}

/// The URL of a fresh PostgreSQL database with no schema at all.
pub async fn postgres_empty() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let admin_url = pg_admin_url();
    let name = format!(
        "roost_t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let admin = Store::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL not reachable at {admin_url}: {e}; `make test` starts it, or set ROOST_TEST_PG")
    });
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(admin.pool())
        .await
        .expect("create test database");
    admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

/// Run the same async test body against SQLite and PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = common::sqlite().await;
                ($body)(db).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = common::postgres().await;
                ($body)(db).await;
            }
        }
    };
}

/// Run the same async test body, given a database URL, against a SQLite file and a fresh
/// PostgreSQL database (for tests that start real nodes).
#[macro_export]
macro_rules! with_database_urls {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("roost.db").display());
                ($body)(url).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)(common::postgres_empty().await).await;
            }
        }
    };
}

pub fn runtime() -> Runtime {
    Runtime::new(RuntimeOptions {
        instances: 32,
        max_memory: 256 << 20,
        cache_dir: Some(root().join("target/plugin-cache-tests")),
        reuse_instances: true,
    })
    .expect("plugin runtime")
}

pub fn limits(timeout_ms: u64, memory_mib: u64) -> PluginLimits {
    PluginLimits {
        timeout: Duration::from_millis(timeout_ms),
        memory: memory_mib << 20,
        ..Default::default()
    }
}

pub async fn bind(
    rt: &Runtime,
    plugin: &str,
    list: &str,
    config: &str,
    limits: PluginLimits,
    store: Option<Store>,
) -> Bound {
    let loaded = rt.load(&component(plugin)).await.expect("load plugin");
    rt.bind(loaded, list, config.to_string(), limits, store)
}

/// A post with this subject and a plain-text body of `body_len` bytes.
pub fn message(subject: &str, body_len: usize) -> wit::Message {
    let line = "The quick brown fox jumps over the lazy dog, again and again.\r\n";
    let body: Vec<u8> = line.bytes().cycle().take(body_len).collect();
    let headers = vec![
        header("From", "Ann Author <ann@example.org>"),
        header("To", "announce@lists.example.org"),
        header("Subject", subject),
        header("Message-ID", "<test-1@example.org>"),
        header("Date", "Wed, 25 Nov 2026 12:00:00 +0000"),
    ];
    wit::Message {
        id: "post-1".into(),
        list_address: "announce@lists.example.org".into(),
        envelope: wit::Envelope {
            mail_from: "ann@example.org".into(),
            rcpt_to: vec!["announce@lists.example.org".into()],
            client_ip: "127.0.0.1".into(),
            helo: "client.example.org".into(),
        },
        size: body.len() as u64 + 200,
        headers,
        body,
        received_at: 0,
    }
}

fn header(name: &str, value: &str) -> wit::Header {
    wit::Header {
        name: name.into(),
        value: value.into(),
    }
}

pub fn http(path: &str, query: &str, body: &str) -> wit::HttpRequest {
    wit::HttpRequest {
        method: "POST".into(),
        path: path.into(),
        query: query.into(),
        headers: vec![],
        body: body.as_bytes().to_vec(),
    }
}

//! Durable state in one database: SQLite for a single node, PostgreSQL for a cluster.
//!
//! All SQL goes through sqlx's `Any` driver with `$N` placeholders, which both backends
//! accept, so each statement is written once. Where the dialects differ, the statement is
//! chosen by [`Backend`]. Times are milliseconds since the Unix epoch in `BIGINT` columns;
//! flags are 0/1 integers; both decode the same way on either backend.

mod bounces;
mod confirmations;
mod deliveries;
mod events;
mod kv;
mod limits;
mod members;
mod messages;
mod nodes;
mod notices;
mod reports;
mod schedules;
mod settings;
pub mod spool;
mod stats;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{
    AnyPool, Executor,
    any::{AnyPoolOptions, install_default_drivers},
};

pub use bounces::{BounceRow, NewBounce, SentCopy};
pub use confirmations::{Action, Confirmed, Pending};
pub use deliveries::{
    Batch, BatchEnd, DeliveryResult, Outcome, PostForDelivery, QueueLine, Recipient,
};
pub use events::{EventCounts, EventQuery, NewEvent};
pub use kv::{KvEntry, KvQuota, KvScope};
pub use members::{DeliveryStatus, Member, check_address};
pub use messages::{Decision, Job, MessageKind, NewMessage, StoredMessage, Trouble};
pub use nodes::{NameTaken, NodeRow, NodeWork};
pub use notices::{BuiltNotice, Notice, NoticeTarget, PendingNotice, notice_message_id};
pub use reports::{Counts, PostLine, PostReport};
pub use schedules::Occurrence;
pub use spool::Spool;
pub use stats::HourStats;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Invalid(String),
    /// A write that would pass a quota (a plugin's kv keys or bytes).
    #[error("{0}")]
    Quota(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Create a new SQLite database file readable by this user alone (`0600`; SQLite gives
/// its `-wal` and `-shm` files the same mode): it holds every member's address and the
/// key that signs all tokens. An existing file is left as it is.
fn owner_only_file(url: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.starts_with(':') || std::path::Path::new(path).exists() {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Invalid(format!("cannot create {path}: {e}"))),
    }
}

/// Text from outside (a bounce's diagnostic, a subject, a plugin's reason, an error that
/// quotes them) made fit for a text column: NUL removed (PostgreSQL refuses it in `TEXT`,
/// and one such value used to fail the whole transaction it was written in) and at most
/// `max` bytes kept, cut at a character boundary. Borrowed when already fit.
pub fn column_text(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max && !text.contains('\0') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars().filter(|&c| c != '\0') {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    std::borrow::Cow::Owned(out)
}

/// The start of a stored message, enough for its header, where a whole one is not needed
/// (listings, a bounce's proof): a post can be 25 MB.
pub(crate) const RAW_HEAD: &str = "substr(raw, 1, 65536)";

/// Longest reason, error or diagnostic kept in a column.
pub const MAX_REASON: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the shared database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Store {
    /// Open the database at `url` (`sqlite://FILE` or `postgres://...`). A SQLite file is
    /// created when missing and runs in WAL mode with `synchronous=FULL`: a commit is on disk
    /// before anything it acknowledges is acknowledged.
    pub async fn connect(url: &str) -> Result<Store> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Invalid(format!(
                "unsupported database url (want sqlite:// or postgres://): {}",
                redact(url)
            )));
        };
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        let pool = match backend {
            Backend::Sqlite => {
                owner_only_file(url)?;
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                // One connection: SQLite has one writer at a time anyway, and writers that
                // meet on separate connections wait in SQLite's busy handler, which sleeps
                // in steps of milliseconds. Queued on one connection they never sleep.
                // Readers lose nothing that matters here; other processes (the CLI)
                // still meet the node through `busy_timeout`.
                // No ping before each use: a SQLite connection cannot go stale, and the
                // ping is a round trip to sqlx's connection thread, as dear as a statement.
                options
                    .max_connections(1)
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                                 PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Backend::Postgres => options.max_connections(16).connect(url).await?,
        };
        Ok(Store { pool, backend })
    }

    /// Bring the schema up to date (idempotent; safe to run from several nodes at once,
    /// sqlx takes a lock).
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What ends a claim's inner `SELECT`: on PostgreSQL claimers on other nodes skip the
    /// rows one holds instead of waiting; SQLite has one writer and needs nothing.
    pub(crate) fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    /// A statement whose `$N` run in order, in the cheapest form this backend binds
    /// (see [`positional`]).
    pub(crate) fn numbered(&self, sql: String) -> String {
        match self.backend {
            Backend::Sqlite => positional(sql),
            Backend::Postgres => sql,
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `$1 ... $N` rewritten to SQLite's anonymous `?` when each appears once and in order,
/// else `sql` as it is. SQLite looks a named parameter up by walking a list of all of
/// them, and sqlx asks for every parameter's name when it binds, so a statement of
/// thousands of `$N` (a multi-row insert) costs quadratic time; `?` has no name to look
/// up.
pub(crate) fn positional(sql: String) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut expected = 1u64;
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits > 0 {
                let n: u64 = sql[i + 1..i + 1 + digits].parse().unwrap_or(0);
                if n != expected {
                    return sql;
                }
                expected += 1;
                out.push_str(&sql[last..i]);
                out.push('?');
                i += 1 + digits;
                last = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&sql[last..]);
    out
}

/// Milliseconds since the Unix epoch, the unit of every time column.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A database URL fit for logs: the password, if any, replaced.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn placeholders_become_positional_only_in_order() {
        let p = |s: &str| super::positional(s.to_string());
        assert_eq!(p("VALUES ($1, $2), ($3, 'x')"), "VALUES (?, ?), (?, 'x')");
        assert_eq!(p("SET a = $2 WHERE b = $1"), "SET a = $2 WHERE b = $1");
        assert_eq!(p("a = $1 OR b = $1"), "a = $1 OR b = $1");
        assert_eq!(p("price $ 5"), "price $ 5");
        assert_eq!(p("$1$2"), "??");
    }

    /// The database holds every address and the token key: readable by its owner alone,
    /// whatever the umask.
    #[tokio::test]
    async fn a_new_sqlite_file_is_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roost.db");
        let store = super::Store::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let wal = dir.path().join("roost.db-wal");
        if wal.exists() {
            assert_eq!(
                std::fs::metadata(&wal).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}

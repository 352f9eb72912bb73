//! The plugins' key-value store: private to (list, plugin), versioned, with compare-and-swap
//! done as one conditional statement so concurrent callers on any nodes get one winner.

use sqlx::Row;

use super::{Result, Store, StoreError, now_ms};

/// Keys longer than this are refused.
pub const MAX_KEY: usize = 512;
/// Values larger than this are refused.
pub const MAX_VALUE: usize = 1 << 20;

/// Whose keys these are. Node-level plugins use the empty list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvScope {
    pub list: String,
    pub plugin: String,
    pub quota: KvQuota,
}

/// What one plugin may keep for one list (`[limits] kv_keys`, `kv_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    pub keys: u64,
    /// Bytes of values.
    pub bytes: u64,
}

impl Default for KvQuota {
    fn default() -> Self {
        KvQuota {
            keys: 100_000,
            bytes: 256 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    pub value: Vec<u8>,
    pub version: u64,
}

fn check(key: &str, value: Option<&[u8]>) -> Result<()> {
    if key.len() > MAX_KEY {
        return Err(StoreError::Invalid(format!(
            "kv key of {} bytes exceeds {MAX_KEY}",
            key.len()
        )));
    }
    if let Some(v) = value.filter(|v| v.len() > MAX_VALUE) {
        return Err(StoreError::Invalid(format!(
            "kv value of {} bytes exceeds {MAX_VALUE}",
            v.len()
        )));
    }
    Ok(())
}

fn version(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Store {
    pub async fn kv_get(&self, scope: &KvScope, key: &str) -> Result<Option<KvEntry>> {
        check(key, None)?;
        let row = sqlx::query(
            "SELECT value, version FROM plugin_kv WHERE list = $1 AND plugin = $2 AND key = $3",
        )
        .bind(&scope.list)
        .bind(&scope.plugin)
        .bind(key.as_bytes())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| KvEntry {
            value: r.get(0),
            version: version(r.get(1)),
        }))
    }

    /// Store unconditionally; returns the new version.
    pub async fn kv_set(&self, scope: &KvScope, key: &str, value: &[u8]) -> Result<u64> {
        check(key, Some(value))?;
        let mut tx = self.pool().begin().await?;
        let old = self.kv_old_len(&mut tx, scope, key).await?;
        let v: i64 = sqlx::query_scalar(
            "INSERT INTO plugin_kv (list, plugin, key, value, version, updated_at) \
             VALUES ($1, $2, $3, $4, 1, $5) \
             ON CONFLICT (list, plugin, key) DO UPDATE \
             SET value = excluded.value, version = plugin_kv.version + 1, updated_at = excluded.updated_at \
             RETURNING version",
        )
        .bind(&scope.list)
        .bind(&scope.plugin)
        .bind(key.as_bytes())
        .bind(value)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        account(&mut tx, scope, old, Some(value.len())).await?;
        tx.commit().await?;
        Ok(version(v))
    }

    /// Store only when the current version is `expected` (`None`: only when absent).
    /// `Err(current)` when another writer got there first.
    pub async fn kv_compare_and_swap(
        &self,
        scope: &KvScope,
        key: &str,
        expected: Option<u64>,
        value: &[u8],
    ) -> Result<Result<u64, Option<KvEntry>>> {
        check(key, Some(value))?;
        let mut tx = self.pool().begin().await?;
        let old = self.kv_old_len(&mut tx, scope, key).await?;
        let won = match expected {
            None => {
                sqlx::query(
                    "INSERT INTO plugin_kv (list, plugin, key, value, version, updated_at) \
                 VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (list, plugin, key) DO NOTHING",
                )
                .bind(&scope.list)
                .bind(&scope.plugin)
                .bind(key.as_bytes())
                .bind(value)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1
            }
            Some(v) => {
                let v = i64::try_from(v)
                    .map_err(|_| StoreError::Invalid("version out of range".into()))?;
                sqlx::query(
                    "UPDATE plugin_kv SET value = $1, version = version + 1, updated_at = $2 \
                     WHERE list = $3 AND plugin = $4 AND key = $5 AND version = $6",
                )
                .bind(value)
                .bind(now_ms())
                .bind(&scope.list)
                .bind(&scope.plugin)
                .bind(key.as_bytes())
                .bind(v)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1
            }
        };
        if won {
            account(&mut tx, scope, old, Some(value.len())).await?;
        }
        tx.commit().await?;
        if won {
            Ok(Ok(expected.map_or(1, |v| v + 1)))
        } else {
            Ok(Err(self.kv_get(scope, key).await?))
        }
    }

    pub async fn kv_delete(&self, scope: &KvScope, key: &str) -> Result<bool> {
        check(key, None)?;
        let mut tx = self.pool().begin().await?;
        let old = self.kv_old_len(&mut tx, scope, key).await?;
        let n = sqlx::query("DELETE FROM plugin_kv WHERE list = $1 AND plugin = $2 AND key = $3")
            .bind(&scope.list)
            .bind(&scope.plugin)
            .bind(key.as_bytes())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 1 {
            account(&mut tx, scope, old, None).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// The size of the value `key` holds now (`None`: no such key). On PostgreSQL the
    /// plugin's usage row is locked first, for the rest of the transaction: two writers of
    /// one new key would otherwise both see it absent and both count it (a row lock on the
    /// key cannot hold what does not exist yet). SQLite has one writer at a time anyway.
    async fn kv_old_len(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        scope: &KvScope,
        key: &str,
    ) -> Result<Option<i64>> {
        // The usage row's lock serializes this plugin's writes on this list, so the key's
        // own row needs none.
        if self.backend() == super::Backend::Postgres {
            sqlx::query(
                "INSERT INTO plugin_kv_usage (list, plugin, keys, bytes) VALUES ($1, $2, 0, 0) \
                     ON CONFLICT (list, plugin) DO NOTHING",
            )
            .bind(&scope.list)
            .bind(&scope.plugin)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "SELECT keys FROM plugin_kv_usage WHERE list = $1 AND plugin = $2 FOR UPDATE",
            )
            .bind(&scope.list)
            .bind(&scope.plugin)
            .execute(&mut **tx)
            .await?;
        }
        Ok(sqlx::query_scalar(
            "SELECT CAST(LENGTH(value) AS BIGINT) FROM plugin_kv \
             WHERE list = $1 AND plugin = $2 AND key = $3",
        )
        .bind(&scope.list)
        .bind(&scope.plugin)
        .bind(key.as_bytes())
        .fetch_optional(&mut **tx)
        .await?)
    }

    /// Keys with `prefix`, byte-ordered, strictly after `after`, at most `limit` (≤ 1000).
    pub async fn kv_list_keys(
        &self,
        scope: &KvScope,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        check(prefix, None)?;
        // Byte range [prefix, prefix_end): index-friendly, and byte-wise on both backends
        // because keys are stored as bytes.
        let start = after.map_or(prefix.as_bytes(), |a| a.as_bytes().max(prefix.as_bytes()));
        let end = prefix_end(prefix.as_bytes());
        let rows = sqlx::query(
            "SELECT key FROM plugin_kv WHERE list = $1 AND plugin = $2 \
             AND key >= $3 AND key < $4 AND key <> $5 ORDER BY key LIMIT $6",
        )
        .bind(&scope.list)
        .bind(&scope.plugin)
        .bind(start)
        .bind(end)
        .bind(after.unwrap_or("").as_bytes())
        .bind(i64::from(limit.min(1000)))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r.get::<Vec<u8>, _>(0)).into_owned())
            .collect())
    }
}

/// The smallest byte string greater than every string starting with `prefix`. With no such
/// bound (empty prefix, or all 0xFF), a value above any key that `check` lets through.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xFF; MAX_KEY + 1]
}

/// Count a write in the plugin's usage, in its transaction: `old` the value's size before
/// (`None`: the key was new), `new` after (`None`: deleted). A write that would take the
/// plugin past its quota is refused (`StoreError::Quota`) and the caller's transaction,
/// dropped uncommitted, leaves nothing behind. Shrinking is always allowed.
async fn account(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: &KvScope,
    old: Option<i64>,
    new: Option<usize>,
) -> Result<()> {
    let new_len = new.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let keys = i64::from(new.is_some()) - i64::from(old.is_some());
    let bytes = new_len.unwrap_or(0) - old.unwrap_or(0);
    let (max_keys, max_bytes) = (
        i64::try_from(scope.quota.keys).unwrap_or(i64::MAX),
        i64::try_from(scope.quota.bytes).unwrap_or(i64::MAX),
    );
    if keys <= 0 && bytes <= 0 {
        sqlx::query(
            "UPDATE plugin_kv_usage SET keys = keys + $1, bytes = bytes + $2 \
             WHERE list = $3 AND plugin = $4",
        )
        .bind(keys)
        .bind(bytes)
        .bind(&scope.list)
        .bind(&scope.plugin)
        .execute(&mut **tx)
        .await?;
        return Ok(());
    }
    let grew = sqlx::query(
        "INSERT INTO plugin_kv_usage (list, plugin, keys, bytes) \
         SELECT $1, $2, $3, $4 WHERE $3 <= $5 AND $4 <= $6 \
         ON CONFLICT (list, plugin) DO UPDATE \
         SET keys = plugin_kv_usage.keys + $3, bytes = plugin_kv_usage.bytes + $4 \
         WHERE plugin_kv_usage.keys + $3 <= $5 AND plugin_kv_usage.bytes + $4 <= $6",
    )
    .bind(&scope.list)
    .bind(&scope.plugin)
    .bind(keys)
    .bind(bytes)
    .bind(max_keys)
    .bind(max_bytes)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if grew == 0 {
        return Err(StoreError::Quota(format!(
            "kv quota of plugin `{}` on {}: at most {} keys and {} bytes",
            scope.plugin,
            if scope.list.is_empty() {
                "the node"
            } else {
                &scope.list
            },
            scope.quota.keys,
            scope.quota.bytes
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(super::prefix_end(b"ab"), b"ac");
        assert_eq!(super::prefix_end(b"a\xff"), b"b");
        assert_eq!(super::prefix_end(b"").len(), super::MAX_KEY + 1);
    }
}

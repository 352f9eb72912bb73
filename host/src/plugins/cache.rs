//! Compiled components cached on disk, keyed by the component's content hash and the
//! engine's compatibility hash: a node restart (or a second list using the same plugin)
//! deserializes in milliseconds instead of compiling for tens of milliseconds.
//!
//! The directory must be writable by the node alone: a cached artifact is native code that
//! is loaded without re-verification.

use std::{
    hash::{Hash, Hasher},
    io::Write,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, component::Component};

/// Whether a load found a usable artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// No cache directory could be used; compiled in memory only.
    Disabled,
}

pub(super) struct CompileCache {
    dir: Option<PathBuf>,
    engine_hash: String,
}

/// Feeds `Hash` output into SHA-256, so the engine's compatibility hash is stable across
/// processes (std's `DefaultHasher` makes no such promise).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Create the cache directory for this node alone (`0700`), and refuse one that others
/// may write to: whoever can put a file there chooses the native code the node runs.
fn usable_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)?;
    // This process's user owns /proc/self.
    let me = std::fs::metadata("/proc/self")?.uid();
    if meta.uid() != me {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "it belongs to user {}, not to this node's user {me}",
                meta.uid()
            ),
        ));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "it is writable by others (mode {:o}); chmod go-w it",
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

impl CompileCache {
    pub fn new(engine: &Engine, dir: Option<&Path>) -> Self {
        let mut h = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let dir = dir.and_then(|d| match usable_dir(d) {
            Ok(()) => Some(d.to_path_buf()),
            Err(e) => {
                tracing::error!(dir = %d.display(), error = %e, "plugin cache disabled; plugins are compiled at every start");
                None
            }
        });
        CompileCache {
            dir,
            engine_hash: hex::encode(&h.0.finalize()[..8]),
        }
    }

    /// The compiled component for `bytes` (whose SHA-256 is `digest`), from the cache when
    /// a valid artifact is there, else compiled and stored.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(Component, CacheOutcome), wasmtime::Error> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, bytes)?, CacheOutcome::Disabled));
        };
        let file = dir.join(format!("{}-{}.cwasm", &digest[..32], self.engine_hash));
        if file.is_file() {
            // Read into memory rather than map the file: a file truncated under a mapping
            // (an operator clearing the cache) would kill the node with SIGBUS.
            let artifact = std::fs::read(&file).map_err(wasmtime::Error::new)?;
            // SAFETY: the file was written by `store` below from our own compilation with an
            // engine of the same compatibility hash, into a directory only this node writes.
            match unsafe { Component::deserialize(engine, &artifact) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "discarding unusable cached plugin");
                    let _ = std::fs::remove_file(&file);
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        match component.serialize() {
            Ok(artifact) => {
                if let Err(e) = store(&file, &artifact) {
                    tracing::warn!(file = %file.display(), error = %e, "cannot write plugin cache");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot serialize compiled plugin"),
        }
        Ok((component, CacheOutcome::Miss))
    }
}

/// Write via a temporary file and rename, so a crash never leaves half an artifact under
/// the final name.
fn store(file: &Path, artifact: &[u8]) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    // A name of its own per writer: two loads of one component at once must not share it.
    let tmp = file.with_extension(format!(
        "tmp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    f.write_all(artifact)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

/// Hex SHA-256 of a component's bytes.
pub(super) fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    /// Artifacts are native code loaded without checks: the directory is made `0700`, and
    /// one that others may write to is not used.
    #[test]
    fn the_cache_directory_is_the_nodes_alone() {
        let engine = wasmtime::Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("a/b");
        assert!(
            super::CompileCache::new(&engine, Some(&fresh))
                .dir
                .is_some()
        );
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(super::CompileCache::new(&engine, Some(&open)).dir.is_none());
    }
}

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

impl CompileCache {
    pub fn new(engine: &Engine, dir: Option<&Path>) -> Self {
        let mut h = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let dir = dir.and_then(|d| match std::fs::create_dir_all(d) {
            Ok(()) => Some(d.to_path_buf()),
            Err(e) => {
                tracing::warn!(dir = %d.display(), error = %e, "plugin cache disabled: cannot create its directory");
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

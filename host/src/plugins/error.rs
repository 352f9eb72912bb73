//! What can go wrong with a plugin: loading it, and one call of one hook.

use std::{fmt, path::PathBuf, time::Duration};

/// Why a component could not be loaded. Each reads as one line for `roost plugin check`.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a WebAssembly file", path.display())]
    NotWasm { path: PathBuf },
    #[error(
        "{}: a core WebAssembly module, not a component (wrap it with `wasm-tools component new`, or build it with `make plugins`)",
        path.display()
    )]
    CoreModule { path: PathBuf },
    #[error("{}: does not compile: {message}", path.display())]
    Compile { path: PathBuf, message: String },
    #[error("{}: not a roost:list/plugin@0.1.0 component: {message}", path.display())]
    World { path: PathBuf, message: String },
    #[error("{}: bad manifest: {message}", path.display())]
    Manifest { path: PathBuf, message: String },
    #[error("plugin runtime: {0}")]
    Engine(String),
}

/// Why one call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The call ran past its deadline and was interrupted.
    Timeout(Duration),
    /// The plugin tried to grow its memory past the cap (bytes).
    MemoryCap(u64),
    /// The plugin trapped (panic, `unreachable`, stack overflow, bad memory access...).
    Trap(String),
    /// The plugin returned `err(text)`.
    Returned(String),
    /// The plugin answered something the host will not act on.
    Invalid(String),
    /// A host capability failed (e.g. the database); the call was stopped.
    Host(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout(d) => write!(f, "timed out after {}ms", d.as_millis()),
            Failure::MemoryCap(b) => write!(f, "exceeded its memory cap of {} MiB", b >> 20),
            Failure::Trap(m) => write!(f, "trapped: {m}"),
            Failure::Returned(m) => write!(f, "returned an error: {m}"),
            Failure::Invalid(m) => write!(f, "returned an invalid answer: {m}"),
            Failure::Host(m) => write!(f, "stopped by a host failure: {m}"),
        }
    }
}

/// One failed call, naming plugin, list and hook.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin `{plugin}`{} {hook}: {failure}", list_part(list))]
pub struct CallError {
    pub plugin: String,
    /// Empty for node-level plugins.
    pub list: String,
    pub hook: &'static str,
    pub failure: Failure,
}

fn list_part(list: &str) -> String {
    if list.is_empty() {
        String::new()
    } else {
        format!(" (list {list})")
    }
}

/// Raised inside the store when the plugin grows memory past its cap; found again in the
/// error chain to tell a cap hit from other traps.
#[derive(Debug, thiserror::Error)]
#[error("memory cap of {cap} bytes exceeded (asked for {desired})")]
pub(super) struct MemoryCapHit {
    pub cap: u64,
    pub desired: u64,
}

/// Raised by an import when the host cannot serve it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct HostFailure(pub String);

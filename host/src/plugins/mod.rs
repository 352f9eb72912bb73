//! The plugin runtime: WebAssembly components run in a sandbox (wasmtime, component model).
//!
//! This module narrows wasmtime to what Roost needs: load a component once per node
//! (compiled artifacts cached on disk), check it against the `roost:list/plugin` world,
//! and call its hooks with a deadline and a memory cap. It knows no transport: the SMTP,
//! HTTP and delivery modules call it. A plugin's only way out of its sandbox is the imports
//! in `imports.rs`, each confined to the call's list and plugin.

mod bindings;
mod cache;
mod decisions;
mod engine;
mod error;
mod figures;
mod imports;
pub(crate) use imports::member_to_wit;
mod runtime;
mod state;
mod validate;
mod warm;

pub use bindings::roost::list::types as wit;
pub use cache::CacheOutcome;
pub use error::{CallError, Failure, LoadError};
pub use runtime::{Bound, LoadedPlugin, Runtime, RuntimeOptions};
pub use state::Scope;
pub use wit::Hook;

//! What a plugin call carries in its wasmtime `Store`: whose call it is, and its limits.

use std::sync::Arc;

use wasmtime::ResourceLimiter;

use super::error::{HostFailure, MemoryCapHit};
use crate::{config::PluginLimits, store::Store};

/// Who a call acts for. Every import is confined to this list and plugin.
#[derive(Debug)]
pub struct Scope {
    /// The list's address; empty for node-level plugins.
    pub list: String,
    /// The plugin's name (its manifest name).
    pub plugin: String,
    /// The plugin's TOML table, handed over by the `config` import.
    pub config: String,
    pub limits: PluginLimits,
    /// The shared database; `None` where a plugin is only inspected (`roost plugin check`).
    pub store: Option<Store>,
}

/// Most tables wit-bindgen guests have hold a few dozen entries; a table that wants to grow
/// past this is a plugin gone wrong.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Imports that reach the database, per call: each is a round trip the node pays for, and a
/// plugin looping on them within its deadline could otherwise keep the database busy.
pub(super) const MAX_HOST_CALLS: u32 = 10_000;
/// Events one call may record (`events.emit`), and notices it may send (`notify.send`).
pub(super) const MAX_EVENTS: u32 = 200;
pub(super) const MAX_NOTICES: u32 = 10;

pub struct HostState {
    pub(super) scope: Arc<Scope>,
    pub(super) hook: &'static str,
    /// The last line the plugin logged at error level: a panicking guest sends its panic
    /// message there just before it traps, and the call's error repeats it.
    pub(super) last_error: Option<String>,
    pub(super) log_lines: u32,
    /// The most linear memory the instance asked for (bytes), to decide whether to reuse it.
    pub(super) memory_peak: u64,
    /// How confirmation tokens become addresses and links (`None` outside a node).
    pub(super) links: Option<Arc<crate::confirm::Links>>,
    /// The cluster's heartbeat interval and lease, to tell node states (`None` outside a
    /// node).
    pub(super) timing: Option<(std::time::Duration, std::time::Duration)>,
    /// Who sent the post, command or bounced copy in hand: the one address besides the
    /// list's members and owners that `notify.send` may write to in this call.
    pub(super) in_hand: Option<String>,
    /// Database imports, events and notices of this call (see the `MAX_` limits).
    pub(super) host_calls: std::cell::Cell<u32>,
    pub(super) events: u32,
    pub(super) notices: u32,
}

impl HostState {
    pub(super) fn new(scope: Arc<Scope>, hook: &'static str) -> Self {
        HostState {
            scope,
            hook,
            last_error: None,
            log_lines: 0,
            memory_peak: 0,
            links: None,
            timing: None,
            in_hand: None,
            host_calls: std::cell::Cell::new(0),
            events: 0,
            notices: 0,
        }
    }

    /// Reset the per-call parts before a call (a warm instance keeps its store).
    pub(super) fn start_call(&mut self, hook: &'static str) {
        self.hook = hook;
        self.last_error = None;
        self.log_lines = 0;
        self.in_hand = None;
        self.host_calls.set(0);
        self.events = 0;
        self.notices = 0;
    }

    /// The database, for one import; past [`MAX_HOST_CALLS`] in a call the call traps.
    pub(super) fn db(&self) -> wasmtime::Result<&Store> {
        let calls = self.host_calls.get() + 1;
        self.host_calls.set(calls);
        if calls > MAX_HOST_CALLS {
            return Err(wasmtime::Error::new(HostFailure(format!(
                "more than {MAX_HOST_CALLS} database imports in one call"
            ))));
        }
        self.scope
            .store
            .as_ref()
            .ok_or_else(|| wasmtime::Error::new(HostFailure("no database in this context".into())))
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let cap = self.scope.limits.memory;
        self.memory_peak = self.memory_peak.max(desired as u64);
        if desired as u64 > cap {
            // An error (not `Ok(false)`) traps at once, so the guest cannot swallow the
            // failed allocation and carry on in a degraded state.
            return Err(wasmtime::Error::new(MemoryCapHit {
                cap,
                desired: desired as u64,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

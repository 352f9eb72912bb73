//! Warm instances: after a call that ran to its end, the instance (with its store) may serve
//! the next call of the same binding — same list, plugin and config — instead of a fresh
//! instantiation. That cuts the fixed cost of a call several times, which matters for
//! `on-deliver`, called once per recipient.
//!
//! An instance that trapped, timed out or hit its memory cap is never reused. A warm
//! instance serves at most `MAX_WARM_USES` calls and is dropped if it grew past
//! `MAX_WARM_MEMORY`, so a leaky plugin is reset regularly. Plugins are told not to keep
//! state in memory (it may or may not be there next call); `kv` is their memory.

use std::sync::{
    Mutex,
    atomic::{AtomicUsize, Ordering},
};

use wasmtime::Store as WasmStore;

use super::{bindings::Plugin, state::HostState};

/// Calls one warm instance may serve before it is replaced.
pub(super) const MAX_WARM_USES: u32 = 10_000;
/// A warm instance whose memory grew past this is dropped rather than kept.
pub(super) const MAX_WARM_MEMORY: u64 = 8 << 20;
/// Warm instances kept per binding (enough for the calls that overlap on one node).
const MAX_IDLE_PER_BINDING: usize = 4;

pub(super) struct Warm {
    pub store: WasmStore<HostState>,
    pub plugin: Plugin,
    pub uses: u32,
}

/// A binding's idle instances.
#[derive(Default)]
pub(super) struct WarmPool {
    idle: Mutex<Vec<Warm>>,
}

impl WarmPool {
    pub fn take(&self) -> Option<Warm> {
        self.idle.lock().ok()?.pop()
    }

    /// Keep `warm`; false (and `warm` dropped) when this binding has enough already.
    pub fn put(&self, warm: Warm) -> bool {
        match self.idle.lock() {
            Ok(mut idle) if idle.len() < MAX_IDLE_PER_BINDING => {
                idle.push(warm);
                true
            }
            _ => false,
        }
    }
}

/// How many warm instances the whole node may hold (each holds a pool slot).
pub(super) struct IdleBudget {
    left: AtomicUsize,
}

impl IdleBudget {
    pub fn new(max: usize) -> Self {
        IdleBudget {
            left: AtomicUsize::new(max),
        }
    }

    /// Reserve room for one more idle instance.
    pub fn take(&self) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    pub fn give_back(&self) {
        self.left.fetch_add(1, Ordering::AcqRel);
    }
}

//! The node's one wasmtime `Engine`: component model, pooling allocator, epoch deadlines.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::error::LoadError;

/// How often the epoch advances. A call's deadline is a whole number of ticks, so a call is
/// stopped between `timeout - TICK` and `timeout` after it starts.
pub const TICK: Duration = Duration::from_millis(2);

pub(super) fn build(instances: u32, max_memory: u64) -> Result<Engine, LoadError> {
    let mut pool = PoolingAllocationConfig::default();
    // One slot per concurrent call. A plugin component holds a handful of core instances,
    // usually one memory and one table (wit-bindgen output); leave room for a few more.
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(4))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(2))
        .max_memories_per_component(4)
        .max_memory_size(usize::try_from(max_memory).unwrap_or(usize::MAX))
        // Measured on the plugin benchmark: keeping a slot's pages resident (a memset per
        // reuse) was slower than letting them fault in again, so nothing is kept.
        .linear_memory_keep_resident(0)
        .table_keep_resident(0);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .cranelift_opt_level(wasmtime::OptLevel::Speed)
        // A runaway recursion must trap long before it could hurt the host thread.
        .max_wasm_stack(1 << 20);
    Engine::new(&config).map_err(|e| LoadError::Engine(e.to_string()))
}

/// Advances the engine's epoch every [`TICK`] on a thread of its own until dropped, but
/// only while a call is running ([`EpochTicker::running`]): deadlines count from the
/// start of a call, so an idle node need not wake 500 times a second for nothing.
pub(super) struct EpochTicker {
    shared: Arc<Shared>,
    thread: Option<thread::Thread>,
}

struct Shared {
    running: AtomicUsize,
    stop: AtomicBool,
    /// Ticks so far (the engine keeps its epoch to itself).
    ticks: AtomicU64,
}

/// A call under way; the epoch advances while any is alive.
pub(super) struct Running {
    shared: Arc<Shared>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> Self {
        let shared = Arc::new(Shared {
            running: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
        });
        let state = shared.clone();
        let engine = engine.clone();
        let thread = thread::Builder::new()
            .name("roost-epoch".into())
            .spawn(move || {
                while !state.stop.load(Ordering::Acquire) {
                    if state.running.load(Ordering::Acquire) == 0 {
                        // Woken by the first call (an unpark before this park makes it
                        // return at once) or spuriously: either way, look again.
                        thread::park();
                        continue;
                    }
                    thread::sleep(TICK);
                    engine.increment_epoch();
                    state.ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
            .ok()
            .map(|handle| handle.thread().clone());
        EpochTicker { shared, thread }
    }

    /// Count a call as running until the guard is dropped.
    pub fn running(&self) -> Running {
        if self.shared.running.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(t) = &self.thread
        {
            t.unpark();
        }
        Running {
            shared: self.shared.clone(),
        }
    }

    #[cfg(test)]
    fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::Relaxed)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shared.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = &self.thread {
            t.unpark();
        }
    }
}

/// Epoch ticks for a deadline of `timeout` (at least one).
pub(super) fn ticks(timeout: Duration) -> u64 {
    (timeout.as_micros() / TICK.as_micros()).clamp(1, u128::from(u32::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::{EpochTicker, TICK};

    #[test]
    fn the_epoch_advances_only_while_a_call_runs() {
        let ticker = EpochTicker::start(&wasmtime::Engine::default());
        thread::sleep(TICK * 20);
        assert_eq!(ticker.ticks(), 0, "ticked with no call running");
        let running = ticker.running();
        thread::sleep(TICK * 20);
        drop(running);
        let during = ticker.ticks();
        assert!(during >= 5, "{during} ticks in 20 tick lengths of a call");
        // The ticker may be asleep in a tick when the call ends: at most that one more.
        thread::sleep(TICK * 20);
        let after = ticker.ticks();
        assert!(
            after <= during + 1,
            "went on ticking: {during} then {after}"
        );
    }
}

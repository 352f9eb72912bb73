//! The node's one wasmtime `Engine`: component model, pooling allocator, epoch deadlines.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
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

/// Advances the engine's epoch every [`TICK`] on a thread of its own until dropped.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let engine = engine.clone();
        thread::Builder::new()
            .name("roost-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Epoch ticks for a deadline of `timeout` (at least one).
pub(super) fn ticks(timeout: Duration) -> u64 {
    (timeout.as_micros() / TICK.as_micros()).clamp(1, u128::from(u32::MAX)) as u64
}

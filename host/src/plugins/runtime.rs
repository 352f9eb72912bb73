//! Loading components and calling their hooks inside a sandbox with a deadline and a
//! memory cap. Each call gets a fresh store and instance from the pooling allocator, so a
//! call that trapped leaves nothing behind for the next one.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;
use wasmtime::{Engine, Store as WasmStore, Trap, UpdateDeadline, component::Linker};

use super::{
    bindings::{
        Plugin, PluginPre,
        roost::list::types::{
            BounceAction, BounceReport, Command, CommandReply, Edit, Hook, HttpRequest,
            HttpResponse, Message, PostResult, Recipient, Schedule, ScheduledTask,
        },
    },
    cache::{self, CacheOutcome, CompileCache},
    engine::{self, EpochTicker},
    error::{CallError, Failure, HostFailure, LoadError, MemoryCapHit},
    state::{HostState, Scope},
    validate,
    warm::{IdleBudget, MAX_WARM_MEMORY, MAX_WARM_USES, Warm, WarmPool},
};
use crate::{config::PluginLimits, store::Store};

/// How the node's plugin runtime is sized.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Plugin calls that may run at once (pooling allocator slots).
    pub instances: u32,
    /// The largest memory cap any list may set.
    pub max_memory: u64,
    /// Where compiled components are cached; `None` compiles in memory every start.
    pub cache_dir: Option<PathBuf>,
    /// Let a healthy instance serve later calls of the same binding (see `warm.rs`);
    /// `false` instantiates afresh for every call.
    pub reuse_instances: bool,
}

/// A component loaded, compiled and checked against the world.
pub struct LoadedPlugin {
    pub name: String,
    pub version: String,
    pub hooks: Vec<Hook>,
    pub schedules: Vec<Schedule>,
    pub path: PathBuf,
    /// Hex SHA-256 of the component file.
    pub digest: String,
    pub cache: CacheOutcome,
    pre: PluginPre<HostState>,
}

impl LoadedPlugin {
    pub fn implements(&self, hook: Hook) -> bool {
        self.hooks.contains(&hook)
    }

    pub fn hook_names(&self) -> Vec<&'static str> {
        self.hooks.iter().map(|h| h.name()).collect()
    }
}

/// A plugin bound to one list (or the node) with that list's config and limits.
#[derive(Clone)]
pub struct Bound {
    pub plugin: Arc<LoadedPlugin>,
    pub scope: Arc<Scope>,
    warm: Arc<WarmPool>,
}

/// The node's plugin runtime: one engine, one linker, a compile cache and call slots.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Arc<CompileCache>,
    slots: Arc<Semaphore>,
    idle: Arc<IdleBudget>,
    links: std::sync::OnceLock<Arc<crate::confirm::Links>>,
    timing: std::sync::OnceLock<(Duration, Duration)>,
    reuse: bool,
    max_memory: u64,
    loaded: Mutex<HashMap<String, Arc<LoadedPlugin>>>,
    ticker: EpochTicker,
}

/// Between epoch checks a running plugin yields to the scheduler at least this often, so
/// a busy plugin cannot starve SMTP sessions that share its thread.
const SLICE: Duration = Duration::from_millis(10);

/// Calls off the mail path (pages, periodic work, bounces) get at least this long: they read
/// more from the database than a post's plugins do, and nothing waits on them but a browser
/// or a timer. A plugin that loops is still stopped, only later.
const OFF_PATH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one call of `hook` may run.
fn call_timeout(limits: PluginLimits, hook: &str) -> Duration {
    match hook {
        "on-http" | "on-schedule" | "on-bounce" => limits.timeout.max(OFF_PATH_TIMEOUT),
        _ => limits.timeout,
    }
}

/// Deadline of the `manifest` call (no list has set limits yet when it runs).
const MANIFEST_LIMITS: PluginLimits = PluginLimits {
    timeout: Duration::from_secs(1),
    memory: 64 << 20,
    kv_keys: 0,
    kv_bytes: 0,
};

impl Runtime {
    pub fn new(options: RuntimeOptions) -> Result<Self, LoadError> {
        // Warm (idle) instances hold pool slots too: room for as many as may run at once.
        let engine = engine::build(options.instances.saturating_mul(2), options.max_memory)?;
        let mut linker = Linker::new(&engine);
        Plugin::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| LoadError::Engine(e.to_string()))?;
        let cache = Arc::new(CompileCache::new(&engine, options.cache_dir.as_deref()));
        let ticker = EpochTicker::start(&engine);
        Ok(Runtime {
            slots: Arc::new(Semaphore::new(options.instances as usize)),
            idle: Arc::new(IdleBudget::new(options.instances as usize)),
            reuse: options.reuse_instances,
            max_memory: options.max_memory,
            engine,
            linker,
            cache,
            loaded: Mutex::new(HashMap::new()),
            links: std::sync::OnceLock::new(),
            timing: std::sync::OnceLock::new(),
            ticker,
        })
    }

    /// Give plugins the means to make confirmation addresses and links (once, at start).
    pub fn set_links(&self, links: crate::confirm::Links) {
        let _ = self.links.set(Arc::new(links));
    }

    /// The cluster's heartbeat interval and lease, so report imports tell node states as
    /// `roost nodes` does (once, at start).
    pub fn set_cluster_timing(&self, heartbeat: Duration, lease: Duration) {
        let _ = self.timing.set((heartbeat, lease));
    }

    /// Load a component file: compile (or take from the cache), check that it fits the
    /// `roost:list/plugin` world and imports nothing else (no WASI), and read its manifest.
    /// A component already loaded (same bytes) is shared.
    pub async fn load(&self, path: &Path) -> Result<Arc<LoadedPlugin>, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let digest = cache::digest(&bytes);
        if let Some(p) = self.loaded_plugin(&digest) {
            return Ok(p);
        }
        check_header(path, &bytes)?;
        let compile_error = |message: String| LoadError::Compile {
            path: path.to_path_buf(),
            message,
        };
        // Compiling is CPU-heavy (tens of ms or more); keep it off the async workers.
        let (engine, cache, key) = (self.engine.clone(), self.cache.clone(), digest.clone());
        let (component, cache) =
            tokio::task::spawn_blocking(move || cache.load(&engine, &bytes, &key))
                .await
                .map_err(|e| compile_error(e.to_string()))?
                .map_err(|e| compile_error(format!("{e:#}")))?;
        let world = |e: wasmtime::Error| LoadError::World {
            path: path.to_path_buf(),
            message: explain_world_error(&e),
        };
        let pre = PluginPre::new(self.linker.instantiate_pre(&component).map_err(world)?)
            .map_err(world)?;

        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("plugin");
        let scope = Arc::new(Scope {
            list: String::new(),
            plugin: stem.to_string(),
            config: String::new(),
            limits: MANIFEST_LIMITS,
            store: None,
        });
        let bad = |message: String| LoadError::Manifest {
            path: path.to_path_buf(),
            message,
        };
        let _running = self.ticker.running();
        let (mut store, _) = self.prepare(&scope, None, "manifest");
        let manifest = tokio::time::timeout(MANIFEST_LIMITS.timeout, async {
            let plugin = pre.instantiate_async(&mut store).await?;
            plugin.call_manifest(&mut store).await
        })
        .await
        .map_err(|_| bad("timed out".into()))?
        .map_err(|e| bad(format!("{e:#}")))?;
        validate::manifest(&manifest).map_err(bad)?;

        let loaded = Arc::new(LoadedPlugin {
            name: manifest.name,
            version: manifest.version,
            hooks: manifest.hooks,
            schedules: manifest.schedules,
            path: path.to_path_buf(),
            digest: digest.clone(),
            cache,
            pre,
        });
        if let Ok(mut map) = self.loaded.lock() {
            map.insert(digest, loaded.clone());
        }
        Ok(loaded)
    }

    fn loaded_plugin(&self, digest: &str) -> Option<Arc<LoadedPlugin>> {
        self.loaded.lock().ok()?.get(digest).cloned()
    }

    /// Bind a loaded plugin to a list (empty `list` for the node) with its config and limits.
    pub fn bind(
        &self,
        plugin: Arc<LoadedPlugin>,
        list: &str,
        config: String,
        limits: PluginLimits,
        store: Option<Store>,
    ) -> Bound {
        let limits = PluginLimits {
            memory: limits.memory.min(self.max_memory),
            ..limits
        };
        let scope = Arc::new(Scope {
            list: list.to_string(),
            plugin: plugin.name.clone(),
            config,
            limits,
            store,
        });
        Bound {
            plugin,
            scope,
            warm: Arc::new(WarmPool::default()),
        }
    }

    /// A store for one call: a warm one of this binding (its instance healthy after its
    /// last call) or a fresh one, with the scope's memory cap and a deadline enforced by
    /// epoch checks that also yield to the scheduler every [`SLICE`].
    fn prepare(
        &self,
        scope: &Arc<Scope>,
        warm: Option<Warm>,
        hook_name: &'static str,
    ) -> (WasmStore<HostState>, Option<(Plugin, u32)>) {
        let (mut store, reuse) = match warm {
            Some(w) => (w.store, Some((w.plugin, w.uses))),
            None => {
                let mut state = HostState::new(scope.clone(), hook_name);
                state.links = self.links.get().cloned();
                state.timing = self.timing.get().copied();
                let mut store = WasmStore::new(&self.engine, state);
                store.limiter(|s| s);
                (store, None)
            }
        };
        store.data_mut().start_call(hook_name);
        let timeout = call_timeout(scope.limits, hook_name);
        let deadline = Instant::now() + timeout;
        let slice = engine::ticks(SLICE);
        store.set_epoch_deadline(slice.min(engine::ticks(timeout)));
        store.epoch_deadline_callback(move |_| {
            let now = Instant::now();
            if now >= deadline {
                return Err(wasmtime::Error::from(Trap::Interrupt));
            }
            Ok(UpdateDeadline::Yield(
                slice.min(engine::ticks(deadline - now)),
            ))
        });
        (store, reuse)
    }

    /// Keep a healthy instance for the next call of the same binding, within the budget.
    fn park(&self, bound: &Bound, store: WasmStore<HostState>, plugin: Plugin, uses: u32) {
        let healthy_size = store.data().memory_peak <= MAX_WARM_MEMORY;
        let keep = self.reuse && uses < MAX_WARM_USES && healthy_size && self.idle.take();
        if keep
            && !bound.warm.put(Warm {
                store,
                plugin,
                uses,
            })
        {
            self.idle.give_back();
        }
    }

    /// Turn the outcome of a call into the hook's answer or a `CallError`.
    fn finish<T>(
        &self,
        bound: &Bound,
        hook: &'static str,
        store: &WasmStore<HostState>,
        outcome: Result<wasmtime::Result<Result<T, String>>, tokio::time::error::Elapsed>,
    ) -> Result<T, CallError> {
        let failure = match outcome {
            Ok(Ok(Ok(value))) => return Ok(value),
            Ok(Ok(Err(text))) => Failure::Returned(text),
            Ok(Err(e)) => classify(&e, store.data(), call_timeout(bound.scope.limits, hook)),
            Err(_) => Failure::Timeout(call_timeout(bound.scope.limits, hook)),
        };
        Err(self.fail(bound, hook, failure))
    }

    fn fail(&self, bound: &Bound, hook: &'static str, failure: Failure) -> CallError {
        let err = CallError {
            plugin: bound.scope.plugin.clone(),
            list: bound.scope.list.clone(),
            hook,
            failure,
        };
        tracing::warn!(error = %err, "plugin call failed");
        err
    }
}

/// One hook call: slot, store, instance, call, classification. A macro rather than a
/// function because each hook's arguments are borrowed into the call's future, which a
/// higher-ranked closure cannot express without cloning the message.
macro_rules! invoke {
    ($rt:expr, $bound:expr, $hook:expr, |$plugin:ident, $store:ident| $call:expr) => {{
        let (rt, bound, hook): (&Runtime, &Bound, &'static str) = ($rt, $bound, $hook);
        // Waiting for a slot is not the plugin's fault: it happens before its clock starts.
        let permit = rt.slots.clone().acquire_owned().await.ok();
        let started = std::time::Instant::now();
        let running = rt.ticker.running();
        let warm = bound.warm.take().inspect(|_| rt.idle.give_back());
        let (mut store, reuse) = rt.prepare(&bound.scope, warm, hook);
        let uses = reuse.as_ref().map_or(0, |(_, uses)| *uses);
        let pre = &bound.plugin.pre;
        // The epoch deadline stops a plugin that computes; this stops one whose import
        // (say, a database call) hangs. A small margin lets the precise one fire first.
        let backstop = call_timeout(bound.scope.limits, hook) + Duration::from_millis(20);
        let outcome = tokio::time::timeout(backstop, async {
            let instance = match reuse {
                Some((instance, _)) => instance,
                None => pre.instantiate_async(&mut store).await?,
            };
            let answer = {
                let $plugin = &instance;
                let $store = &mut store;
                $call.await
            };
            Ok::<_, wasmtime::Error>((instance, answer))
        })
        .await;
        // Only an instance whose call ran to its end (answer or clean `err`) is reused;
        // anything that trapped, timed out or hit a cap is thrown away with its store.
        // (`check-config` runs once per binding at start: not worth an idle instance.)
        let (instance, outcome) = match outcome {
            Ok(Ok((instance, answer))) => {
                let healthy = answer.is_ok();
                (healthy.then_some(instance), Ok(answer))
            }
            Ok(Err(e)) => (None, Ok(Err(e))),
            Err(elapsed) => (None, Err(elapsed)),
        };
        drop(running);
        let result = rt.finish(bound, hook, &store, outcome);
        crate::metrics::global().plugin_call(
            &bound.scope.plugin,
            hook,
            started.elapsed(),
            result.is_err(),
        );
        match instance {
            Some(instance) if hook != "check-config" => rt.park(bound, store, instance, uses + 1),
            _ => drop(store),
        }
        // The call slot is given back only now: until the store is parked or dropped it
        // holds a pool instance, and the pool is sized for slots plus idle instances.
        drop(permit);
        result
    }};
}

impl Runtime {
    /// Ask the plugin whether its TOML table for this list is valid.
    pub async fn check_config(&self, bound: &Bound) -> Result<(), CallError> {
        let config = bound.scope.config.clone();
        invoke!(self, bound, "check-config", |p, s| p
            .call_check_config(s, &config))
    }

    pub async fn on_post(&self, bound: &Bound, message: &Message) -> Result<PostResult, CallError> {
        let result = invoke!(self, bound, Hook::OnPost.name(), |p, s| {
            s.data_mut().in_hand = Some(message.envelope.mail_from.clone());
            p.call_on_post(s, message)
        })?;
        validate::post_result(&result)
            .map_err(|m| self.fail(bound, Hook::OnPost.name(), Failure::Invalid(m)))?;
        Ok(result)
    }

    pub async fn on_deliver(
        &self,
        bound: &Bound,
        message: &Message,
        recipient: &Recipient,
    ) -> Result<Vec<Edit>, CallError> {
        let edits = invoke!(self, bound, Hook::OnDeliver.name(), |p, s| p
            .call_on_deliver(s, message, recipient))?;
        validate::edits(&edits)
            .map_err(|m| self.fail(bound, Hook::OnDeliver.name(), Failure::Invalid(m)))?;
        Ok(edits)
    }

    pub async fn on_bounce(
        &self,
        bound: &Bound,
        report: &BounceReport,
    ) -> Result<BounceAction, CallError> {
        invoke!(self, bound, Hook::OnBounce.name(), |p, s| {
            // The copy went to one address: the one the plugin may warn or probe.
            s.data_mut().in_hand = report.recipients.first().map(|r| r.address.clone());
            p.call_on_bounce(s, report)
        })
    }

    pub async fn on_command(
        &self,
        bound: &Bound,
        command: &Command,
    ) -> Result<CommandReply, CallError> {
        let reply = invoke!(self, bound, Hook::OnCommand.name(), |p, s| {
            s.data_mut().in_hand = Some(command.sender.clone());
            p.call_on_command(s, command)
        })?;
        validate::command_reply(&reply)
            .map_err(|m| self.fail(bound, Hook::OnCommand.name(), Failure::Invalid(m)))?;
        Ok(reply)
    }

    pub async fn on_http(
        &self,
        bound: &Bound,
        request: &HttpRequest,
    ) -> Result<HttpResponse, CallError> {
        let response = invoke!(self, bound, Hook::OnHttp.name(), |p, s| p
            .call_on_http(s, request))?;
        validate::http_response(&response)
            .map_err(|m| self.fail(bound, Hook::OnHttp.name(), Failure::Invalid(m)))?;
        Ok(response)
    }

    pub async fn on_schedule(&self, bound: &Bound, task: &ScheduledTask) -> Result<(), CallError> {
        invoke!(self, bound, Hook::OnSchedule.name(), |p, s| p
            .call_on_schedule(s, task))
    }
}

/// Tell a timeout, a memory-cap hit and a host failure apart from other traps.
fn classify(e: &wasmtime::Error, state: &HostState, timeout: Duration) -> Failure {
    for cause in e.chain() {
        if let Some(hit) = cause.downcast_ref::<MemoryCapHit>() {
            return Failure::MemoryCap(hit.cap);
        }
        if let Some(h) = cause.downcast_ref::<HostFailure>() {
            return Failure::Host(h.0.clone());
        }
        if let Some(Trap::Interrupt) = cause.downcast_ref::<Trap>() {
            return Failure::Timeout(timeout);
        }
    }
    let what = e
        .chain()
        .find_map(|c| c.downcast_ref::<Trap>().map(|t| t.to_string()))
        .unwrap_or_else(|| e.to_string());
    match &state.last_error {
        Some(said) => Failure::Trap(format!("{what} (plugin said: {said})")),
        None => Failure::Trap(what),
    }
}

/// The first bytes tell a component from a core module from anything else.
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm {
            path: path.to_path_buf(),
        });
    }
    // Core modules are version 1 layer 0; components carry layer 1 in bytes 6..8.
    if bytes[6..8] == [0, 0] {
        return Err(LoadError::CoreModule {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Say plainly when a component wants WASI or another world version: the usual mistakes.
fn explain_world_error(e: &wasmtime::Error) -> String {
    let text = format!("{e:#}");
    if text.contains("wasi:") {
        format!(
            "it imports WASI, which Roost does not provide (plugins get no files, sockets or environment; build for wasm32-unknown-unknown): {text}"
        )
    } else {
        text
    }
}

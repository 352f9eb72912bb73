//! Cost of a plugin hook call (fresh instance from the pooling allocator + call), and of
//! loading a plugin at node start with and without the compile cache.
//!
//! Run with `make bench` (builds the plugins first). Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use roost::{
    config::PluginLimits,
    plugins::{Bound, Runtime, RuntimeOptions, wit},
};

const WARMUP: usize = 300;
const RUNS: usize = 5_000;

// The tests' helpers: components from `make plugins`, and a post of a given body size.
#[path = "../tests/common/mod.rs"]
mod common;
use common::component;

fn message(body_len: usize) -> wit::Message {
    common::message("Benchmark post", body_len)
}

struct Figures {
    median: Duration,
    p99: Duration,
    mean: Duration,
}

fn figures(mut samples: Vec<Duration>) -> Figures {
    samples.sort_unstable();
    let total: Duration = samples.iter().sum();
    Figures {
        median: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
        mean: total / samples.len() as u32,
    }
}

async fn time_on_post(rt: &Runtime, b: &Bound, msg: &wit::Message) -> Figures {
    for _ in 0..WARMUP {
        rt.on_post(b, msg).await.expect("call");
    }
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        let r = rt.on_post(b, msg).await.expect("call");
        samples.push(t.elapsed());
        std::hint::black_box(r);
    }
    figures(samples)
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

#[tokio::main]
async fn main() {
    let cache = tempfile::tempdir().expect("temp dir");
    let options = RuntimeOptions {
        instances: 64,
        max_memory: 256 << 20,
        cache_dir: Some(cache.path().to_path_buf()),
        reuse_instances: false,
    };
    let limits = PluginLimits::default();

    // Node start: compile (cold) versus the on-disk cache (warm), each in a new runtime.
    let tag = component("subject-tag");
    let t = Instant::now();
    let cold = Runtime::new(options.clone()).expect("runtime");
    cold.load(&tag).await.expect("load");
    let cold_ms = t.elapsed();
    let mut warm = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let rt = Runtime::new(options.clone()).expect("runtime");
        let p = rt.load(&tag).await.expect("load");
        assert_eq!(p.cache, roost::plugins::CacheOutcome::Hit);
        warm.push(t.elapsed());
    }
    let warm = figures(warm);

    let mut table = Vec::new();
    for reuse in [false, true] {
        let rt = Runtime::new(RuntimeOptions {
            reuse_instances: reuse,
            ..options.clone()
        })
        .expect("runtime");
        let tag_plugin = rt.load(&tag).await.expect("load");
        let list = "announce@lists.example.org";
        let tagger = rt.bind(
            tag_plugin,
            list,
            "tag = \"[announce]\"".into(),
            limits,
            None,
        );
        let probe_plugin = rt.load(&component("probe")).await.expect("load");
        let empty = rt.bind(probe_plugin, list, String::new(), limits, None);
        let how = if reuse {
            "warm instance"
        } else {
            "fresh instance"
        };
        table.push((
            format!("{how}: empty hook (probe), 0 B"),
            time_on_post(&rt, &empty, &message(0)).await,
        ));
        table.push((
            format!("{how}: empty hook (probe), 4 KB"),
            time_on_post(&rt, &empty, &message(4 << 10)).await,
        ));
        table.push((
            format!("{how}: subject-tag, 4 KB"),
            time_on_post(&rt, &tagger, &message(4 << 10)).await,
        ));
        table.push((
            format!("{how}: subject-tag, 100 KB"),
            time_on_post(&rt, &tagger, &message(100 << 10)).await,
        ));
    }

    println!();
    println!(
        "on-post hook call: fresh instance = instantiate from InstancePre (pooling allocator)"
    );
    println!("+ call + answer check; warm instance = the same on an instance kept from an earlier");
    println!(
        "call of the same list (the node's default). {RUNS} calls each after {WARMUP} warm-up calls."
    );
    println!();
    println!(
        "{:<44} {:>10} {:>10} {:>10}",
        "case", "median µs", "p99 µs", "mean µs"
    );
    for (name, f) in &table {
        println!(
            "{:<44} {:>10} {:>10} {:>10}",
            name,
            us(f.median),
            us(f.p99),
            us(f.mean)
        );
    }
    println!();
    println!(
        "node start, subject-tag.wasm ({} KB):",
        std::fs::metadata(&tag).map_or(0, |m| m.len() >> 10)
    );
    println!(
        "  compile, cold cache:        {:>8.1} ms",
        cold_ms.as_secs_f64() * 1e3
    );
    println!(
        "  compile-cache hit (median): {:>8.1} ms  (p99 {:.1} ms, includes creating the engine)",
        warm.median.as_secs_f64() * 1e3,
        warm.p99.as_secs_f64() * 1e3
    );
}

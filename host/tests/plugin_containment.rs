//! A plugin that loops, eats memory, panics, traps, overflows its stack or answers nonsense
//! fails that one call with an error naming plugin, hook and reason, within its deadline;
//! other calls go on, and the next call of the same plugin works. Real hostile components
//! (tests/plugins/hostile) run in the real runtime.

mod common;

use std::time::{Duration, Instant};

use roost::plugins::{Bound, CallError, Failure, LoadError, Runtime, wit};

const LIST: &str = "announce@lists.example.org";

async fn hostile(rt: &Runtime, timeout_ms: u64, memory_mib: u64) -> Bound {
    common::bind(
        rt,
        "hostile",
        LIST,
        "",
        common::limits(timeout_ms, memory_mib),
        None,
    )
    .await
}

async fn post(rt: &Runtime, b: &Bound, subject: &str) -> Result<wit::PostResult, CallError> {
    rt.on_post(b, &common::message(subject, 512)).await
}

/// The plugin still answers normally.
async fn assert_recovers(rt: &Runtime, b: &Bound) {
    let r = post(rt, b, "hello").await.expect("the next call works");
    assert!(matches!(r.verdict, wit::Verdict::Continue));
    assert!(
        matches!(&r.edits[..], [wit::Edit::AddHeader(h)] if h.value == "survived"),
        "{:?}",
        r.edits
    );
}

fn assert_names_plugin_and_hook(e: &CallError) {
    let text = e.to_string();
    assert!(
        text.starts_with("plugin `hostile` (list announce@lists.example.org) on-post: "),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_is_stopped_at_its_deadline() {
    let rt = common::runtime();
    let b = hostile(&rt, 100, 64).await;
    let started = Instant::now();
    let e = post(&rt, &b, "loop").await.expect_err("a loop must fail");
    let took = started.elapsed();
    assert_eq!(e.failure, Failure::Timeout(Duration::from_millis(100)));
    assert!(e.to_string().ends_with("timed out after 100ms"), "{e}");
    assert_names_plugin_and_hook(&e);
    assert!(
        took >= Duration::from_millis(90),
        "stopped too early: {took:?}"
    );
    assert!(
        took < Duration::from_millis(600),
        "stopped too late: {took:?}"
    );
    assert_recovers(&rt, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_is_per_list() {
    let rt = common::runtime();
    let b = hostile(&rt, 300, 64).await;
    let started = Instant::now();
    let e = post(&rt, &b, "loop").await.expect_err("a loop must fail");
    assert_eq!(e.failure, Failure::Timeout(Duration::from_millis(300)));
    assert!(started.elapsed() >= Duration::from_millis(280));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_past_the_cap_fails_the_call() {
    let rt = common::runtime();
    let b = hostile(&rt, 2_000, 16).await;
    let e = post(&rt, &b, "alloc").await.expect_err("must hit the cap");
    assert_eq!(e.failure, Failure::MemoryCap(16 << 20), "{e}");
    assert!(e.to_string().contains("memory cap of 16 MiB"), "{e}");
    assert_names_plugin_and_hook(&e);
    assert_recovers(&rt, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_memory_cap_is_64_mib() {
    let rt = common::runtime();
    let loaded = rt.load(&common::component("hostile")).await.unwrap();
    // A long deadline: filling 64 MiB must not race the clock on a busy machine.
    let limits = roost::config::PluginLimits {
        timeout: Duration::from_secs(5),
        ..Default::default()
    };
    assert_eq!(limits.memory, 64 << 20);
    let b = rt.bind(loaded, LIST, String::new(), limits, None);
    let e = post(&rt, &b, "alloc").await.expect_err("must hit the cap");
    assert_eq!(e.failure, Failure::MemoryCap(64 << 20), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_trap_that_keeps_its_message() {
    let rt = common::runtime();
    let b = hostile(&rt, 1_000, 64).await;
    let e = post(&rt, &b, "panic").await.expect_err("a panic must fail");
    let Failure::Trap(why) = &e.failure else {
        panic!("want a trap, got {e}")
    };
    assert!(why.contains("hostile plugin panicked on purpose"), "{e}");
    assert_names_plugin_and_hook(&e);
    assert_recovers(&rt, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_and_stack_overflows_are_contained() {
    let rt = common::runtime();
    let b = hostile(&rt, 1_000, 64).await;
    let e = post(&rt, &b, "trap")
        .await
        .expect_err("unreachable must fail");
    assert!(
        matches!(&e.failure, Failure::Trap(w) if w.contains("unreachable")),
        "{e}"
    );
    assert_recovers(&rt, &b).await;
    // Rust guests keep their stack in linear memory: running off its end is an
    // out-of-bounds access; exhausting wasmtime's own stack is "call stack exhausted".
    let e = post(&rt, &b, "stack")
        .await
        .expect_err("overflow must fail");
    assert!(
        matches!(&e.failure, Failure::Trap(w) if w.contains("out of bounds") || w.contains("stack")),
        "{e}"
    );
    assert_recovers(&rt, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_nonsense_answers_fail_cleanly() {
    let rt = common::runtime();
    let b = hostile(&rt, 1_000, 64).await;
    let e = post(&rt, &b, "error").await.unwrap_err();
    assert_eq!(e.failure, Failure::Returned("refusing on purpose".into()));
    let e = post(&rt, &b, "bad-code").await.unwrap_err();
    assert!(
        matches!(&e.failure, Failure::Invalid(w) if w.contains("250")),
        "{e}"
    );
    let e = post(&rt, &b, "bad-header").await.unwrap_err();
    assert!(
        matches!(&e.failure, Failure::Invalid(w) if w.contains("line break")),
        "{e}"
    );
    assert_names_plugin_and_hook(&e);
    assert_recovers(&rt, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_calls_are_served_while_a_plugin_spins() {
    let rt = std::sync::Arc::new(common::runtime());
    let spinning = hostile(&rt, 800, 64).await;
    let healthy = hostile(&rt, 800, 64).await;
    let spin = {
        let rt = rt.clone();
        tokio::spawn(async move { post(&rt, &spinning, "loop").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    for _ in 0..20 {
        assert_recovers(&rt, &healthy).await;
    }
    let served_in = started.elapsed();
    assert!(
        !spin.is_finished(),
        "the spinning call ended before the others were served"
    );
    let e = spin.await.unwrap().expect_err("the loop times out");
    assert!(matches!(e.failure, Failure::Timeout(_)));
    assert!(served_in < Duration::from_millis(700), "{served_in:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_reach_files_network_or_environment() {
    let rt = common::runtime();
    let b = hostile(&rt, 1_000, 64).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let marker = std::path::Path::new("/tmp/roost-hostile-was-here");
    let _ = std::fs::remove_file(marker);
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe { std::env::set_var("HOME", "/root-visible-to-host") };

    let r = post(&rt, &b, &format!("escape {addr}"))
        .await
        .expect("escape attempt runs");
    let wit::Verdict::Hold(report) = r.verdict else {
        panic!("want a report")
    };
    assert_eq!(
        report,
        "fs-read=denied fs-write=denied env=denied net=denied"
    );
    assert!(!marker.exists(), "the plugin wrote a file");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the plugin opened a connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_that_import_wasi_are_refused() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasi.wasm");
    let wasm = wat::parse_str(
        r#"(component
             (import "wasi:cli/environment@0.2.0" (instance
               (export "get-environment" (func (result (list (tuple string string)))))))
           )"#,
    )
    .unwrap();
    std::fs::write(&path, wasm).unwrap();
    let e = rt.load(&path).await.err().expect("must be refused");
    assert!(matches!(e, LoadError::World { .. }), "{e}");
    assert!(e.to_string().contains("imports WASI"), "{e}");

    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, wat::parse_str("(component)").unwrap()).unwrap();
    let e = rt.load(&empty).await.err().expect("must be refused");
    assert!(
        e.to_string()
            .contains("not a roost:list/plugin@0.1.0 component"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compile_cache_is_reused_and_survives_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let opts = roost::plugins::RuntimeOptions {
        instances: 4,
        max_memory: 128 << 20,
        cache_dir: Some(dir.path().to_path_buf()),
        reuse_instances: true,
    };
    let path = common::component("subject-tag");
    let first = Runtime::new(opts.clone())
        .unwrap()
        .load(&path)
        .await
        .unwrap();
    assert_eq!(first.cache, roost::plugins::CacheOutcome::Miss);
    let second = Runtime::new(opts.clone())
        .unwrap()
        .load(&path)
        .await
        .unwrap();
    assert_eq!(second.cache, roost::plugins::CacheOutcome::Hit);

    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let rt = Runtime::new(opts).unwrap();
    let third = rt.load(&path).await.unwrap();
    assert_eq!(third.cache, roost::plugins::CacheOutcome::Miss);
    let b = rt.bind(
        third,
        LIST,
        "tag = \"[x]\"".into(),
        Default::default(),
        None,
    );
    let r = rt.on_post(&b, &common::message("hi", 10)).await.unwrap();
    assert!(matches!(&r.edits[..], [wit::Edit::SubjectPrefix(p)] if p == "[x] "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_instances_are_reused_and_failed_ones_never() {
    let rt = common::runtime();
    let b = hostile(&rt, 1_000, 64).await;
    let calls = |r: wit::PostResult| match r.verdict {
        wit::Verdict::Hold(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(calls(post(&rt, &b, "count").await.unwrap()), "calls=1");
    assert_eq!(calls(post(&rt, &b, "count").await.unwrap()), "calls=2");
    post(&rt, &b, "panic").await.expect_err("traps");
    assert_eq!(
        calls(post(&rt, &b, "count").await.unwrap()),
        "calls=1",
        "a fresh instance after a trap"
    );
    post(&rt, &b, "loop").await.expect_err("times out");
    assert_eq!(
        calls(post(&rt, &b, "count").await.unwrap()),
        "calls=1",
        "a fresh instance after a timeout"
    );
    // Another list's binding never sees this one's instances.
    let other = common::bind(
        &rt,
        "hostile",
        "other@lists.example.org",
        "",
        common::limits(1_000, 64),
        None,
    )
    .await;
    assert_eq!(calls(post(&rt, &other, "count").await.unwrap()), "calls=1");
}

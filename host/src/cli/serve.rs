//! `roost serve`: start a node and run it until told to stop.

use std::{path::Path, sync::Arc, time::Instant};

use anyhow::Context;
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    sync::{Mutex, mpsc, watch},
};
use tracing::Instrument;

use super::{load_config, open_store, runtime_for};
use crate::{
    cluster::Membership,
    delivery::Delivery,
    http::HttpState,
    pipeline::{Chains, Processor},
    smtp::{self, Directory, Intake, LocalWork},
    store::{Backend, Spool},
    tokens::TokenKey,
};

/// Processing workers per node (each claims its own batches).
const PROCESSORS: usize = 2;
/// Posts waiting in memory for this node's processors; beyond it, posts wait in the
/// database for a claim instead.
const LOCAL_QUEUE: usize = 10_000;
/// How long SQLite's intake writer may wait for messages of SMTP transactions under way
/// (`store::spool`): measured back to back, 1 ms took groups from ~3.8 to ~7 messages and
/// intake from ~3,400 to ~3,700 msg/s with 11% less CPU; 2 and 4 ms made groups no bigger.
const GATHER: std::time::Duration = std::time::Duration::from_millis(1);

/// Shortest `ROOST_TOKEN_KEY` taken (the key made in the database is 32 random bytes).
const MIN_TOKEN_KEY: usize = 32;

/// Delete events older than `retention`, a batch at a time, once a minute after start and
/// then every hour (every node does it; a batch another node deleted is simply gone).
async fn prune_events(
    store: crate::store::Store,
    retention: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    const BATCH: u32 = 10_000;
    let mut wait = std::time::Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        wait = std::time::Duration::from_secs(3600);
        let before =
            crate::store::now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let mut pruned = 0;
        loop {
            match store.prune_events(before, BATCH).await {
                Ok(n) => {
                    pruned += n;
                    if n < u64::from(BATCH) || *stop.borrow() {
                        break;
                    }
                    // Between batches, let other writers in (SQLite has one).
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prune old events");
                    break;
                }
            }
        }
        if pruned > 0 {
            tracing::info!(events = pruned, "old events pruned");
        }
    }
}

pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let span = tracing::info_span!("node", name = %config.node.name);
    serve(config).instrument(span).await
}

async fn serve(config: crate::config::Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let node = config.node.name.clone();
    let given_key = match std::env::var("ROOST_TOKEN_KEY") {
        // A short key could be guessed: every token it signs (unsubscribe, VERP,
        // confirmation) would then be forgeable.
        Ok(k) if !k.is_empty() && k.len() < MIN_TOKEN_KEY => {
            return Err(crate::cli::UsageError(format!(
                "ROOST_TOKEN_KEY must be at least {MIN_TOKEN_KEY} bytes (it is {}); \
                 `head -c 32 /dev/urandom | base64` makes one",
                k.len()
            ))
            .into());
        }
        Ok(k) if !k.is_empty() => Some(k.into_bytes()),
        _ => None,
    };

    let store = open_store(&config).await?;
    let runtime = Arc::new(runtime_for(&config)?);
    let chains = Arc::new(Chains::load(&runtime, &config, Some(store.clone())).await?);
    let tls = match &config.node.smtp.tls {
        Some((cert, key)) => Some(smtp::acceptor(cert, key)?),
        None => None,
    };

    // Listen before saying ready: a port in use is a start-up failure, not a later surprise.
    let mut listeners = Vec::new();
    for addr in &config.node.smtp.listen {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for SMTP on {addr}"))?;
        listeners.push(l);
    }

    let http_listener = TcpListener::bind(config.node.http.listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.node.http.listen))?;
    let metrics_listener = match config.node.http.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for /metrics on {addr}"))?,
        ),
        None => None,
    };

    // Hold the node name first: only then is it safe to take back this name's leases.
    let membership = Membership::join(
        store.clone(),
        &node,
        &config.node.machine,
        config.node.lease,
    )
    .await?;
    // Work this node had leased when it last stopped is free again at once.
    let released = store.release_leases_of(&node).await?;
    if released > 0 {
        tracing::info!(jobs = released, "took back work leased before a restart");
    }

    // Tokens (VERP, unsubscribe, tracking) are signed with one key for the whole cluster.
    let key = match given_key {
        Some(k) => k,
        None => store.token_key().await?,
    };
    let keys = TokenKey::new(&key);
    let links = Arc::new(crate::confirm::Links {
        keys: keys.clone(),
        public_url: config.node.http.public_url.clone(),
    });
    runtime.set_links((*links).clone());
    runtime.set_cluster_timing(config.node.heartbeat, config.node.lease);
    let (delivery, recorder) = Delivery::new(
        &config,
        store.clone(),
        runtime.clone(),
        &chains,
        keys.clone(),
    )?;
    let http = Arc::new(HttpState {
        store: store.clone(),
        node: node.clone(),
        lists: config
            .lists
            .iter()
            .map(|l| (l.address.clone(), l.clone()))
            .collect(),
        keys: keys.clone(),
        public_url: config.node.http.public_url.clone(),
        api_token: config.node.http.api_token.clone(),
        runtime: runtime.clone(),
        chains: chains.clone(),
        links: Default::default(),
        events: crate::http::EventSpool::start(store.clone()),
        max_body: usize::try_from(config.node.http.limits.max_body).unwrap_or(usize::MAX),
        metrics_apart: config.node.http.metrics_listen.is_some(),
        recent: Default::default(),
    });

    let (writers, gather) = match store.backend() {
        Backend::Sqlite => (1, GATHER),
        Backend::Postgres => (4, std::time::Duration::ZERO),
    };
    let spool = Spool::start(store.clone(), writers, gather);
    let (queue, local) = mpsc::channel(LOCAL_QUEUE);
    let intake = Arc::new(Intake::new(
        config.node.smtp.clone(),
        Directory::new(&config.lists, Some(keys.clone())),
        spool,
        node.clone(),
        config.node.hostname.clone(),
        tls,
        Some(LocalWork {
            queue,
            lease: config.node.lease,
        }),
    ));
    let (stop, stopped) = watch::channel(false);
    let stop = std::sync::Arc::new(stop);
    let mut tasks = Vec::new();
    tasks.push(crate::spawn(membership.run(
        config.node.heartbeat,
        stop.clone(),
        stopped.clone(),
    )));
    for l in listeners {
        tasks.push(crate::spawn(intake.clone().serve(l, stopped.clone())));
    }
    let bounces = Arc::new(crate::bounces::BounceHandler {
        store: store.clone(),
        runtime: runtime.clone(),
        chains: chains.clone(),
        node: node.clone(),
        lease: config.node.lease,
        wake: Arc::new(tokio::sync::Notify::new()),
    });
    let processor = Arc::new(Processor {
        store: store.clone(),
        runtime: runtime.clone(),
        chains: chains.clone(),
        lists: config
            .lists
            .iter()
            .map(|l| (l.address.clone(), l.clone()))
            .collect(),
        node: node.clone(),
        lease: config.node.lease,
        local: Mutex::new(local),
        intake: intake.spool.activity(),
        delivery: Some(delivery.wake.clone()),
        bounces: Some(bounces.wake.clone()),
        links: Some(links),
        auth: Some(Arc::new(crate::pipeline::auth::Authenticator::new(
            &config.node.delivery.nameservers,
            &config.node.hostname,
            config.node.lease,
        ))),
    });
    for _ in 0..PROCESSORS {
        tasks.push(crate::spawn(processor.clone().run(stopped.clone())));
    }
    tasks.push(crate::spawn(delivery.clone().run(stopped.clone())));
    tasks.push(crate::spawn(bounces.run(stopped.clone())));
    tasks.push(crate::spawn(crate::counter::run(
        store.clone(),
        stopped.clone(),
    )));
    tasks.push(crate::spawn(
        crate::scheduler::Scheduler {
            store: store.clone(),
            runtime: runtime.clone(),
            chains: chains.clone(),
            node: node.clone(),
            lease: config.node.lease,
        }
        .run(stopped.clone()),
    ));
    if let Some(listener) = metrics_listener {
        tasks.push(crate::spawn(crate::http::serve_metrics(
            listener,
            http.clone(),
            config.node.http.limits,
            stopped.clone(),
        )));
    }
    tasks.push(crate::spawn(prune_events(
        store.clone(),
        config.node.http.events_retention,
        stopped.clone(),
    )));
    tasks.push(crate::spawn(crate::http::serve(
        http_listener,
        http,
        config.node.http.limits,
        stopped.clone(),
    )));
    // The recorder ends when the last holder of the delivery is gone: the tasks above.
    drop(delivery);

    // Handlers are in place before "ready" is said: a SIGTERM sent the moment a supervisor
    // (or a test) reads that line must stop the node cleanly, not kill it.
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let listen: Vec<String> = config
        .node
        .smtp
        .listen
        .iter()
        .map(|a| a.to_string())
        .collect();
    tracing::info!(
        lists = config.lists.len(),
        plugins = chains.plugin_count(),
        smtp = %listen.join(","),
        database = %crate::store::redact(&config.node.database_url),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "node ready"
    );
    println!(
        "roost node {node} ready: {} list(s), {} plugin(s), SMTP on {}, HTTP on {} ({} ms)",
        config.lists.len(),
        chains.plugin_count(),
        listen.join(", "),
        config.node.http.listen,
        started.elapsed().as_millis()
    );
    for list in &config.lists {
        let names: Vec<&str> = list.plugins.iter().map(|p| p.name.as_str()).collect();
        let chain = if names.is_empty() {
            "(no plugins)".to_string()
        } else {
            names.join(" -> ")
        };
        println!("  {}: {chain}", list.address);
    }

    let mut lost = stopped.clone();
    tokio::select! {
        _ = interrupt.recv() => {},
        _ = term.recv() => {},
        // The node lost its name to another process (see `cluster::Membership::run`).
        _ = lost.changed() => {},
    }
    tracing::info!("stopping");
    let _ = stop.send(true);
    intake.drain(std::time::Duration::from_secs(10)).await;
    for mut t in tasks {
        if tokio::time::timeout(std::time::Duration::from_secs(10), &mut t)
            .await
            .is_err()
        {
            // Stopped for good before its leases are released, so nothing records work
            // that another node may already be doing.
            t.abort();
            let _ = t.await;
        }
    }
    // Every outcome of a copy sent is written before the leases go: that is what keeps a
    // restart from sending it again.
    if tokio::time::timeout(std::time::Duration::from_secs(10), recorder)
        .await
        .is_err()
    {
        tracing::warn!("delivery outcomes not all recorded; those copies may be sent again");
    }
    // Nothing of this node works any more: what it still had leased (posts handed over but
    // not yet processed) is free for other nodes now rather than when the lease runs out.
    match store.release_leases_of(&node).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "released leased work"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot release leased work; it frees when the lease runs out")
        }
    }
    store.close().await;
    Ok(())
}

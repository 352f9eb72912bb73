//! The cluster, seen from one node: every node registers its name in the shared database
//! and heartbeats; a name is held by one running process at a time. Work itself is shared
//! through leased job rows (see `store::messages`), never through node-to-node messages.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::{NameTaken, NodeRow, Store, StoreError, now_ms};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "node name `{name}` is in use by a running node (host {}, pid {}, last heartbeat {} ms ago); give this node another [node] name",
        taken.hostname, taken.pid, taken.heartbeat_age_ms
    )]
    NameInUse { name: String, taken: NameTaken },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This process's hold on its node name.
pub struct Membership {
    store: Store,
    pub name: String,
    instance: String,
}

impl Membership {
    /// Register `name` for this process on `machine` (its host name); refused while another
    /// process holds it with a heartbeat younger than `dead_after`. A stopped node frees its
    /// name at once, and so does one that died on this same machine (its process is gone),
    /// so a node restarted after a crash need not wait for its old heartbeat to age out.
    pub async fn join(
        store: Store,
        name: &str,
        machine: &str,
        dead_after: Duration,
    ) -> Result<Self, ClusterError> {
        let instance = uuid::Uuid::now_v7().simple().to_string();
        let dead_after_ms = i64::try_from(dead_after.as_millis()).unwrap_or(i64::MAX);
        let refused = match store
            .register_node(name, &instance, machine, dead_after_ms)
            .await?
        {
            Ok(()) => None,
            Err(taken) if taken.hostname == machine && !process_alive(taken.pid) => {
                if store.take_over_node(name, &instance, &taken).await? {
                    tracing::info!(
                        node = name,
                        old_pid = taken.pid,
                        "took over the name of a node that died on this machine"
                    );
                    None
                } else {
                    Some(taken)
                }
            }
            Err(taken) => Some(taken),
        };
        match refused {
            None => Ok(Membership {
                store,
                name: name.to_string(),
                instance,
            }),
            Some(taken) => Err(ClusterError::NameInUse {
                name: name.to_string(),
                taken,
            }),
        }
    }

    /// Heartbeat every `every` until `shutdown`; then mark the node stopped. A node that
    /// finds its name taken (its heartbeats were missed long enough for another process to
    /// take over) stops itself through `stop`: two processes must never work under one
    /// name, since leases are held by name.
    pub async fn run(
        self,
        every: Duration,
        stop: std::sync::Arc<watch::Sender<bool>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => match self.store.heartbeat(&self.name, &self.instance).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!(node = %self.name, "another process holds this node's name now; stopping");
                        let _ = stop.send(true);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                },
                _ = shutdown.changed() => break,
            }
        }
        if let Err(e) = self.store.node_stopped(&self.name, &self.instance).await {
            tracing::warn!(error = %e, "cannot mark the node stopped; its name frees when the heartbeat ages out");
        }
    }
}

/// Whether a process of this machine is running (Linux `/proc`); when unsure, say yes, so
/// a name is never taken from a live node.
fn process_alive(pid: i64) -> bool {
    pid == i64::from(std::process::id())
        || std::path::Path::new(&format!("/proc/{pid}")).exists()
        || !std::path::Path::new("/proc/self").exists()
}

/// How a node looks from its heartbeat.
pub fn node_state(n: &NodeRow, heartbeat: Duration, lease: Duration) -> &'static str {
    let age = now_ms() - n.heartbeat_at;
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if n.stopped {
        "stopped"
    } else if age <= 2 * ms(heartbeat) {
        "alive"
    } else if age <= ms(lease) {
        "suspect"
    } else {
        "dead"
    }
}

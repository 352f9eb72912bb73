//! Plugins' schedules (from their manifests): every `every-seconds`, aligned to the Unix
//! epoch, `on-schedule` runs for each list (and the node) that uses the plugin — once in
//! the whole cluster per occurrence, on whichever node claims it first, and by another
//! node when the one that claimed it died before finishing (see `store::schedules`).

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use crate::{
    message,
    pipeline::Chains,
    plugins::{Bound, Hook, Runtime, wit},
    store::{Occurrence, Store, now_ms},
};

/// How often the node looks for due occurrences.
const TICK: Duration = Duration::from_secs(1);
/// How often finished runs are pruned, and how long they are kept.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const KEEP_RUNS_MS: i64 = 7 * 86_400_000;

pub struct Scheduler {
    pub store: Store,
    pub runtime: Arc<Runtime>,
    pub chains: Arc<Chains>,
    pub node: String,
    pub lease: Duration,
}

impl Scheduler {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let bindings: Vec<Bound> = self
            .chains
            .node
            .iter()
            .chain(self.chains.lists.values().flat_map(|c| c.iter()))
            .filter(|b| b.plugin.implements(Hook::OnSchedule) && !b.plugin.schedules.is_empty())
            .cloned()
            .collect();
        if bindings.is_empty() {
            return;
        }
        let mut last: std::collections::HashMap<(String, String, String), i64> =
            std::collections::HashMap::new();
        let mut scanned = std::time::Instant::now();
        let mut pruned: Option<std::time::Instant> = None;
        loop {
            let now = now_ms();
            for b in &bindings {
                for s in &b.plugin.schedules {
                    let every = i64::try_from(s.every_seconds.max(1).saturating_mul(1000))
                        .unwrap_or(i64::MAX);
                    let due = now - now.rem_euclid(every);
                    let id = (b.scope.list.clone(), b.scope.plugin.clone(), s.name.clone());
                    if last.get(&id) == Some(&due) {
                        continue;
                    }
                    if self.occurrence(b, &s.name, due).await {
                        last.insert(id, due);
                    }
                }
            }
            // A lapsed lease is at least a lease old: looking twice per lease is enough.
            if scanned.elapsed() >= self.lease / 2 {
                scanned = std::time::Instant::now();
                self.take_over_lapsed(&bindings).await;
            }
            if pruned.is_none_or(|p| p.elapsed() >= PRUNE_EVERY) {
                pruned = Some(std::time::Instant::now());
                if let Err(e) = self.store.prune_occurrences(KEEP_RUNS_MS).await {
                    tracing::warn!(error = %e, "cannot prune old scheduled runs");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Runs left `running` by a node that died mid-run (whatever their occurrence: every
    /// node may have moved on to later ones), taken over by this node when it has the
    /// plugin for that list.
    async fn take_over_lapsed(&self, bindings: &[Bound]) {
        let lapsed = match self.store.lapsed_occurrences().await {
            Ok(lapsed) => lapsed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for lapsed scheduled runs");
                return;
            }
        };
        for (list, plugin, task, key) in lapsed {
            let Some(b) = bindings.iter().find(|b| {
                b.scope.list == list
                    && b.scope.plugin == plugin
                    && b.plugin.schedules.iter().any(|s| s.name == task)
            }) else {
                continue;
            };
            let Some(due) = message::parse_rfc3339(&key) else {
                tracing::warn!(%list, %plugin, %task, occurrence = %key, "unreadable occurrence");
                continue;
            };
            tracing::info!(%list, %plugin, %task, occurrence = %key, "taking over a scheduled run whose node died");
            self.occurrence(b, &task, due).await;
        }
    }

    /// Claim and run one occurrence; `true` when it needs no more attention from this node
    /// (it ran, here or elsewhere, or runs on a live node; should that node die, its run
    /// is found again by [`Self::take_over_lapsed`]).
    async fn occurrence(&self, b: &Bound, task: &str, due: i64) -> bool {
        let key = message::rfc3339(due);
        let o = Occurrence {
            list: &b.scope.list,
            plugin: &b.scope.plugin,
            task,
            key: &key,
        };
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(30_000);
        match self.store.claim_occurrence(&o, &self.node, lease_ms).await {
            Ok(false) => return true,
            Ok(true) => {}
            Err(e) => {
                tracing::warn!(error = %e, task, "cannot claim a scheduled run; will retry");
                return false;
            }
        }
        let t = wit::ScheduledTask {
            name: task.to_string(),
            occurrence: key.clone(),
            due_at: u64::try_from(due).unwrap_or(0),
        };
        // Renewed while it runs, so a run longer than the lease is not taken over.
        let run = self.runtime.on_schedule(b, &t);
        tokio::pin!(run);
        let result = loop {
            tokio::select! {
                result = &mut run => break result,
                _ = tokio::time::sleep(self.lease / 3) => {
                    match self.store.renew_occurrence(&o, &self.node, lease_ms).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(task, occurrence = %key,
                            "a scheduled run outlived its lease and was taken over"),
                        Err(e) => tracing::warn!(error = %e, "cannot renew a scheduled run"),
                    }
                }
            }
        };
        let error = result.as_ref().err().map(|e| e.to_string());
        tracing::info!(list = %b.scope.list, plugin = %b.scope.plugin, task, occurrence = %key,
            ok = error.is_none(), "scheduled run");
        // Unrecorded, the run would be taken over and run again once its lease lapses.
        for attempt in 1..=5 {
            match self
                .store
                .finish_occurrence(&o, &self.node, error.as_deref())
                .await
            {
                Ok(()) => break,
                Err(e) if attempt == 5 => tracing::warn!(error = %e,
                    "cannot record a scheduled run; another node will run it again"),
                Err(_) => tokio::time::sleep(self.lease / 10).await,
            }
        }
        true
    }
}

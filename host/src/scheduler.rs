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
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Claim and run one occurrence; `true` when it needs no more attention from this node
    /// (it ran here, or another node has it).
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
        let result = self.runtime.on_schedule(b, &t).await;
        let error = result.as_ref().err().map(|e| e.to_string());
        tracing::info!(list = %b.scope.list, plugin = %b.scope.plugin, task, occurrence = %key,
            ok = error.is_none(), "scheduled run");
        if let Err(e) = self
            .store
            .finish_occurrence(&o, &self.node, error.as_deref())
            .await
        {
            tracing::warn!(error = %e, "cannot record a scheduled run; its lease will lapse");
        }
        true
    }
}

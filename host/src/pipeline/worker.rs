//! The processing loop: lease stored messages, run them, record the decision.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{Mutex, Notify, mpsc, watch};
use tracing::Instrument;

use super::{Chains, loops, process, requests};
use crate::{
    config::ListConfig,
    plugins::Runtime,
    store::{Decision, Job, Store, StoredMessage, now_ms, spool::Activity},
};

/// Jobs claimed at once by one worker.
const BATCH: u32 = 256;
/// How long an idle worker sleeps when nobody wakes it (work from other nodes, retries).
const POLL: Duration = Duration::from_millis(500);
/// Posts whose senders are checked (DKIM/SPF/DMARC, DNS-bound) at once.
const AUTH_CONCURRENCY: usize = 32;
/// How long a woken worker waits for more posts before it claims.
const GATHER: Duration = Duration::from_millis(50);
/// Intake counts as busy while it committed within this long: a burst of mail is
/// acknowledged first and processed in the next pause...
const INTAKE_QUIET_MS: i64 = 20;
/// ...or once its oldest post has waited this long, so a load that never pauses is
/// processed beside intake, only later.
const MAX_DEFER_MS: i64 = 2_000;

pub struct Processor {
    pub store: Store,
    pub runtime: Arc<Runtime>,
    pub chains: Arc<Chains>,
    pub lists: HashMap<String, ListConfig>,
    pub node: String,
    pub lease: Duration,
    /// Posts this node stored, handed over by intake (see `smtp::LocalWork`).
    pub local: Mutex<mpsc::Receiver<StoredMessage>>,
    /// This node's intake: processing waits out a burst of it (see [`MAX_DEFER_MS`]).
    pub intake: Activity,
    /// Woken when posts were accepted, so delivery starts at once rather than at its next
    /// poll.
    pub delivery: Option<Arc<Notify>>,
    /// Confirmation addresses and links for held-post notices and `-confirm+` answers.
    pub links: Option<Arc<crate::confirm::Links>>,
    /// Woken when parsed bounces were recorded, so the bounce plugins see them at once.
    pub bounces: Option<Arc<Notify>>,
    /// DKIM/SPF/DMARC results for the plugins (none: plugins see the post as received).
    pub auth: Option<Arc<super::auth::Authenticator>>,
}

impl Processor {
    /// Work until `shutdown` turns true: posts this node stored (handed over in memory,
    /// already leased to it) first, then messages claimed from the database (other
    /// nodes' lapsed leases, retries).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(30_000);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let local = self.take_local(Vec::new()).await;
            if let Some(oldest) = local.first().map(|m| m.received_at) {
                wait_out_intake(&self.intake, oldest, &shutdown).await;
                let batch = self.take_local(local).await;
                self.process_loaded(as_jobs(batch), false, &shutdown).await;
                continue;
            }
            match self
                .store
                .claim_processing(&self.node, lease_ms, BATCH)
                .await
            {
                Ok(jobs) if !jobs.is_empty() => {
                    self.process_batch(jobs, &shutdown).await;
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot claim processing jobs"),
            }
            // Only the receive races the poll timer (a receive is cancel-safe); the gathering
            // happens after, so a post taken from the queue is never dropped.
            let first = tokio::select! {
                m = async { self.local.lock().await.recv().await } => m,
                _ = tokio::time::sleep(POLL) => None,
                _ = shutdown.changed() => return,
            };
            if let Some(m) = first {
                // Give a few more posts [`GATHER`] to arrive so they are processed (and
                // committed) together: one transaction for many rather than an fsync each.
                tokio::time::sleep(GATHER).await;
                wait_out_intake(&self.intake, m.received_at, &shutdown).await;
                let batch = self.take_local(vec![m]).await;
                self.process_loaded(as_jobs(batch), false, &shutdown).await;
            }
        }
    }

    /// `first` and whatever else waits in the local queue, up to [`BATCH`].
    async fn take_local(&self, first: Vec<StoredMessage>) -> Vec<StoredMessage> {
        let mut out = first;
        let mut queue = self.local.lock().await;
        while out.len() < BATCH as usize {
            match queue.try_recv() {
                Ok(m) => out.push(m),
                Err(_) => break,
            }
        }
        out
    }

    /// Process a batch: renew its leases (a post whose lease ran out while it waited may be
    /// another processor's now, and is left to it), run the posts, and record the decisions
    /// in one transaction. Slow plugins cannot outlast a lease: once a third of it has gone
    /// by, what is decided is recorded and the rest is renewed again. On a stop, posts not
    /// yet begun are left to the lease release of `cli::serve`.
    async fn process_loaded(
        &self,
        batch: Vec<(Job, StoredMessage)>,
        leased_now: bool,
        shutdown: &watch::Receiver<bool>,
    ) {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(30_000);
        let mut pending: VecDeque<(Job, StoredMessage)> = batch.into();
        // Leases taken a moment ago (a claim just now, or a hand-over of posts stored less
        // than a sixth of a lease ago) hold for the first round without a renewal: one
        // statement and one commit fewer per batch.
        let now = now_ms();
        let mut fresh = leased_now
            || pending
                .iter()
                .all(|(_, m)| now - m.received_at < lease_ms / 6);
        // Posts as their plugins see them, checked a chunk at a time as the round reaches
        // them: a round ends inside its lease even when DNS takes each check's whole
        // budget (checking the whole batch first once outlasted the lease, and the batch
        // was claimed, checked and lost again for ever).
        let mut views: HashMap<String, Vec<u8>> = HashMap::new();
        while !pending.is_empty() {
            let round = if fresh {
                fresh = false;
                self.lease / 6
            } else {
                let ids: Vec<String> = pending.iter().map(|(j, _)| j.message_id.clone()).collect();
                let ours = match self.store.renew_leases(&self.node, &ids, lease_ms).await {
                    Ok(ours) => ours,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot renew leases; the posts wait for a claim");
                        return;
                    }
                };
                pending.retain(|(j, _)| ours.contains(&j.message_id));
                self.lease / 3
            };
            let renewed = Instant::now();
            let mut decided = Vec::with_capacity(pending.len());
            while renewed.elapsed() < round && !*shutdown.borrow() {
                if pending
                    .front()
                    .is_some_and(|(_, m)| m.kind == "post" && !views.contains_key(&m.id))
                {
                    let next = pending
                        .iter()
                        .filter(|(_, m)| !views.contains_key(&m.id))
                        .take(AUTH_CONCURRENCY);
                    let checked = self.authenticate(next).await;
                    views.extend(checked);
                    // The checks used this round's time: renew before going on.
                    if renewed.elapsed() >= round {
                        break;
                    }
                }
                let Some((job, m)) = pending.pop_front() else {
                    break;
                };
                let view = views.remove(&m.id);
                if let Some(d) = self.process(&job, &m, view).await {
                    decided.push((job, d));
                }
            }
            self.record(decided).await;
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// Load a claimed batch in one query, run each post through its chain, and record
    /// all decisions in one transaction.
    async fn process_batch(&self, jobs: Vec<Job>, shutdown: &watch::Receiver<bool>) {
        let ids: Vec<String> = jobs.iter().map(|j| j.message_id.clone()).collect();
        let mut messages: HashMap<String, StoredMessage> = match self.store.messages(&ids).await {
            Ok(found) => found.into_iter().map(|m| (m.id.clone(), m)).collect(),
            Err(e) => {
                for job in &jobs {
                    self.retry(job, &e.to_string()).await;
                }
                return;
            }
        };
        let mut loaded = Vec::with_capacity(jobs.len());
        for job in jobs {
            match messages.remove(&job.message_id) {
                Some(m) => loaded.push((job, m)),
                None => self.retry(&job, "message not found").await,
            }
        }
        self.process_loaded(loaded, true, shutdown).await;
    }

    /// Posts as their plugins see them (with this host's `Authentication-Results`), checked
    /// concurrently: each check waits on DNS, and one after the other they would hold up
    /// the batch.
    async fn authenticate<'a>(
        &self,
        batch: impl Iterator<Item = &'a (Job, StoredMessage)>,
    ) -> HashMap<String, Vec<u8>> {
        let mut views = HashMap::new();
        let Some(auth) = &self.auth else {
            return views;
        };
        let posts: Vec<&StoredMessage> =
            batch.map(|(_, m)| m).filter(|m| m.kind == "post").collect();
        let mut checks = Vec::with_capacity(posts.len());
        for m in &posts {
            checks.push(auth.annotate(m));
        }
        for (m, view) in posts.iter().zip(futures::future::join_all(checks).await) {
            views.insert(m.id.clone(), view);
        }
        views
    }

    /// Run one post through its list's chain; `None` when it must be tried again later.
    /// `view` is the post as plugins see it, when it differs from the stored one.
    async fn process(
        &self,
        job: &Job,
        m: &StoredMessage,
        view: Option<Vec<u8>>,
    ) -> Option<Decision> {
        let span = tracing::info_span!("process", message = %m.id, list = %m.list);
        self.decide(job, m, view).instrument(span).await
    }

    async fn decide(
        &self,
        job: &Job,
        m: &StoredMessage,
        view: Option<Vec<u8>>,
    ) -> Option<Decision> {
        // Claims count tries; only a message whose last try failed is given up (a lapsed
        // lease or a restart is no failure of the message).
        if let Some(error) = job
            .last_error
            .as_deref()
            .filter(|_| job.attempts > MAX_TRIES)
        {
            // One message that keeps failing (a plugin that traps under `on_plugin_error =
            // "hold"` is a decision, not a failure; this is a store error, a list nobody
            // knows, a row that cannot be written) must not be retried for ever.
            tracing::error!(
                attempts = job.attempts,
                error,
                "processing failed too often; message set aside"
            );
            return Some(Decision {
                state: "failed",
                reason: Some(format!(
                    "set aside after {} tries: {error}",
                    job.attempts - 1
                )),
                edits: None,
                notice: None,
                forward_to: Vec::new(),
                bounces: Vec::new(),
            });
        }
        let Some(list) = self.lists.get(&m.list) else {
            // A node with an older config; a node that knows the list will take the job.
            tracing::warn!("post for a list this node does not know");
            self.retry(job, "unknown list").await;
            return None;
        };
        let chain = self
            .chains
            .lists
            .get(&m.list)
            .map_or(&[][..], |c| c.as_slice());
        let decision = match m.kind.as_str() {
            "request" => {
                let fallback = self.links.as_deref().map(|l| (&self.store, l));
                requests::command(&self.runtime, chain, list, m, fallback).await
            }
            "confirm" => {
                match requests::confirmation(&self.store, self.links.as_deref(), list, m).await {
                    Ok(d) => d,
                    Err(e) => {
                        self.retry(job, &e.to_string()).await;
                        return None;
                    }
                }
            }
            "owner" => requests::forward_to_owners(list),
            "bounce" => {
                let keys = self.links.as_deref().map(|l| &l.keys);
                match crate::bounces::mail::decide(&self.store, keys, m).await {
                    Ok(d) => d,
                    Err(e) => {
                        self.retry(job, &e.to_string()).await;
                        return None;
                    }
                }
            }
            // A post that came round already, or that a program sent, is held before any
            // plugin sees it.
            _ => match loops::hold_reason(&list.address, &m.raw) {
                Some(reason) => {
                    let verdict = process::Verdict::Hold(reason);
                    process::decide(list, m, verdict, &[], self.links.as_deref())
                }
                None => {
                    let post = match view {
                        Some(raw) => process::to_wit(&StoredMessage { raw, ..m.clone() }),
                        None => process::to_wit(m),
                    };
                    let (verdict, edits) =
                        process::run_chain(&self.runtime, chain, &post, list.on_plugin_error).await;
                    process::decide(list, m, verdict, &edits, self.links.as_deref())
                }
            },
        };
        tracing::info!(
            state = decision.state,
            reason = decision.reason.as_deref().unwrap_or(""),
            "post processed"
        );
        Some(decision)
    }

    /// Store a batch's decisions in one transaction.
    async fn record(&self, decided: Vec<(Job, Decision)>) {
        if decided.is_empty() {
            return;
        }
        let result = self.store.finish_processing(&self.node, &decided).await;
        if result.is_ok() {
            use crate::metrics::{Counter, global};
            for (_, d) in &decided {
                let counter = match d.state {
                    "accepted" => Counter::PostsAccepted,
                    "held" => Counter::PostsHeld,
                    "rejected" => Counter::PostsRejected,
                    "discarded" => Counter::PostsDiscarded,
                    _ => continue,
                };
                global().add(counter, 1);
            }
        }
        if result.is_ok()
            && let Some(wake) = &self.delivery
        {
            wake.notify_one();
        }
        if result.is_ok()
            && decided.iter().any(|(_, d)| !d.bounces.is_empty())
            && let Some(wake) = &self.bounces
        {
            wake.notify_one();
        }
        match result {
            Ok(n) if n < decided.len() => {
                tracing::warn!(
                    lost = decided.len() - n,
                    "leases lost before the decisions were recorded; other nodes decide those"
                );
            }
            Ok(_) => {}
            Err(e) if decided.len() == 1 => self.retry(&decided[0].0, &e.to_string()).await,
            Err(e) => {
                // One bad decision fails the whole transaction: record each on its own, so
                // only the one that cannot be written is tried again (and, in the end, set
                // aside), not every post that happened to share its batch.
                tracing::warn!(error = %e, posts = decided.len(), "recording a batch of decisions failed; recording them one by one");
                for one in decided {
                    Box::pin(self.record(vec![one])).await;
                }
            }
        }
    }

    async fn retry(&self, job: &Job, error: &str) {
        // Back off with the number of tries: 1 s, 2 s, 4 s ... up to 5 minutes.
        let delay = 1_000i64 << job.attempts.clamp(0, 8);
        tracing::warn!(
            error,
            attempts = job.attempts,
            "processing failed; will retry"
        );
        if let Err(e) = self
            .store
            .retry_job(job, &self.node, delay.min(300_000), error)
            .await
        {
            tracing::error!(error = %e, "cannot reschedule job; its lease will expire");
        }
    }
}

/// While intake is committing, wait, until it pauses for [`INTAKE_QUIET_MS`] or the post
/// stored at `oldest` has waited [`MAX_DEFER_MS`]. Intake and processing share the
/// cores and SQLite's one connection: measured on a 5,000-message burst, processing
/// beside it halved the rate at which the burst was acknowledged, and a stored post
/// is safe, so the senders come first. The posts are leased to this node meanwhile
/// (two seconds of a lease of many).
async fn wait_out_intake(intake: &Activity, oldest: i64, shutdown: &watch::Receiver<bool>) {
    loop {
        let idle = intake.idle_ms();
        let waited = now_ms().saturating_sub(oldest);
        if idle >= INTAKE_QUIET_MS || waited >= MAX_DEFER_MS || *shutdown.borrow() {
            return;
        }
        let pause = (INTAKE_QUIET_MS - idle).min(MAX_DEFER_MS - waited).max(1);
        tokio::time::sleep(Duration::from_millis(pause.unsigned_abs())).await;
    }
}

/// Tries before a message that cannot be processed is set aside (state `failed`). With the
/// back-off of `retry` (2 s doubling) that is about eight and a half minutes of trying.
const MAX_TRIES: i64 = 8;

/// Posts handed over by intake as jobs: leased to this node at insert, not yet tried.
fn as_jobs(batch: Vec<StoredMessage>) -> Vec<(Job, StoredMessage)> {
    batch
        .into_iter()
        .map(|m| {
            (
                Job {
                    message_id: m.id.clone(),
                    attempts: 0,
                    last_error: None,
                },
                m,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::sync::watch;

    use super::{INTAKE_QUIET_MS, MAX_DEFER_MS, wait_out_intake};
    use crate::store::{now_ms, spool::Activity};

    /// How long processing waits for a post stored `ago_ms` ago while intake commits
    /// every 5 ms for `busy_ms` (none at all: 0).
    async fn wait_for(busy_ms: u64, ago_ms: i64) -> Duration {
        let intake = Activity::default();
        if busy_ms > 0 {
            let intake = intake.clone();
            tokio::spawn(async move {
                let until = Instant::now() + Duration::from_millis(busy_ms);
                while Instant::now() < until {
                    intake.committed();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (_stop, shutdown) = watch::channel(false);
        let started = Instant::now();
        wait_out_intake(&intake, now_ms() - ago_ms, &shutdown).await;
        started.elapsed()
    }

    #[tokio::test]
    async fn a_quiet_intake_is_not_waited_for() {
        let waited = wait_for(0, 0).await;
        assert!(waited < Duration::from_millis(INTAKE_QUIET_MS as u64));
    }

    #[tokio::test]
    async fn a_burst_is_waited_out_until_it_pauses() {
        let waited = wait_for(400, 0).await;
        assert!(
            waited >= Duration::from_millis(350) && waited < Duration::from_millis(1_500),
            "waited {waited:?} for a 400 ms burst"
        );
    }

    #[tokio::test]
    async fn a_load_that_never_pauses_is_waited_for_at_most_the_bound() {
        // The oldest post has waited all but 300 ms of the bound already.
        let waited = wait_for(10_000, MAX_DEFER_MS - 300).await;
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_millis(1_500),
            "waited {waited:?}, the bound leaves 300 ms"
        );
    }
}

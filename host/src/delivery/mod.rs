//! Delivery: every accepted post to every enabled member, and every notice to its
//! recipients, over outbound SMTP.
//!
//! The work is rows in the database (`store::deliveries`): a post's `deliver` job is
//! expanded once into recipients and batches; batches are leased by whichever node is free,
//! sent over pooled connections (`batch`, `client`, `pool`), paced per destination
//! (`limits`), and their outcomes recorded in groups (`recorder`). A node that dies stops
//! renewing its leases and another takes its batches; only copies sent after the last
//! group commit are sent again.

mod batch;
pub mod client;
pub mod compose;
pub mod dkim;
mod leases;
mod limits;
mod pool;
mod prepare;
mod recorder;
pub mod route;
pub mod template;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{Notify, mpsc, watch};

use crate::{
    config::{Config, DeliveryConfig, ListConfig},
    pipeline::Chains,
    plugins::Runtime,
    store::{BuiltNotice, NoticeTarget, PendingNotice, Store, now_ms},
    tokens::TokenKey,
};

pub use prepare::PrepareError;

/// How often an idle node looks for work (other nodes' posts, retries that came due).
const POLL: Duration = Duration::from_millis(250);
/// Posts expanded in one transaction at most, and about how many recipients such a
/// transaction should write: a burst of posts to small lists is one commit, not one per
/// post, while posts to big lists go a few at a time so that no transaction holds SQLite's
/// single writer (and with it intake's commits) for long.
const EXPAND: u32 = 256;
const EXPAND_RECIPIENTS: u64 = 20_000;
/// Posts the first expansion takes, before any has shown how big the lists' posts are.
const EXPAND_FIRST: u32 = 16;
/// One expansion pass stops after this long, so sending is not held up by a backlog.
const EXPAND_PASS: Duration = Duration::from_millis(200);

pub struct Delivery {
    store: Store,
    node: String,
    hostname: String,
    lease: Duration,
    config: DeliveryConfig,
    lists: HashMap<String, ListConfig>,
    runtime: Arc<Runtime>,
    router: Arc<route::Router>,
    dialer: client::Dialer,
    pool: pool::Pool,
    limits: limits::Limits,
    preparer: prepare::Preparer,
    recorder: mpsc::Sender<recorder::Record>,
    keys: TokenKey,
    public_url: String,
    /// The batches this node holds: sending, or sent and waiting for their end's record.
    leases: Arc<leases::Leases>,
    /// Batch tasks running.
    sending: AtomicUsize,
    /// Posts the next expansion takes at once, from the recipients per post the last one
    /// saw (a sizing hint only: the claim itself is in the database).
    expand_limit: AtomicU32,
    /// Woken when this node's processors accepted posts (or queued notices).
    pub wake: Arc<Notify>,
    /// Woken when a batch ends (room for more).
    batch_done: Notify,
}

/// Why delivery cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{file}: dkim: {message}")]
    Dkim { file: String, message: String },
}

impl Delivery {
    /// Set up delivery for this node; the returned recorder task must be awaited at stop
    /// (after `run` returns) so that every outcome is written.
    pub fn new(
        config: &Config,
        store: Store,
        runtime: Arc<Runtime>,
        chains: &Chains,
        keys: TokenKey,
    ) -> Result<(Arc<Delivery>, tokio::task::JoinHandle<()>), SetupError> {
        let node = &config.node;
        let mut signers = HashMap::new();
        for list in &config.lists {
            if let Some(d) = &list.dkim {
                let signer = dkim::Signer::new(d).map_err(|message| SetupError::Dkim {
                    file: list.file.display().to_string(),
                    message,
                })?;
                signers.insert(list.address.clone(), Arc::new(signer));
            }
        }
        let lists: HashMap<String, ListConfig> = config
            .lists
            .iter()
            .map(|l| (l.address.clone(), l.clone()))
            .collect();
        let router = Arc::new(route::Router::new(&node.delivery));
        let limits = limits::Limits::new(&node.delivery, store.clone(), &node.name, node.lease);
        let (tx, rx) = mpsc::channel(4_096);
        let leases = Arc::new(leases::Leases::new(node.lease));
        let recorder = crate::spawn(recorder::run(
            store.clone(),
            node.name.clone(),
            leases.clone(),
            rx,
        ));
        let delivery = Delivery {
            preparer: prepare::Preparer::new(
                store.clone(),
                router.clone(),
                lists.clone(),
                chains.lists.clone(),
                signers,
            ),
            store,
            node: node.name.clone(),
            hostname: node.hostname.clone(),
            lease: node.lease,
            config: node.delivery.clone(),
            lists,
            runtime,
            router,
            dialer: client::Dialer {
                helo: node.hostname.clone(),
                connect_timeout: node.delivery.connect_timeout,
                command_timeout: node.delivery.command_timeout,
                tls: node.delivery.starttls.then(client::opportunistic_tls),
            },
            pool: pool::Pool::default(),
            limits,
            recorder: tx,
            keys,
            public_url: node.http.public_url.clone(),
            leases,
            sending: AtomicUsize::new(0),
            expand_limit: AtomicU32::new(EXPAND_FIRST),
            wake: Arc::new(Notify::new()),
            batch_done: Notify::new(),
        };
        Ok((Arc::new(delivery), recorder))
    }

    /// Work until `shutdown`: expand posts, turn notices into mail, and keep up to
    /// `concurrency` batches sending. On a stop, batches in flight finish their current
    /// copy and give the rest back; the caller then awaits the recorder.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let renewer = crate::spawn(self.clone().renew_leases(shutdown.clone()));
        let mut tasks = tokio::task::JoinSet::new();
        let mut pruned = std::time::Instant::now();
        // New posts and notices are looked for when this node's processors say so, and on
        // every poll; not after every batch (that would be two statements per batch).
        let mut housekeeping = true;
        // Batches are claimed several at a time: a claim is a transaction, and claiming
        // each time one batch ends would make it one per batch.
        let min_claim = (self.config.concurrency as usize / 8).max(1);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let housekeeping_done = housekeeping;
            if housekeeping {
                self.expand().await;
                self.notices().await;
                housekeeping = false;
            }
            let inflight = self.sending.load(Ordering::Relaxed);
            let concurrency = self.config.concurrency as usize;
            let free = concurrency.saturating_sub(inflight);
            // A dead node's batches are taken as soon as its lease lapses, beyond this
            // node's own concurrency if need be (up to half as much again): its recipients
            // must not wait for a busy node to drain first.
            let rescue = (concurrency + concurrency / 2).saturating_sub(inflight);
            let mut claimed = 0;
            let mut asked = 0;
            let want = if free >= min_claim || (free > 0 && inflight == 0) {
                asked = free.min(256);
                Some(false)
            } else if housekeeping_done && rescue > 0 {
                asked = rescue.min(256);
                Some(true)
            } else {
                None
            };
            if let Some(orphans) = want {
                let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(30_000);
                let claimed_at = Instant::now();
                let result = if orphans {
                    self.store
                        .claim_orphans(&self.node, lease_ms, asked as u32)
                        .await
                } else {
                    self.store
                        .claim_batches(&self.node, lease_ms, asked as u32)
                        .await
                };
                match result {
                    Ok(batches) => {
                        claimed = batches.len();
                        // One query for the recipients of the whole claim, not one per batch;
                        // a batch loads its own if this fails.
                        let mut loaded = match self.store.recipients_of(&batches).await {
                            Ok(r) => Some(r),
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot load the claimed recipients");
                                None
                            }
                        };
                        for b in batches {
                            let recipients =
                                loaded.as_mut().map(|l| l.remove(&b.id).unwrap_or_default());
                            let lease = self.leases.hold(b.id, claimed_at);
                            let me = self.clone();
                            self.sending.fetch_add(1, Ordering::Relaxed);
                            let job = async move {
                                me.clone().send_batch(b, lease, recipients).await;
                                me.sending.fetch_sub(1, Ordering::Relaxed);
                                me.batch_done.notify_one();
                            };
                            tasks.spawn(tracing::Instrument::in_current_span(job));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot claim batches"),
                }
            }
            while tasks.try_join_next().is_some() {}
            self.pool.reap();
            self.limits.reap().await;
            if pruned.elapsed() > Duration::from_secs(60) {
                pruned = std::time::Instant::now();
                let old = now_ms() / 1000 - 60;
                if let Err(e) = self.store.prune_rate_windows(old).await {
                    tracing::warn!(error = %e, "cannot prune rate windows");
                }
            }
            if claimed > 0 && claimed == asked {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => housekeeping = true,
                _ = self.batch_done.notified() => {}
                _ = tokio::time::sleep(POLL) => housekeeping = true,
                _ = shutdown.changed() => {}
            }
        }
        // Stopping: in-flight batches stop after their current copy and give the rest back.
        // Their leases are renewed until the recorder has written their ends.
        self.leases.stop_all();
        while tasks.join_next().await.is_some() {}
        let deadline = Instant::now() + self.lease;
        while !self.leases.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        renewer.abort();
        self.pool.close().await;
    }

    /// Expand the `deliver` jobs of newly accepted (or approved) posts into batches.
    async fn expand(&self) {
        let started = Instant::now();
        loop {
            let limit = self.expand_limit.load(Ordering::Relaxed);
            let (posts, recipients) =
                match self.store.expand_posts(limit, self.config.batch_size).await {
                    Ok(done) => done,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot expand posts for delivery; will retry");
                        return;
                    }
                };
            let Some(first) = posts.first() else { return };
            let per_post = recipients / posts.len() as u64;
            let next = (EXPAND_RECIPIENTS / per_post.max(1)).clamp(1, u64::from(EXPAND));
            self.expand_limit.store(next as u32, Ordering::Relaxed);
            for post in &posts[1..] {
                tracing::debug!(%post, "post expanded for delivery");
            }
            tracing::info!(
                posts = posts.len(),
                recipients,
                %first,
                "fan-out queued"
            );
            if posts.len() < limit as usize || started.elapsed() > EXPAND_PASS {
                return;
            }
        }
    }

    /// Turn queued notices into messages with recipients.
    async fn notices(&self) {
        let now = now_ms();
        let result = self
            .store
            .convert_notices(&self.node, 100, self.config.batch_size, |n| {
                self.build_notice(n, now)
            })
            .await;
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!(notices = n, "notices queued for delivery"),
            Err(e) => tracing::warn!(error = %e, "cannot queue notices"),
        }
    }

    fn build_notice(&self, n: &PendingNotice, now: i64) -> Option<BuiltNotice> {
        let Some(list) = self.lists.get(&n.list) else {
            tracing::warn!(list = %n.list, notice = n.id, "notice for an unknown list dropped");
            return None;
        };
        let to = match &n.to {
            NoticeTarget::Owners => list.owners.clone(),
            // Every notice becomes mail here, whoever queued it: an address from a post's
            // envelope (a quoted local part with spaces or `>` could add parameters to
            // RCPT TO, or fields to `To:`) must be a plain address first.
            NoticeTarget::Address(a) => match crate::store::check_address(a) {
                Ok(()) => vec![a.clone()],
                Err(e) => {
                    tracing::warn!(list = %n.list, notice = n.id, error = %e, "notice to an address that cannot be written safely: dropped");
                    return None;
                }
            },
        };
        if to.is_empty() {
            tracing::warn!(list = %n.list, notice = n.id, "notice to owners, but the list has none");
            return None;
        }
        let id = crate::store::notice_message_id(n.id);
        let raw = compose::notice(list, &self.hostname, &id, n, &to, now);
        Some(BuiltNotice {
            id,
            raw,
            mail_from: format!("{}-bounces@{}", list.local_part(), list.domain()),
            recipients: to,
        })
    }

    /// Renew the leases of the batches this node holds every third of a lease; stop any
    /// that were lost (another node has them now). A renewal that is late or fails needs
    /// nothing more: each batch stops sending on its own before its lease could lapse.
    async fn renew_leases(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(30_000);
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.lease / 3) => {}
                _ = shutdown.changed(), if !stopping => {
                    // Batches still waiting for their end's record stay ours until then.
                    stopping = true;
                    continue;
                }
            }
            if let Err(e) = self.store.renew_session_slots(&self.node, lease_ms).await {
                tracing::warn!(error = %e, "cannot renew session slots");
            }
            let ids = self.leases.ids();
            if ids.is_empty() {
                continue;
            }
            let asked = Instant::now();
            match self.store.renew_batches(&self.node, &ids, lease_ms).await {
                Ok(kept) => self.leases.renewed(&ids, &kept, asked),
                Err(e) => tracing::warn!(error = %e, "cannot renew batch leases"),
            }
        }
    }
}

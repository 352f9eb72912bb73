//! SMTP intake: accept mail for the lists' addresses, store it durably, answer 250.
//!
//! Intake never sends mail (it has no path to `delivery`): it stores the message (a
//! `stored` message is processing's work) through the group-commit spool and only then
//! says 250. What happens to a
//! post afterwards (plugins, holds, delivery) is the pipeline's work, on any node.

mod address;
mod reply;
mod session;
mod tls;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

pub use address::{Directory, Target};
use session::{End, Session};
pub use tls::{TlsError, acceptor};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc, watch},
};
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::{
    config::SmtpConfig,
    store::{Spool, StoredMessage},
};

/// How long a client has to finish the TLS handshake after STARTTLS.
const TLS_HANDSHAKE: Duration = Duration::from_secs(30);

/// Everything a session needs, shared by all sessions of the node.
/// The hand-over of freshly stored posts to this node's processors.
pub struct LocalWork {
    pub queue: mpsc::Sender<StoredMessage>,
    pub lease: Duration,
}

pub struct Intake {
    pub config: SmtpConfig,
    pub directory: Directory,
    pub spool: Spool,
    pub node: String,
    pub hostname: String,
    pub tls: Option<TlsAcceptor>,
    /// Posts stored by this node go straight to its processors (leased to this node in
    /// the same commit), saving the claim and the read-back. If the node dies the
    /// lease lapses and any node processes them.
    pub local: Option<LocalWork>,
    sessions: Arc<Semaphore>,
    /// Sessions open per client address (`max_sessions_per_ip`).
    per_ip: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>,
    /// Message data all sessions may hold in memory, in [`DATA_UNIT`]s (`max_data_memory`).
    pub(crate) data_budget: Arc<Semaphore>,
    next_session: AtomicU64,
}

/// Message data is reserved from the node's budget in pieces of this size as it arrives.
pub(crate) const DATA_UNIT: usize = 64 * 1024;

impl Intake {
    pub fn new(
        config: SmtpConfig,
        directory: Directory,
        spool: Spool,
        node: String,
        hostname: String,
        tls: Option<TlsAcceptor>,
        local: Option<LocalWork>,
    ) -> Self {
        // Rounded up, so a budget of exactly max_message_size still takes the largest message.
        let units = usize::try_from(config.max_data_memory)
            .unwrap_or(usize::MAX)
            .div_ceil(DATA_UNIT)
            + 1;
        Intake {
            sessions: Arc::new(Semaphore::new(config.max_sessions as usize)),
            per_ip: Default::default(),
            data_budget: Arc::new(Semaphore::new(units.clamp(1, Semaphore::MAX_PERMITS))),
            config,
            directory,
            spool,
            node,
            hostname,
            tls,
            local,
            next_session: AtomicU64::new(1),
        }
    }

    /// Accept sessions on `listener` until `shutdown` turns true.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let Ok(permit) = self.sessions.clone().try_acquire_owned() else {
                crate::spawn(refuse(tcp, reply::TOO_MANY_SESSIONS));
                continue;
            };
            let Some(from_ip) = self.clone().hold_ip(peer.ip()) else {
                crate::spawn(refuse(tcp, reply::TOO_MANY_FROM_ADDRESS));
                continue;
            };
            let id = self.next_session.fetch_add(1, Ordering::Relaxed);
            let span = tracing::info_span!("smtp", session = id, %peer);
            let intake = self.clone();
            let shutdown = shutdown.clone();
            // The session's own span was made here, under the node's: entering the node
            // span again on every poll (crate::spawn) would be work for nothing.
            tokio::spawn(
                async move {
                    intake.session(tcp, peer, shutdown).await;
                    drop((from_ip, permit));
                }
                .instrument(span),
            );
        }
    }

    /// Count a session from `ip`, unless it already has `max_sessions_per_ip`; the count
    /// goes down when the returned guard is dropped.
    fn hold_ip(self: Arc<Self>, ip: std::net::IpAddr) -> Option<IpSlot> {
        let mut open = self.per_ip.lock().ok()?;
        let n = open.entry(ip).or_insert(0);
        if *n >= self.config.max_sessions_per_ip {
            return None;
        }
        *n += 1;
        drop(open);
        Some(IpSlot { intake: self, ip })
    }

    /// One session. A stop is noticed only while the session waits for the client, so a
    /// command in progress (a commit before its 250) always finishes.
    async fn session(&self, tcp: TcpStream, peer: SocketAddr, shutdown: watch::Receiver<bool>) {
        tracing::debug!("connected");
        let mut s = Session::new(tcp, self, peer, false, shutdown.clone());
        s.greet().await;
        if !matches!(s.run().await, End::StartTls) {
            return;
        }
        let _ = s.flush().await;
        let ends = s.ends();
        let tcp = s.into_io();
        let Some(acceptor) = &self.tls else { return };
        let tls = match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::info!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!("TLS handshake timed out");
                return;
            }
        };
        let mut s = Session::new(tls, self, peer, true, shutdown);
        s.end_by(ends);
        s.run().await;
    }

    /// Wait (up to `limit`) for open sessions to end after a stop was signalled.
    pub async fn drain(&self, limit: Duration) {
        let all = self.config.max_sessions;
        if tokio::time::timeout(limit, self.sessions.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("sessions still open at shutdown; closing them");
        }
    }
}

/// A session counted against its client address.
struct IpSlot {
    intake: Arc<Intake>,
    ip: std::net::IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.intake.per_ip.lock()
            && let Some(n) = open.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Over a session limit: say so and close, without holding a session slot.
async fn refuse(mut tcp: TcpStream, why: reply::Reply) {
    crate::metrics::global().add(crate::metrics::Counter::SmtpSessionsRefused, 1);
    let mut out = Vec::new();
    why.write(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.write_all(&out)).await;
    let _ = tcp.shutdown().await;
}

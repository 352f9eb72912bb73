//! Group commit: SMTP sessions hand their messages to a few writer tasks, each of which
//! commits whatever is waiting in one transaction and then answers every session in it.
//! One fsync then covers many 250 replies, so durability does not cap intake speed.
//!
//! A writer may also wait a moment for messages whose SMTP transactions are already under
//! way (PostgreSQL's `commit_delay` with `commit_siblings`, for mail): with many sessions
//! sending, a group of a few messages costs nearly as much to commit as one, so a
//! millisecond spent gathering is repaid in CPU. A lone sender waits at most the window,
//! and usually not at all (see `Spool::commit`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Mutex, mpsc, oneshot};

use super::{NewMessage, Result, Store, StoreError, now_ms};

/// Messages committed together at most (and their bytes), so one transaction stays short.
const MAX_GROUP: usize = 256;
const MAX_GROUP_BYTES: usize = 32 << 20;

struct Submission {
    messages: Vec<NewMessage>,
    /// Answered with the messages themselves once committed, so the caller can hand them
    /// on without having kept a copy.
    done: oneshot::Sender<Result<Vec<NewMessage>, String>>,
}

/// The handle sessions submit to; cheap to clone.
#[derive(Clone)]
pub struct Spool {
    tx: mpsc::Sender<Submission>,
    open: Arc<AtomicUsize>,
    activity: Activity,
}

/// When this node's intake last committed: work that can wait (processing) lets a burst
/// of mail be acknowledged first (see `pipeline::worker`).
#[derive(Clone, Default)]
pub struct Activity(Arc<AtomicI64>);

impl Activity {
    pub(crate) fn committed(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since the last commit (large when there has been none).
    pub fn idle_ms(&self) -> i64 {
        now_ms().saturating_sub(self.0.load(Ordering::Relaxed))
    }
}

/// An SMTP transaction under way (MAIL accepted, its message not yet submitted): a writer
/// may wait for it. Counted until dropped.
pub struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Spool {
    /// Start `writers` writer tasks on `store`. SQLite has one writer at a time anyway; on
    /// PostgreSQL a few writers overlap their commits. A writer waits up to `gather` for
    /// the messages of open transactions before it commits (zero: never).
    pub fn start(store: Store, writers: usize, gather: Duration) -> Spool {
        let (tx, rx) = mpsc::channel::<Submission>(4096);
        let rx = Arc::new(Mutex::new(rx));
        let open = Arc::new(AtomicUsize::new(0));
        let activity = Activity::default();
        for _ in 0..writers.max(1) {
            crate::spawn(writer(
                store.clone(),
                rx.clone(),
                open.clone(),
                gather,
                activity.clone(),
            ));
        }
        Spool { tx, open, activity }
    }

    /// When intake last committed.
    pub fn activity(&self) -> Activity {
        self.activity.clone()
    }

    /// A transaction begins; its message is submitted with [`Spool::commit`].
    pub fn open(&self) -> Open {
        self.open.fetch_add(1, Ordering::Relaxed);
        Open(self.open.clone())
    }

    /// Store the messages of the transaction `open` durably; `Ok` (with the messages back)
    /// only after they are committed.
    pub async fn commit(&self, messages: Vec<NewMessage>, open: Open) -> Result<Vec<NewMessage>> {
        let (done, wait) = oneshot::channel();
        let sent = self.tx.send(Submission { messages, done }).await;
        // Uncounted only once queued, so a writer never misses a message it counted. A
        // writer on another thread may take this one before the count drops, count it as
        // under way as well, and wait the window for one message more. Uncounting first
        // measured no better back to back (three sets of five or six rounds: the same rate
        // within noise, node CPU never lower), so this order, the one the README's figures
        // were taken with, stays.
        drop(open);
        sent.map_err(|_| StoreError::Invalid("the spool is shut down".into()))?;
        match wait.await {
            Ok(Ok(messages)) => Ok(messages),
            Ok(Err(e)) => Err(StoreError::Invalid(e)),
            Err(_) => Err(StoreError::Invalid("the spool writer stopped".into())),
        }
    }
}

async fn writer(
    store: Store,
    rx: Arc<Mutex<mpsc::Receiver<Submission>>>,
    open: Arc<AtomicUsize>,
    gather: Duration,
    activity: Activity,
) {
    loop {
        // Take what is waiting (at least one submission), then release the receiver so
        // another writer can gather the next group while this one commits.
        let group = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let deadline = tokio::time::Instant::now() + gather;
            // This message, those already waiting, and the transactions under way now: their
            // messages are the ones worth waiting for; those begun later wait for the next
            // group. One that is given up (RSET, a client gone) costs at most the window.
            let expected = 1 + rx.len() + open.load(Ordering::Relaxed);
            let (mut group, mut bytes) = (Vec::new(), 0);
            let mut next = Some(first);
            while let Some(s) = next {
                bytes += s.messages.iter().map(|m| m.raw.len()).sum::<usize>();
                group.push(s);
                if group.len() >= MAX_GROUP || bytes >= MAX_GROUP_BYTES {
                    break;
                }
                next = match rx.try_recv() {
                    Ok(s) => Some(s),
                    Err(_) if !gather.is_zero() && group.len() < expected => {
                        tokio::time::timeout_at(deadline, rx.recv())
                            .await
                            .ok()
                            .flatten()
                    }
                    Err(_) => None,
                };
            }
            group
        };
        let mut messages = Vec::new();
        let mut waiting = Vec::with_capacity(group.len());
        for s in group {
            waiting.push((s.messages.len(), s.done));
            messages.extend(s.messages);
        }
        let outcome = store.insert_messages(&messages).await;
        activity.committed();
        let one_by_one = outcome.is_err() && waiting.len() > 1;
        if let Err(e) = &outcome {
            if one_by_one {
                tracing::warn!(error = %e, "group commit failed; committing one by one");
            } else {
                tracing::error!(error = %e, "cannot store message");
            }
        }
        let mut rest = messages.into_iter();
        for (n, done) in waiting {
            let own: Vec<NewMessage> = rest.by_ref().take(n).collect();
            let answer = match &outcome {
                Ok(()) => Ok(own),
                // One bad message must not fail everyone else's: commit each session's own
                // messages on their own, so only the culprit gets the temporary failure.
                Err(_) if one_by_one => match store.insert_messages(&own).await {
                    Ok(()) => Ok(own),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot store message");
                        Err(e.to_string())
                    }
                },
                Err(e) => Err(e.to_string()),
            };
            let _ = done.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Spool;
    use crate::store::{MessageKind, NewMessage, Store};

    fn message(id: &str) -> NewMessage {
        NewMessage {
            id: id.into(),
            list: "news@lists.example.org".into(),
            kind: MessageKind::Post,
            token: None,
            mail_from: "ann@example.org".into(),
            rcpt_to: vec!["news@lists.example.org".into()],
            client_ip: "127.0.0.1".into(),
            helo: "client.example.org".into(),
            raw: b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
            received_at: 1,
            node: "test".into(),
            lease: None,
        }
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("roost.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_lone_transaction_is_committed_without_waiting() {
        let (_dir, store) = store().await;
        // A window no test could sit out: only the rule "nothing else is under way" can
        // let this commit return. On this one-thread runtime the writer runs only after
        // the count has dropped (on the node's, see `Spool::commit`).
        let spool = Spool::start(store, 1, Duration::from_secs(600));
        let open = spool.open();
        let done = tokio::time::timeout(
            Duration::from_secs(60),
            spool.commit(vec![message("m1")], open),
        )
        .await;
        assert!(matches!(done, Ok(Ok(ref m)) if m.len() == 1), "{done:?}");
    }

    #[tokio::test]
    async fn a_commit_waits_for_a_transaction_already_under_way() {
        let (_dir, store) = store().await;
        let spool = Spool::start(store.clone(), 1, Duration::from_secs(600));
        let (a, b) = (spool.open(), spool.open());
        let first = tokio::spawn({
            let spool = spool.clone();
            async move { spool.commit(vec![message("m1")], a).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !first.is_finished(),
            "committed without the message under way"
        );
        let second = spool.commit(vec![message("m2")], b).await.unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(first.await.unwrap().unwrap().len(), 1);
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(stored, 2);
    }
}

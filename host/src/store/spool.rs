//! Group commit: SMTP sessions hand their messages to a few writer tasks, each of which
//! commits whatever is waiting in one transaction and then answers every session in it.
//! One fsync then covers many 250 replies, so durability does not cap intake speed.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::{NewMessage, Result, Store, StoreError};

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
}

impl Spool {
    /// Start `writers` writer tasks on `store`. SQLite has one writer at a time anyway; on
    /// PostgreSQL a few writers overlap their commits.
    pub fn start(store: Store, writers: usize) -> Spool {
        let (tx, rx) = mpsc::channel::<Submission>(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            crate::spawn(writer(store.clone(), rx.clone()));
        }
        Spool { tx }
    }

    /// Store the messages durably; `Ok` (with the messages back) only after they are
    /// committed.
    pub async fn commit(&self, messages: Vec<NewMessage>) -> Result<Vec<NewMessage>> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Submission { messages, done })
            .await
            .map_err(|_| StoreError::Invalid("the spool is shut down".into()))?;
        match wait.await {
            Ok(Ok(messages)) => Ok(messages),
            Ok(Err(e)) => Err(StoreError::Invalid(e)),
            Err(_) => Err(StoreError::Invalid("the spool writer stopped".into())),
        }
    }
}

async fn writer(store: Store, rx: Arc<Mutex<mpsc::Receiver<Submission>>>) {
    loop {
        // Take what is waiting (at least one submission), then release the receiver so
        // another writer can gather the next group while this one commits.
        let group = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut bytes: usize = first.messages.iter().map(|m| m.raw.len()).sum();
            let mut group = vec![first];
            while group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
                match rx.try_recv() {
                    Ok(s) => {
                        bytes += s.messages.iter().map(|m| m.raw.len()).sum::<usize>();
                        group.push(s);
                    }
                    Err(_) => break,
                }
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

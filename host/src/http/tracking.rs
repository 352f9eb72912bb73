//! Click and open tracking: `/t/c/{token}` records a click and redirects to the link the
//! post declared (never anywhere else: no open redirect), `/t/o/{token}` records an open
//! and answers a 1x1 GIF. Tokens are signed and name a recipient row (and a link number),
//! so any node serves any token. Known prefetchers (mail privacy proxies, link scanners)
//! are recorded apart from people (`click-prefetch`, `open-prefetch`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::HttpState;
use crate::{
    pipeline::edits,
    store::{NewEvent, Store},
    tokens::Purpose,
};

/// The smallest transparent GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// User agents of machines that fetch links and images before (or instead of) a person.
const PREFETCHERS: &[&str] = &[
    "googleimageproxy",
    "yahoomailproxy",
    "ymailproxy",
    "barracuda",
    "mimecast",
    "proofpoint",
    "safelinks",
    "symantec",
    "trendmicro",
    "bitdefender",
    "mailscanner",
    "microsoft office",
    "outlook-ios",
    "bingpreview",
    "slackbot",
];

/// Tokens counted in the last [`Recent::WINDOW`]: a token is counted at most once in it, so
/// a flood of clicks on one link (a script, a scanner retrying) neither grows the events
/// table nor skews the counts. The visitor is redirected every time all the same.
#[derive(Default)]
pub struct Recent {
    seen: Mutex<HashMap<u64, std::time::Instant>>,
}

impl Recent {
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(5);
    /// Tokens remembered at most; past it, the old ones are forgotten first.
    const MOST: usize = 100_000;

    /// Whether `token` was not counted in the last moments (and is now). A prefetcher's
    /// request and a person's are counted apart, so a link scanner's hit does not hide the
    /// click that follows it.
    pub fn first(&self, token: &str, prefetch: bool) -> bool {
        use std::hash::BuildHasher;
        static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        let key = KEYS
            .get_or_init(Default::default)
            .hash_one((token.to_ascii_lowercase(), prefetch));
        let now = std::time::Instant::now();
        let Ok(mut seen) = self.seen.lock() else {
            return true;
        };
        if seen
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < Self::WINDOW)
        {
            return false;
        }
        if seen.len() >= Self::MOST {
            seen.retain(|_, at| now.duration_since(*at) < Self::WINDOW);
            if seen.len() >= Self::MOST {
                seen.clear();
            }
        }
        seen.insert(key, now);
        true
    }
}

/// What tracking needs per recipient and per post, kept in memory: a click or an open is
/// then only the event's write (recipient rows and a post's links do not change).
#[derive(Default)]
pub struct LinkCache {
    posts: Mutex<HashMap<String, Arc<Vec<String>>>>,
    recipients: Mutex<HashMap<i64, Arc<Tracked>>>,
    /// Lookups of recipients not in the cache, gathered into one query (started on first
    /// use).
    lookups: std::sync::OnceLock<Lookups>,
}

type Reply = tokio::sync::oneshot::Sender<Option<Tracked>>;

/// Recipient lookups gathered: whoever asks while a query runs is answered by the next one,
/// which reads them all (a first click of each token is the common case, and one indexed
/// read per click would cap a node at the database's round trips).
struct Lookups {
    tx: tokio::sync::mpsc::Sender<(i64, Reply)>,
}

impl Lookups {
    fn start(store: Store) -> Lookups {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(i64, Reply)>(8_192);
        crate::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < 500 {
                    match rx.try_recv() {
                        Ok(l) => batch.push(l),
                        Err(_) => break,
                    }
                }
                let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
                let found = match store.tracked_recipients(&ids).await {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot look up tracked recipients");
                        HashMap::new()
                    }
                };
                for (id, reply) in batch {
                    let _ = reply.send(found.get(&id).cloned());
                }
            }
        });
        Lookups { tx }
    }

    async fn get(&self, id: i64) -> Option<Tracked> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx.send((id, reply)).await.ok()?;
        answer.await.ok()?
    }
}

/// A recipient row as tracking sees it: (list, post id, address).
type Tracked = (String, String, String);

const CACHE_POSTS: usize = 1024;
const CACHE_RECIPIENTS: usize = 200_000;

impl LinkCache {
    /// (list, post id, address) of a recipient row.
    async fn recipient(&self, store: &Store, id: i64) -> Option<Arc<Tracked>> {
        if let Some(r) = self.recipients.lock().ok()?.get(&id) {
            return Some(r.clone());
        }
        let lookups = self.lookups.get_or_init(|| Lookups::start(store.clone()));
        let found = Arc::new(lookups.get(id).await?);
        if let Ok(mut cache) = self.recipients.lock() {
            if cache.len() >= CACHE_RECIPIENTS {
                cache.clear();
            }
            cache.insert(id, found.clone());
        }
        Some(found)
    }

    /// The links a post declared, in order.
    async fn links(&self, store: &Store, post: &str) -> Option<Arc<Vec<String>>> {
        if let Some(l) = self.posts.lock().ok()?.get(post) {
            return Some(l.clone());
        }
        let edits_json = store.post_edits(post).await.ok()?;
        let links = Arc::new(edits::tracked_links(edits_json.as_deref()));
        if let Ok(mut cache) = self.posts.lock() {
            if cache.len() >= CACHE_POSTS {
                cache.clear();
            }
            cache.insert(post.to_string(), links.clone());
        }
        Some(links)
    }
}

fn prefetcher(method: &Method, headers: &HeaderMap) -> bool {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    method == Method::HEAD || PREFETCHERS.iter().any(|p| agent.contains(p))
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "This link is not valid.\n").into_response()
}

/// Count `kind` (`click`, `open`; `-prefetch` added for a known prefetcher) for the
/// recipient. On failure the visitor still gets where they were going; the count misses one.
async fn record(
    state: &HttpState,
    who: &Tracked,
    kind: &str,
    key: Option<String>,
    method: &Method,
    headers: &HeaderMap,
) {
    let (list, post, address) = who;
    let kind = if prefetcher(method, headers) {
        format!("{kind}-prefetch")
    } else {
        kind.to_string()
    };
    let event = NewEvent {
        kind,
        post_id: Some(post.clone()),
        member: Some(address.clone()),
        key,
    };
    state.events.record(list.clone(), event).await;
}

/// The recipient a valid token of `purpose` names, with the token's other fields.
async fn tracked<const N: usize>(
    state: &HttpState,
    purpose: Purpose,
    token: &str,
) -> Option<(Arc<Tracked>, [u64; N])> {
    let fields = <[u64; N]>::try_from(state.keys.verify(purpose, token)?).ok()?;
    let recipient = i64::try_from(*fields.first()?).ok()?;
    Some((
        state.links.recipient(&state.store, recipient).await?,
        fields,
    ))
}

pub async fn click(
    State(state): State<Arc<HttpState>>,
    Path(token): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some((who, [_, n])) = tracked::<2>(&state, Purpose::Click, &token).await else {
        return not_found();
    };
    let Some(links) = state.links.links(&state.store, &who.1).await else {
        return not_found();
    };
    let Some(url) = usize::try_from(n).ok().and_then(|n| links.get(n)) else {
        return not_found();
    };
    if state.recent.first(&token, prefetcher(&method, &headers)) {
        record(
            &state,
            &who,
            "click",
            Some(n.to_string()),
            &method,
            &headers,
        )
        .await;
    }
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, url.as_str()),
            (header::CACHE_CONTROL, "no-store"),
        ],
    )
        .into_response()
}

pub async fn open(
    State(state): State<Arc<HttpState>>,
    Path(token): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some((who, _)) = tracked::<1>(&state, Purpose::Open, &token).await else {
        return not_found();
    };
    if state.recent.first(&token, prefetcher(&method, &headers)) {
        record(&state, &who, "open", None, &method, &headers).await;
    }
    (
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store, max-age=0"),
        ],
        PIXEL,
    )
        .into_response()
}

/// Group commit of tracking events: handlers hand their event over and wait for the
/// commit that holds it (one transaction for every click of the last moment, rather than
/// one each), so a counted click is a stored click.
pub struct EventSpool {
    tx: tokio::sync::mpsc::Sender<(String, NewEvent, tokio::sync::oneshot::Sender<bool>)>,
}

impl EventSpool {
    pub fn start(store: Store) -> EventSpool {
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<(String, NewEvent, tokio::sync::oneshot::Sender<bool>)>(
                8_192,
            );
        crate::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < 1_000 {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                let (events, waiters): (Vec<(String, NewEvent)>, Vec<_>) =
                    batch.into_iter().map(|(list, e, w)| ((list, e), w)).unzip();
                let ok = match store.emit_events("tracking", &events).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, events = events.len(), "cannot record tracking events");
                        false
                    }
                };
                for w in waiters {
                    let _ = w.send(ok);
                }
            }
        });
        EventSpool { tx }
    }

    /// Record an event; `false` when it could not be stored.
    pub async fn record(&self, list: String, event: NewEvent) -> bool {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send((list, event, done)).await.is_err() {
            return false;
        }
        wait.await.unwrap_or(false)
    }
}

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
use crate::{pipeline::edits, plugins::wit::Edit, store::NewEvent, tokens::Purpose};

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

/// Tracked links of posts, by post id (decoded once from the stored edits).
#[derive(Default)]
pub struct LinkCache(Mutex<HashMap<String, Arc<Vec<String>>>>);

const CACHE_POSTS: usize = 1024;

impl LinkCache {
    fn links(&self, post: &str, edits_json: Option<&str>) -> Arc<Vec<String>> {
        if let Ok(cache) = self.0.lock()
            && let Some(l) = cache.get(post)
        {
            return l.clone();
        }
        let links: Vec<String> = edits_json
            .and_then(edits::decode)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| match e {
                Edit::TrackLink(url) => Some(url),
                _ => None,
            })
            .collect();
        let links = Arc::new(links);
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() >= CACHE_POSTS {
                cache.clear();
            }
            cache.insert(post.to_string(), links.clone());
        }
        links
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

async fn record(state: &HttpState, list: &str, event: NewEvent) {
    if let Err(e) = state.store.emit_event(list, "tracking", &event).await {
        // The visitor still gets where they were going; the count misses one.
        tracing::warn!(error = %e, "cannot record a tracking event");
    }
}

pub async fn click(
    State(state): State<Arc<HttpState>>,
    Path(token): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some([recipient, n]) = state
        .keys
        .verify(Purpose::Click, &token)
        .and_then(|f| <[u64; 2]>::try_from(f).ok())
    else {
        return not_found();
    };
    let Ok(Some((list, post, address, edits_json))) = state
        .store
        .tracked_recipient(i64::try_from(recipient).unwrap_or(-1))
        .await
    else {
        return not_found();
    };
    let links = state.links.links(&post, edits_json.as_deref());
    let Some(url) = usize::try_from(n).ok().and_then(|n| links.get(n)) else {
        return not_found();
    };
    let kind = if prefetcher(&method, &headers) {
        "click-prefetch"
    } else {
        "click"
    };
    record(
        &state,
        &list,
        NewEvent {
            kind: kind.into(),
            post_id: Some(post),
            member: Some(address),
            key: Some(n.to_string()),
        },
    )
    .await;
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
    let Some([recipient]) = state
        .keys
        .verify(Purpose::Open, &token)
        .and_then(|f| <[u64; 1]>::try_from(f).ok())
    else {
        return not_found();
    };
    let Ok(Some((list, post, address, _))) = state
        .store
        .tracked_recipient(i64::try_from(recipient).unwrap_or(-1))
        .await
    else {
        return not_found();
    };
    let kind = if prefetcher(&method, &headers) {
        "open-prefetch"
    } else {
        "open"
    };
    record(
        &state,
        &list,
        NewEvent {
            kind: kind.into(),
            post_id: Some(post),
            member: Some(address),
            key: None,
        },
    )
    .await;
    (
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store, max-age=0"),
        ],
        PIXEL,
    )
        .into_response()
}

//! The REST API under `/api/v1`: lists, members (add, remove, list with paging) and held
//! posts (list, approve, reject). Every call needs `Authorization: Bearer TOKEN` (`[http]
//! api_token`); without it, 401 and nothing changes. Errors are `{"error": "..."}`.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, Query, Request, State, rejection::JsonRejection},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, HttpState};
use crate::{
    config::ListConfig,
    message, metrics,
    store::{DeliveryStatus, check_address},
};

pub fn router(state: Arc<HttpState>) -> Router<Arc<HttpState>> {
    Router::new()
        .route("/lists", get(lists))
        .route("/lists/{list}", get(list))
        .route("/lists/{list}/members", get(members).post(add_member))
        .route(
            "/lists/{list}/members/{address}",
            delete(remove_member).patch(change_member),
        )
        .route("/lists/{list}/held", get(held))
        .route("/lists/{list}/held/{id}/approve", post(approve))
        .route("/lists/{list}/held/{id}/reject", post(reject))
        .route("/reports/speed", get(super::reports::speed))
        .route("/reports/posts/{id}", get(super::reports::post))
        .fallback(|| async { ApiError::not_found("no such API endpoint") })
        .layer(middleware::from_fn_with_state(state, authenticate))
}

async fn authenticate(
    State(state): State<Arc<HttpState>>,
    request: Request,
    next: Next,
) -> Response {
    match refusal(&state, request.headers(), "Bearer") {
        None => next.run(request).await,
        Some(refused) => refused,
    }
}

/// `None` when a request carries the API token: as `Authorization: Bearer TOKEN`, or as the
/// password of HTTP Basic authentication (any user name), which a browser asks for by
/// itself. Otherwise the 401 to send, whose `WWW-Authenticate` names `scheme`.
pub(super) fn refusal(
    state: &HttpState,
    headers: &header::HeaderMap,
    scheme: &'static str,
) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            if let Some(token) = v.strip_prefix("Bearer ") {
                return Some(token.trim().to_string());
            }
            use base64::Engine as _;
            let pair = base64::engine::general_purpose::STANDARD
                .decode(v.strip_prefix("Basic ")?.trim())
                .ok()?;
            let pair = String::from_utf8(pair).ok()?;
            Some(pair.split_once(':')?.1.to_string())
        });
    let ok = match (&state.api_token, given) {
        (Some(expected), Some(given)) => constant_time_eq(expected.as_bytes(), given.as_bytes()),
        _ => false,
    };
    if ok {
        return None;
    }
    let message = if state.api_token.is_none() {
        "the API is off: set [http] api_token (or ROOST_API_TOKEN)"
    } else {
        "missing or wrong API token"
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static(scheme),
    );
    Some(response)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn find<'a>(state: &'a HttpState, name: &str) -> Result<&'a ListConfig, ApiError> {
    state
        .list(name)
        .ok_or_else(|| ApiError::not_found(format!("no list `{name}`")))
}

async fn describe(state: &HttpState, l: &ListConfig) -> Result<Value, ApiError> {
    let members = state.store.member_count(&l.address).await?;
    let held = state.store.count_in_state(&l.address, "held").await?;
    Ok(json!({
        "address": l.address,
        "name": l.name,
        "owners": l.owners,
        "plugins": l.plugins.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        "members": members,
        "held": held,
    }))
}

async fn lists(State(state): State<Arc<HttpState>>) -> Result<Json<Value>, ApiError> {
    let mut lists: Vec<&ListConfig> = state.lists.values().collect();
    lists.sort_by(|a, b| a.address.cmp(&b.address));
    let mut out = Vec::with_capacity(lists.len());
    for l in lists {
        out.push(describe(&state, l).await?);
    }
    Ok(Json(json!({ "lists": out })))
}

async fn list(
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let l = find(&state, &name)?;
    Ok(Json(describe(&state, l).await?))
}

#[derive(Deserialize)]
struct Page {
    after: Option<String>,
    limit: Option<u32>,
}

async fn members(
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let l = find(&state, &name)?;
    let Query(page) = page.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let rows = state
        .store
        .members_page(&l.address, page.after.as_deref(), limit)
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|m| m.address.clone()))
        .flatten();
    let members: Vec<Value> = rows
        .into_iter()
        .map(|m| {
            json!({
                "address": m.address,
                "name": m.name,
                "status": m.status.as_str(),
                "moderated": m.moderated,
                "bounce_score": m.bounce_score,
                "bounce_note": m.bounce_note,
                "bounce_at": m.bounce_at.map(message::rfc3339),
                "joined_at": message::rfc3339(m.joined_at),
            })
        })
        .collect();
    Ok(Json(json!({ "members": members, "next": next })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    address: String,
    name: Option<String>,
}

async fn add_member(
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
    body: Result<Json<NewMember>, JsonRejection>,
) -> Result<Response, ApiError> {
    let l = find(&state, &name)?;
    let Json(m) = body.map_err(ApiError::from)?;
    let address = m.address.trim();
    check_address(address).map_err(ApiError::bad_request)?;
    if m.name
        .as_deref()
        .is_some_and(|n| n.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request("name must be one line of text"));
    }
    let added = state
        .store
        .add_member(&l.address, address, m.name.as_deref())
        .await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "address": address, "added": added }))).into_response())
}

async fn remove_member(
    State(state): State<Arc<HttpState>>,
    Path((name, address)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let l = find(&state, &name)?;
    if state.store.remove_member(&l.address, &address).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!(
            "{address} is not a member of {}",
            l.address
        )))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberChange {
    status: Option<String>,
    moderated: Option<bool>,
    bounce_score: Option<f64>,
}

/// Change a member's delivery status, moderated flag or bounce score (an owner re-enabling
/// a member whose address bounced, for example). All or nothing is checked first.
async fn change_member(
    State(state): State<Arc<HttpState>>,
    Path((name, address)): Path<(String, String)>,
    body: Result<Json<MemberChange>, JsonRejection>,
) -> Result<Response, ApiError> {
    let l = find(&state, &name)?;
    let Json(c) = body.map_err(ApiError::from)?;
    let status = match c.status.as_deref() {
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status `{s}` is not one of enabled, disabled-bounces, disabled-member, disabled-owner"
            ))
        })?),
        None => None,
    };
    if c.bounce_score.is_some_and(|s| !s.is_finite() || s < 0.0) {
        return Err(ApiError::bad_request("bounce_score must be a number ≥ 0"));
    }
    let store = &state.store;
    if store.member(&l.address, &address).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "{address} is not a member of {}",
            l.address
        )));
    }
    if let Some(s) = status {
        store.set_member_status(&l.address, &address, s).await?;
    }
    if let Some(m) = c.moderated {
        store.set_member_moderated(&l.address, &address, m).await?;
    }
    if let Some(score) = c.bounce_score {
        store
            .set_member_bounce_score(&l.address, &address, score)
            .await?;
    }
    if status.is_some() || c.bounce_score.is_some() {
        store
            .note_member_bounce(&l.address, &address, "changed through the REST API")
            .await?;
    }
    let m = store.member(&l.address, &address).await?;
    Ok(Json(json!({
        "address": address,
        "status": m.as_ref().map(|m| m.status.as_str()),
        "moderated": m.as_ref().map(|m| m.moderated),
        "bounce_score": m.as_ref().map(|m| m.bounce_score),
    }))
    .into_response())
}

async fn held(
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let l = find(&state, &name)?;
    let posts = state
        .store
        .messages_in_state(&l.address, "held", 1000)
        .await?;
    let held: Vec<Value> = posts
        .into_iter()
        .map(|m| {
            json!({
                "id": m.id,
                "received_at": message::rfc3339(m.received_at),
                "sender": m.mail_from,
                "subject": message::header(&m.raw, "subject").unwrap_or_default(),
                "reason": m.reason,
            })
        })
        .collect();
    Ok(Json(json!({ "held": held })))
}

async fn approve(
    State(state): State<Arc<HttpState>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let l = find(&state, &name)?;
    if state.store.approve_held(&l.address, &id).await? {
        metrics::global().add(metrics::Counter::PostsAccepted, 1);
        Ok(Json(json!({ "id": id, "state": "approved" })))
    } else {
        Err(not_held(&state, &l.address, &id).await)
    }
}

/// Why a held post could not be decided: 404 when the list has no such post, 409 when it
/// was decided before.
async fn not_held(state: &HttpState, list: &str, id: &str) -> ApiError {
    let missing = || ApiError::new(StatusCode::NOT_FOUND, format!("{list} has no post {id}"));
    // `messages` leaves unknown ids out; an error here is the database's (503).
    match state.store.messages(&[id.to_string()]).await {
        Ok(found) => match found.into_iter().next() {
            Some(m) if m.list == list && m.state == "stored" => ApiError::new(
                StatusCode::CONFLICT,
                format!("{id} on {list} is not processed yet, so not held (yet)"),
            ),
            Some(m) if m.list == list => ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "{id} is not held on {list}: it was decided before ({})",
                    m.state
                ),
            ),
            _ => missing(),
        },
        Err(e) => e.into(),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rejection {
    reason: Option<String>,
}

async fn reject(
    State(state): State<Arc<HttpState>>,
    Path((name, id)): Path<(String, String)>,
    body: Option<Json<Rejection>>,
) -> Result<Json<Value>, ApiError> {
    let l = find(&state, &name)?;
    let reason = body
        .and_then(|Json(r)| r.reason)
        .unwrap_or_else(|| "rejected by a moderator".into());
    if reason.chars().any(char::is_control) {
        return Err(ApiError::bad_request("reason must be one line of text"));
    }
    if state.store.reject_held(&l.address, &id, &reason).await? {
        metrics::global().add(metrics::Counter::PostsRejected, 1);
        Ok(Json(json!({ "id": id, "state": "rejected" })))
    } else {
        Err(not_held(&state, &l.address, &id).await)
    }
}

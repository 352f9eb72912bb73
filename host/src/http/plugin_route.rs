//! `/p/{list}/{plugin}/...`: HTTP requests for a list's plugin, answered by its `on-http`
//! hook in the sandbox. A failing plugin gets 502; the node goes on.

use std::sync::Arc;

use axum::{
    body::{Body, to_bytes},
    extract::{Path, Request, State},
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use super::{ApiError, HttpState};
use crate::plugins::{Hook, wit};

/// `/p/{list}/{plugin}` and `/reports`: to the same with a trailing slash, as a web server
/// does for a directory, so relative links in a plugin's pages resolve under its prefix.
pub async fn add_slash(request: Request) -> Response {
    let uri = request.uri();
    let location = match uri.query() {
        Some(q) => format!("{}/?{q}", uri.path()),
        None => format!("{}/", uri.path()),
    };
    match HeaderValue::from_str(&location) {
        Ok(v) => (
            StatusCode::PERMANENT_REDIRECT,
            [(axum::http::header::LOCATION, v)],
        )
            .into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn call_root(
    state: State<Arc<HttpState>>,
    Path((list, plugin)): Path<(String, String)>,
    request: Request,
) -> Response {
    dispatch(state, list, plugin, String::new(), request).await
}

pub async fn call(
    state: State<Arc<HttpState>>,
    Path((list, plugin, rest)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    dispatch(state, list, plugin, rest, request).await
}

/// `/reports/...`: the node-level `reports` plugin's pages (`[[plugin]] use = "reports"` in
/// `roost.toml`).
pub async fn reports_root(state: State<Arc<HttpState>>, request: Request) -> Response {
    node_plugin(state, "reports", String::new(), request).await
}

pub async fn reports(
    state: State<Arc<HttpState>>,
    Path(rest): Path<String>,
    request: Request,
) -> Response {
    node_plugin(state, "reports", rest, request).await
}

/// The `reports` plugin's pages show every list's figures, posts and members: they need
/// the API token (a browser asks for it as a password).
const PRIVATE_PLUGINS: &[&str] = &["reports"];
const REPORTS_REALM: &str = "Basic realm=\"Roost reports\", charset=\"UTF-8\"";

/// The 401 for a private plugin's page asked for without the API token (before any lookup,
/// so nobody learns which lists and plugins exist).
fn refused_private(state: &HttpState, plugin: &str, request: &Request) -> Option<Response> {
    PRIVATE_PLUGINS
        .contains(&plugin)
        .then(|| super::api::refusal(state, request.headers(), REPORTS_REALM))
        .flatten()
}

async fn node_plugin(
    State(state): State<Arc<HttpState>>,
    plugin: &str,
    rest: String,
    request: Request,
) -> Response {
    if let Some(refused) = refused_private(&state, plugin, &request) {
        return refused;
    }
    let Some(bound) = state
        .chains
        .node
        .iter()
        .find(|b| b.scope.plugin == plugin && b.plugin.implements(Hook::OnHttp))
        .cloned()
    else {
        return ApiError::not_found(format!(
            "no node-level plugin `{plugin}`: add [[plugin]] use = \"{plugin}\" to roost.toml"
        ))
        .into_response();
    };
    answer(&state, &bound, rest, request).await
}

async fn dispatch(
    State(state): State<Arc<HttpState>>,
    list: String,
    plugin: String,
    rest: String,
    request: Request,
) -> Response {
    if let Some(refused) = refused_private(&state, &plugin, &request) {
        return refused;
    }
    let Some(l) = state.list(&list) else {
        return ApiError::not_found(format!("no list `{list}`")).into_response();
    };
    let Some(bound) = state.chains.lists.get(&l.address).and_then(|chain| {
        chain
            .iter()
            .find(|b| b.scope.plugin == plugin && b.plugin.implements(Hook::OnHttp))
            .cloned()
    }) else {
        return ApiError::not_found(format!(
            "no plugin `{plugin}` answers HTTP on {}",
            l.address
        ))
        .into_response();
    };
    answer(&state, &bound, rest, request).await
}

/// Hand the request to the plugin's `on-http` and its answer back.
async fn answer(
    state: &HttpState,
    bound: &crate::plugins::Bound,
    rest: String,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    // Read whole here (not through an extractor), so `[http] max_body` is applied by hand.
    let Ok(body) = to_bytes(body, state.max_body).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {} bytes", state.max_body),
        )
        .into_response();
    };
    let headers = parts
        .headers
        .iter()
        .filter_map(|(n, v)| {
            Some(wit::Header {
                name: n.as_str().to_string(),
                value: v.to_str().ok()?.to_string(),
            })
        })
        .collect();
    let request = wit::HttpRequest {
        method: parts.method.as_str().to_string(),
        path: format!("/{rest}"),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers,
        body: body.to_vec(),
    };
    match state.runtime.on_http(bound, &request).await {
        Ok(answer) => {
            let mut response = Response::new(Body::from(answer.body));
            *response.status_mut() =
                StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            for h in answer.headers {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(h.name.as_bytes()),
                    HeaderValue::from_str(&h.value),
                ) {
                    response.headers_mut().append(n, v);
                }
            }
            response
        }
        Err(e) => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

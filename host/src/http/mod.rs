//! The HTTP surface (axum on `[http] listen`): the links in copies (`/u/{token}`
//! unsubscribe, `/c/{token}` confirmations, `/t/c/` and `/t/o/` tracking), `/healthz`,
//! `/metrics`, the REST API under
//! `/api/v1` (`api.rs`) and the plugin routes `/p/{list}/{plugin}/...` (`plugin_route.rs`).
//! Every node serves every token: they are checked with the cluster's key, and every state
//! change they cause is a conditional update in the database.

mod api;
mod error;
mod links;
mod plugin_route;
mod reports;
mod server;
mod tracking;

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{any, get},
};
use tokio::{net::TcpListener, sync::watch};

use crate::{
    config::{HttpLimits, ListConfig},
    pipeline::Chains,
    plugins::Runtime,
    store::Store,
    tokens::TokenKey,
};

pub use error::ApiError;
pub use tracking::{EventSpool, Recent};

/// What the handlers share.
pub struct HttpState {
    pub store: Store,
    pub node: String,
    pub lists: HashMap<String, ListConfig>,
    pub keys: TokenKey,
    pub public_url: String,
    /// The REST API's bearer token; `None`: the API refuses every call.
    pub api_token: Option<String>,
    pub runtime: Arc<Runtime>,
    pub chains: Arc<Chains>,
    /// Tracked links per post, for `/t/c/`.
    pub links: tracking::LinkCache,
    /// Where `/t/` handlers record their events (group commit).
    pub events: tracking::EventSpool,
    /// Largest request body (`[http] max_body`), for handlers that read a body whole.
    pub max_body: usize,
    /// `/metrics` is served on `[http] metrics_listen`, not with the rest.
    pub metrics_apart: bool,
    /// Click and open tokens counted in the last moments (`tracking::Recent`).
    pub recent: tracking::Recent,
}

impl HttpState {
    /// A list by its address or its name (the part before `@`).
    pub fn list(&self, name: &str) -> Option<&ListConfig> {
        let wanted = name.to_ascii_lowercase();
        self.lists
            .get(&wanted)
            .or_else(|| self.lists.values().find(|l| l.local_part() == wanted))
    }
}

pub fn router(state: Arc<HttpState>) -> Router {
    let mut router = Router::new().route("/healthz", get(healthz));
    if !state.metrics_apart {
        router = router.route("/metrics", get(metrics));
    }
    router
        .route(
            "/u/{token}",
            get(links::unsubscribe_page).post(links::unsubscribe),
        )
        .route("/c/{token}", get(links::confirm_page).post(links::confirm))
        .route("/t/c/{token}", get(tracking::click))
        .route("/t/o/{token}", get(tracking::open))
        .route("/reports", any(plugin_route::add_slash))
        .route("/reports/", any(plugin_route::reports_root))
        .route("/reports/{*rest}", any(plugin_route::reports))
        .route("/p/{list}/{plugin}", any(plugin_route::add_slash))
        .route("/p/{list}/{plugin}/", any(plugin_route::call_root))
        .route("/p/{list}/{plugin}/{*rest}", any(plugin_route::call))
        .nest("/api/v1", api::router(state.clone()))
        .fallback(|| async { ApiError::not_found("no such page") })
        .with_state(state)
}

/// Serve until `shutdown` turns true, with `limits` on every client (`server.rs`): a body
/// larger than `max_body` gets 413 on every route, a request not read and answered within
/// `request_timeout` gets 408.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    limits: HttpLimits,
    shutdown: watch::Receiver<bool>,
) {
    let deadline = limits.request_timeout;
    let app = router(state)
        .layer(axum::extract::DefaultBodyLimit::max(
            usize::try_from(limits.max_body).unwrap_or(usize::MAX),
        ))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                match tokio::time::timeout(deadline, next.run(req)).await {
                    Ok(response) => response,
                    Err(_) => {
                        crate::metrics::global().add(crate::metrics::Counter::HttpTimeouts, 1);
                        ApiError::new(StatusCode::REQUEST_TIMEOUT, "request took too long")
                            .into_response()
                    }
                }
            },
        ));
    server::run(listener, app, limits, shutdown).await;
}

/// `/metrics` alone, for `[http] metrics_listen`.
pub async fn serve_metrics(
    listener: TcpListener,
    state: Arc<HttpState>,
    limits: HttpLimits,
    shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::not_found("only /metrics here") })
        .with_state(state);
    server::run(listener, app, limits, shutdown).await;
}

/// 200 when the database answers, 503 when it does not.
async fn healthz(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    match sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(state.store.pool())
        .await
    {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n"),
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::global().render(&state.node),
    )
}

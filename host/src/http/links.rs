//! The links in copies and notices. A GET only shows what the link would do, with a button:
//! mail scanners and link previewers open links, and must not unsubscribe anyone. The POST
//! acts (RFC 8058 one-click unsubscribe posts `List-Unsubscribe=One-Click` straight away).
//! A forged, altered or unknown token gets 404 and changes nothing.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};

use super::HttpState;
use crate::{confirm, tokens::Purpose};

/// A small page; `text` is escaped here.
fn page(status: StatusCode, title: &str, text: &str, button: Option<&str>) -> Response {
    let form = button.map_or(String::new(), |label| {
        format!(
            "<form method=\"post\"><button type=\"submit\">{}</button></form>",
            escape(label)
        )
    });
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1><p>{}</p>{form}</body></html>\n",
        escape(text),
        t = escape(title)
    );
    (status, Html(body)).into_response()
}

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Link not valid",
        "This link is not valid or no longer applies.",
        None,
    )
}

fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again later",
        "The list server cannot reach its database just now. Nothing was changed.",
        None,
    )
}

fn member_of(state: &HttpState, token: &str) -> Option<i64> {
    match state.keys.verify(Purpose::Unsubscribe, token)?.as_slice() {
        // Member and copy; links sent before the copy was added name the member alone.
        [id] | [id, _] if *id > 0 => i64::try_from(*id).ok(),
        _ => None,
    }
}

pub async fn unsubscribe_page(
    State(state): State<Arc<HttpState>>,
    Path(token): Path<String>,
) -> Response {
    let Some(id) = member_of(&state, &token) else {
        return not_found();
    };
    match state.store.member_by_id(id).await {
        Ok(Some((list, address))) => page(
            StatusCode::OK,
            &format!("Unsubscribe from {list}"),
            &format!("Stop sending posts of {list} to {address}?"),
            Some("Unsubscribe"),
        ),
        Ok(None) => page(
            StatusCode::OK,
            "Not subscribed",
            "This address is not subscribed (any more).",
            None,
        ),
        Err(_) => unavailable(),
    }
}

/// RFC 8058 one-click, and the page's button: remove the member at once.
pub async fn unsubscribe(
    State(state): State<Arc<HttpState>>,
    Path(token): Path<String>,
) -> Response {
    let Some(id) = member_of(&state, &token) else {
        return not_found();
    };
    match state.store.remove_member_by_id(id).await {
        Ok(Some((list, address))) => {
            tracing::info!(%list, %address, "unsubscribed by link");
            page(
                StatusCode::OK,
                "Unsubscribed",
                &format!("{address} will get no more posts from {list}."),
                None,
            )
        }
        Ok(None) => page(
            StatusCode::OK,
            "Unsubscribed",
            "This address is not subscribed (any more).",
            None,
        ),
        Err(_) => unavailable(),
    }
}

pub async fn confirm_page(
    State(state): State<Arc<HttpState>>,
    Path(token): Path<String>,
) -> Response {
    match confirm::describe(&state.store, &state.keys, &token).await {
        Some(what) => page(StatusCode::OK, "Please confirm", &what, Some("Confirm")),
        None => not_found(),
    }
}

pub async fn confirm(State(state): State<Arc<HttpState>>, Path(token): Path<String>) -> Response {
    match confirm::execute(&state.store, &state.keys, &token).await {
        Ok(Some(confirm::Outcome::Done(text))) => page(StatusCode::OK, "Done", &text, None),
        Ok(Some(confirm::Outcome::Nothing(text))) => {
            page(StatusCode::CONFLICT, "Nothing to do", &text, None)
        }
        Ok(None) => not_found(),
        Err(_) => unavailable(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

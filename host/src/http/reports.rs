//! Reports as data under `/api/v1/reports/...` (behind the API's bearer token): Server
//! Sending Speed as JSON or CSV, and one post's figures as JSON.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::header,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, HttpState};
use crate::{message::rfc3339, store::now_ms};

const HOUR_MS: i64 = 3_600_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeedQuery {
    hours: Option<u32>,
    node: Option<String>,
    format: Option<String>,
}

pub async fn speed(
    State(state): State<Arc<HttpState>>,
    query: Result<Query<SpeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let hours = q.hours.unwrap_or(24);
    if !(1..=24 * 90).contains(&hours) {
        return Err(ApiError::bad_request("hours must be between 1 and 2160"));
    }
    let now = now_ms();
    let start = now - now.rem_euclid(HOUR_MS) - i64::from(hours - 1) * HOUR_MS;
    let rows = state
        .store
        .hourly_stats(start, now + 1, q.node.as_deref())
        .await?;
    match q.format.as_deref().unwrap_or("json") {
        "csv" => {
            let mut csv = String::from("hour,node,attempted,succeeded,failed\n");
            for r in &rows {
                csv.push_str(&format!(
                    "{},{},{},{},{}\n",
                    rfc3339(r.hour),
                    r.node,
                    r.attempted,
                    r.succeeded,
                    r.failed
                ));
            }
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
        }
        "json" => {
            let hours: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({
                        "hour": rfc3339(r.hour),
                        "node": r.node,
                        "attempted": r.attempted,
                        "succeeded": r.succeeded,
                        "failed": r.failed,
                    })
                })
                .collect();
            Ok(Json(json!({ "hours": hours })).into_response())
        }
        other => Err(ApiError::bad_request(format!(
            "format `{other}`: want json or csv"
        ))),
    }
}

pub async fn post(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Result<Json<crate::store::PostReport>, ApiError> {
    state
        .store
        .post_report(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no post {id}")))
}

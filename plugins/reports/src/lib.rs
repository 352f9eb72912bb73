//! reports: server and mailing reports as HTML pages with charts drawn on the server (SVG,
//! readable with no JavaScript). For the node in `roost.toml` (pages under `/reports/`), and
//! per list in its chain (pages under `/p/LIST/reports/`, that list's posts only):
//!
//! ```toml
//! [[plugin]]
//! use = "reports"
//! ```
//!
//! - `/`: the nodes and their liveness, the queue per destination, the recent posts;
//! - `/speed?hours=24&node=NAME`: Server Sending Speed, copies attempted, succeeded and
//!   failed per hour for the cluster or one node, with a table per node;
//! - `/posts/ID`: one post: recipients, delivered, deferred, bounced, unsubscribed, opens
//!   and clicks (total and unique, per link).

mod html;
mod posts;
mod speed;

use roost_plugin_sdk::{HookResult, HttpRequest, HttpResponse, Plugin, host::clock};

struct Reports;

impl Plugin for Reports {
    fn on_http(req: HttpRequest) -> HookResult<HttpResponse> {
        if req.method != "GET" {
            return Ok(HttpResponse::text(405, "reports are read with GET\n"));
        }
        Ok(match req.path.as_str() {
            // The host sends `/reports` and `/p/LIST/reports` to the same with a slash, so
            // relative links resolve under the prefix.
            "/" => index(),
            "/speed" => speed::speed(&req),
            p => match p.strip_prefix("/posts/") {
                Some(id) if !id.is_empty() && !id.contains('/') => posts::post(id),
                _ => HttpResponse::text(404, "no such report\n"),
            },
        })
    }
}

fn index() -> HttpResponse {
    let body = format!(
        "<p><a href=\"speed\">Server Sending Speed</a></p>{}<h2>Recent posts</h2>{}",
        speed::cluster(clock::now()),
        posts::recent()
    );
    html::page("Reports", &body)
}

roost_plugin_sdk::export_plugin!(Reports, hooks = [on_http]);

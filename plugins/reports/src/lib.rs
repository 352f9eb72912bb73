//! reports: the Server Sending Speed page, as HTML with a chart drawn on the server (SVG,
//! readable with no JavaScript). Enabled for the node in `roost.toml`:
//!
//! ```toml
//! [[plugin]]
//! use = "reports"
//! ```
//!
//! `GET /reports/speed?hours=24&node=NAME`: copies attempted, succeeded and failed per hour,
//! for one node or (without `node`) the whole cluster, with a table per node.

use std::collections::BTreeMap;

use roost_plugin_sdk::{
    Header, HookResult, HttpRequest, HttpResponse, Plugin,
    host::{clock, stats},
};

const HOUR_MS: u64 = 3_600_000;
const SERIES: [(&str, &str); 3] = [
    ("attempted", "#1f77b4"),
    ("succeeded", "#2ca02c"),
    ("failed", "#d62728"),
];

fn query(q: &str, key: &str) -> Option<String> {
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.replace('+', " "))
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `2026-11-25T13:00Z` → `13:00`.
fn label(ms: u64) -> String {
    let h = (ms / HOUR_MS) % 24;
    format!("{h:02}:00")
}

/// The chart: one polyline per series over the hours.
fn chart(hours: &[u64], values: &BTreeMap<u64, [u64; 3]>) -> String {
    let (w, h, left, bottom, top) = (720.0, 300.0, 50.0, 30.0, 20.0);
    let max = values
        .values()
        .flat_map(|v| v.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = hours.len().max(2) as f64;
    let x = |i: usize| left + (w - left - 30.0) * i as f64 / (n - 1.0);
    let y = |v: u64| top + (h - top - bottom) * (1.0 - v as f64 / max);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" \
         aria-label=\"Server Sending Speed\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#888\"/>\
         <text x=\"4\" y=\"{}\" font-size=\"11\">{}</text><text x=\"4\" y=\"{}\" font-size=\"11\">0</text>",
        h - bottom,
        w - 10.0,
        h - bottom,
        h - bottom,
        top + 4.0,
        max as u64,
        h - bottom
    );
    for (i, hour) in hours.iter().enumerate() {
        if hours.len() <= 12 || i % (hours.len() / 12 + 1) == 0 {
            svg.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
                x(i),
                h - 12.0,
                label(*hour)
            ));
        }
    }
    for (s, (name, color)) in SERIES.iter().enumerate() {
        let points: Vec<String> = hours
            .iter()
            .enumerate()
            .map(|(i, hour)| {
                let v = values.get(hour).map_or(0, |v| v[s]);
                format!("{:.1},{:.1}", x(i), y(v))
            })
            .collect();
        svg.push_str(&format!(
            "<g class=\"series\" data-series=\"{name}\"><polyline fill=\"none\" stroke=\"{color}\" \
             stroke-width=\"2\" points=\"{}\"/></g>\
             <rect x=\"{}\" y=\"4\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"13\" font-size=\"11\">{name}</text>",
            points.join(" "),
            left + 10.0 + 110.0 * s as f64,
            left + 24.0 + 110.0 * s as f64
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn speed(req: &HttpRequest) -> HttpResponse {
    let hours_back: u64 = query(&req.query, "hours")
        .and_then(|h| h.parse().ok())
        .filter(|h| (1..=24 * 90).contains(h))
        .unwrap_or(24);
    let node = query(&req.query, "node").filter(|n| !n.is_empty());
    let now = clock::now();
    let end = now - now % HOUR_MS + HOUR_MS;
    let start = end - hours_back * HOUR_MS;
    let rows = stats::hourly(start, end, node.as_deref());
    let hours: Vec<u64> = (0..hours_back).map(|i| start + i * HOUR_MS).collect();
    let mut total: BTreeMap<u64, [u64; 3]> = BTreeMap::new();
    let mut per_node: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    for r in &rows {
        let t = total.entry(r.hour).or_default();
        let p = per_node.entry(r.node.clone()).or_default();
        for (slot, v) in [r.attempted, r.succeeded, r.failed].into_iter().enumerate() {
            t[slot] += v;
            p[slot] += v;
        }
    }
    let scope = node
        .as_deref()
        .map_or("the cluster".to_string(), |n| format!("node {}", escape(n)));
    let mut table = String::from(
        "<table><tr><th>node</th><th>attempted</th><th>succeeded</th><th>failed</th></tr>",
    );
    for (n, v) in &per_node {
        table.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(n),
            v[0],
            v[1],
            v[2]
        ));
    }
    table.push_str("</table>");
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Server Sending Speed</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:right}}</style>\
         </head><body><h1>Server Sending Speed</h1>\
         <p>Copies attempted, succeeded and failed per hour for {scope}, last {hours_back} hours.</p>\
         {}<h2>By node</h2>{table}</body></html>\n",
        chart(&hours, &total)
    );
    HttpResponse {
        status: 200,
        headers: vec![Header::new("Content-Type", "text/html; charset=utf-8")],
        body: body.into_bytes(),
    }
}

struct Reports;

impl Plugin for Reports {
    fn on_http(req: HttpRequest) -> HookResult<HttpResponse> {
        Ok(match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/" | "/speed") => speed(&req),
            _ => HttpResponse::text(404, "no such report\n"),
        })
    }
}

roost_plugin_sdk::export_plugin!(Reports, hooks = [on_http]);

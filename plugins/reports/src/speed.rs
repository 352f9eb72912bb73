//! Server reports: Server Sending Speed (attempted, succeeded and failed per hour, for the
//! cluster or one node, as a line chart), the nodes and their liveness, and what waits per
//! destination.

use std::collections::BTreeMap;

use roost_plugin_sdk::{
    HttpRequest, HttpResponse,
    host::{clock, reports, stats},
};

use crate::html::{escape, page, query, table, time};

const HOUR_MS: u64 = 3_600_000;
const SERIES: [(&str, &str); 3] = [
    ("attempted", "#1f77b4"),
    ("succeeded", "#2ca02c"),
    ("failed", "#d62728"),
];

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

pub fn speed(req: &HttpRequest) -> HttpResponse {
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
    let by_node: Vec<Vec<String>> = per_node
        .iter()
        .map(|(n, v)| {
            vec![
                escape(n),
                v[0].to_string(),
                v[1].to_string(),
                v[2].to_string(),
            ]
        })
        .collect();
    let body = format!(
        "<p>Copies attempted, succeeded and failed per hour for {scope}, last {hours_back} \
         hours.</p>{}<h2>By node</h2>{}{}",
        chart(&hours, &total),
        table(
            "by-node",
            &["node", "attempted", "succeeded", "failed"],
            &by_node
        ),
        cluster(now)
    );
    page("Server Sending Speed", &body)
}

/// The nodes with their liveness, and the queue per destination.
pub fn cluster(now: u64) -> String {
    let nodes: Vec<Vec<String>> = reports::nodes()
        .into_iter()
        .map(|n| {
            vec![
                escape(&n.name),
                format!("<span class=\"state-{0}\">{0}</span>", escape(&n.state)),
                format!(
                    "{:.0}s ago",
                    now.saturating_sub(n.last_heartbeat) as f64 / 1000.0
                ),
                escape(&n.version),
                escape(&n.hostname),
                n.processing.to_string(),
                n.batches.to_string(),
            ]
        })
        .collect();
    let queue: Vec<Vec<String>> = reports::queue()
        .into_iter()
        .map(|d| {
            vec![
                escape(&d.domain),
                d.recipients.to_string(),
                d.batches.to_string(),
                d.sending.to_string(),
                if d.next_attempt <= now {
                    "now".to_string()
                } else {
                    time(d.next_attempt)
                },
                escape(d.last_reply.as_deref().unwrap_or("-")),
            ]
        })
        .collect();
    let queue = if queue.is_empty() {
        "<p id=\"queue\">Nothing waits.</p>".to_string()
    } else {
        table(
            "queue",
            &[
                "destination",
                "recipients",
                "batches",
                "sending",
                "next attempt",
                "last reply",
            ],
            &queue,
        )
    };
    format!(
        "<h2>Nodes</h2>{}<h2>Queue by destination</h2>{queue}",
        table(
            "nodes",
            &[
                "node",
                "state",
                "last heartbeat",
                "version",
                "host",
                "processing",
                "batches"
            ],
            &nodes
        )
    )
}

//! The node's counters, rendered as Prometheus text at `/metrics`.
//!
//! One registry per process (like the `metrics` crate's global recorder): the places that
//! count (processing, delivery, the plugin runtime) need no handle threaded through them.
//! Each series is declared once below with its help line.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// Counters without labels: (name, help).
const COUNTERS: &[(&str, &str)] = &[
    (
        "roost_posts_accepted_total",
        "Posts accepted by their list's plugin chain or approved.",
    ),
    ("roost_posts_held_total", "Posts held for moderation."),
    (
        "roost_posts_rejected_total",
        "Posts rejected by a plugin or a moderator.",
    ),
    (
        "roost_posts_discarded_total",
        "Posts discarded by a plugin.",
    ),
    (
        "roost_copies_delivered_total",
        "Copies accepted by the receiving server.",
    ),
    (
        "roost_copies_deferred_total",
        "Copy attempts that failed temporarily (retried later).",
    ),
    (
        "roost_copies_failed_total",
        "Copies refused permanently or given up after max_age.",
    ),
    (
        "roost_http_connections_refused_total",
        "HTTP connections answered 503 and closed: http.max_connections were open.",
    ),
    (
        "roost_smtp_sessions_refused_total",
        "SMTP sessions answered 421 at connect: smtp.max_sessions or max_sessions_per_ip.",
    ),
    (
        "roost_smtp_sessions_cut_total",
        "SMTP sessions closed by a limit: idle_timeout, max_session_time or max_errors.",
    ),
    (
        "roost_smtp_messages_refused_total",
        "Messages refused at the end of DATA: max_message_size, max_line_length or max_data_memory.",
    ),
    (
        "roost_http_timeouts_total",
        "HTTP connections closed or requests answered 408 for slowness (header_timeout, idle_timeout, request_timeout).",
    ),
];

#[derive(Default)]
struct PluginSeries {
    calls: u64,
    failures: u64,
    seconds: f64,
}

pub struct Metrics {
    counters: Vec<AtomicU64>,
    /// By (plugin, hook).
    plugins: Mutex<BTreeMap<(String, &'static str), PluginSeries>>,
}

/// A counter of [`COUNTERS`], by position.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    PostsAccepted = 0,
    PostsHeld = 1,
    PostsRejected = 2,
    PostsDiscarded = 3,
    CopiesDelivered = 4,
    CopiesDeferred = 5,
    CopiesFailed = 6,
    HttpConnectionsRefused = 7,
    SmtpSessionsRefused = 8,
    SmtpSessionsCut = 9,
    SmtpMessagesRefused = 10,
    HttpTimeouts = 11,
}

pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        counters: COUNTERS.iter().map(|_| AtomicU64::new(0)).collect(),
        plugins: Mutex::new(BTreeMap::new()),
    })
}

impl Metrics {
    pub fn add(&self, counter: Counter, n: u64) {
        if let Some(c) = self.counters.get(counter as usize) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn plugin_call(&self, plugin: &str, hook: &'static str, took: Duration, failed: bool) {
        if let Ok(mut map) = self.plugins.lock() {
            let s = map.entry((plugin.to_string(), hook)).or_default();
            s.calls += 1;
            s.failures += u64::from(failed);
            s.seconds += took.as_secs_f64();
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self, node: &str) -> String {
        let mut out = String::new();
        let node = escape(node);
        for ((name, help), value) in COUNTERS.iter().zip(&self.counters) {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(
                out,
                "{name}{{node=\"{node}\"}} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let series = [
            ("roost_plugin_calls_total", "Plugin hook calls.", "counter"),
            (
                "roost_plugin_failures_total",
                "Plugin hook calls that failed (trap, timeout, memory cap, error, bad answer).",
                "counter",
            ),
            (
                "roost_plugin_seconds_total",
                "Time spent in plugin hook calls.",
                "counter",
            ),
        ];
        let map = match self.plugins.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        for (i, (name, help, kind)) in series.iter().enumerate() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((plugin, hook), s) in map.iter() {
                let value = match i {
                    0 => s.calls.to_string(),
                    1 => s.failures.to_string(),
                    _ => format!("{:.6}", s.seconds),
                };
                let _ = writeln!(
                    out,
                    "{name}{{node=\"{node}\",plugin=\"{}\",hook=\"{hook}\"}} {value}",
                    escape(plugin)
                );
            }
        }
        out
    }
}

/// A label value: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics {
            counters: COUNTERS.iter().map(|_| AtomicU64::new(0)).collect(),
            plugins: Mutex::new(BTreeMap::new()),
        };
        m.add(Counter::CopiesDelivered, 3);
        m.plugin_call("stamp", "on-deliver", Duration::from_millis(2), false);
        m.plugin_call("stamp", "on-deliver", Duration::from_millis(2), true);
        let text = m.render("node-\"a\"");
        assert!(
            text.contains("roost_copies_delivered_total{node=\"node-\\\"a\\\"\"} 3\n"),
            "{text}"
        );
        assert!(text.contains(
            "roost_plugin_calls_total{node=\"node-\\\"a\\\"\",plugin=\"stamp\",hook=\"on-deliver\"} 2\n"
        ));
        assert!(text.contains("roost_plugin_failures_total{node=\"node-\\\"a\\\"\",plugin=\"stamp\",hook=\"on-deliver\"} 1\n"));
        assert!(text.contains("# TYPE roost_posts_held_total counter\n"));
    }
}

//! Mailing reports: the recent posts, and one post's delivery and tracking figures with
//! bar charts (delivery states; clicks per link).

use roost_plugin_sdk::{HttpResponse, host::reports};

use crate::html::{bars, escape, page, table, time};

/// The latest posts, each linking to its report.
pub fn recent() -> String {
    let rows: Vec<Vec<String>> = reports::recent_posts(50)
        .into_iter()
        .map(|p| {
            vec![
                format!(
                    "<a href=\"posts/{id}\">{}</a>",
                    if p.subject.is_empty() {
                        "(no subject)".to_string()
                    } else {
                        escape(&p.subject)
                    },
                    id = escape(&p.id)
                ),
                escape(&p.list_address),
                time(p.received_at),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "<p id=\"posts\">No posts yet.</p>".to_string();
    }
    table("posts", &["post", "list", "received"], &rows)
}

pub fn post(id: &str) -> HttpResponse {
    let Some(p) = reports::post(id) else {
        return HttpResponse::text(404, "no such post\n");
    };
    let delivery = bars(
        "Delivery",
        &[
            ("delivered".into(), p.delivered, "#2ca02c"),
            ("deferred".into(), p.deferred, "#ff7f0e"),
            ("waiting".into(), p.waiting, "#7f7f7f"),
            ("bounced".into(), p.bounced, "#d62728"),
            ("unsubscribed".into(), p.unsubscribed, "#9467bd"),
        ],
    );
    let engagement = table(
        "engagement",
        &["", "total", "unique members"],
        &[
            vec![
                "opens".into(),
                p.opens.total.to_string(),
                p.opens.unique.to_string(),
            ],
            vec![
                "clicks".into(),
                p.clicks.total.to_string(),
                p.clicks.unique.to_string(),
            ],
            vec![
                "prefetches (not counted)".into(),
                p.prefetches.to_string(),
                "-".into(),
            ],
        ],
    );
    let links: Vec<Vec<String>> = p
        .links
        .iter()
        .map(|l| {
            vec![
                format!("{}: {}", l.number, escape(&l.url)),
                l.total.to_string(),
                l.unique.to_string(),
            ]
        })
        .collect();
    let link_chart = bars(
        "Clicks per link",
        &p.links
            .iter()
            .map(|l| (format!("link {}", l.number), l.total, "#1f77b4"))
            .collect::<Vec<_>>(),
    );
    let body = format!(
        "<p>{} to {}, received {} UTC: {} recipients.</p><h2>Delivery</h2>{delivery}\
         <h2>Opens and clicks</h2>{engagement}<h2>Clicks per link</h2>{}{}",
        escape(&p.id),
        escape(&p.list_address),
        time(p.received_at),
        p.recipients,
        if links.is_empty() {
            "<p>No tracked links.</p>".to_string()
        } else {
            link_chart
        },
        if links.is_empty() {
            String::new()
        } else {
            table("links", &["link", "clicks", "unique members"], &links)
        },
    );
    let title = if p.subject.is_empty() {
        "Post report".to_string()
    } else {
        format!("Post report: {}", p.subject)
    };
    page(&title, &body)
}

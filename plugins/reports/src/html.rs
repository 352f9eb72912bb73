//! Page furniture shared by the reports: query strings, escaping, the page frame, tables
//! and a horizontal bar chart (SVG drawn here, so pages need no JavaScript).

use roost_plugin_sdk::{Header, HttpResponse};

pub fn query(q: &str, key: &str) -> Option<String> {
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.replace('+', " "))
    })
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A whole HTML page.
pub fn page(title: &str, body: &str) -> HttpResponse {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}</style>\
         </head><body><h1>{t}</h1>{body}</body></html>\n",
        t = escape(title)
    );
    HttpResponse {
        status: 200,
        headers: vec![Header::new("Content-Type", "text/html; charset=utf-8")],
        body: html.into_bytes(),
    }
}

/// A table: a header row, then rows of cells already escaped.
pub fn table(id: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table id=\"{id}\"><tr>");
    for h in head {
        out.push_str(&format!("<th>{h}</th>"));
    }
    out.push_str("</tr>");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            out.push_str(&format!("<td>{c}</td>"));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

/// Horizontal bars, one per (label, value, color), each a `g.series` with `data-series`.
pub fn bars(title: &str, bars: &[(String, u64, &str)]) -> String {
    let (w, row, left) = (720.0, 26.0, 180.0);
    let h = row * bars.len().max(1) as f64 + 10.0;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" \
         aria-label=\"{}\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>",
        escape(title)
    );
    for (i, (label, value, color)) in bars.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        let len = (w - left - 80.0) * *value as f64 / max;
        svg.push_str(&format!(
            "<g class=\"series\" data-series=\"{l}\" data-value=\"{value}\">\
             <text x=\"4\" y=\"{ty}\" font-size=\"12\">{l}</text>\
             <rect x=\"{left}\" y=\"{y}\" width=\"{len:.1}\" height=\"18\" fill=\"{color}\"/>\
             <text x=\"{tx:.1}\" y=\"{ty}\" font-size=\"12\">{value}</text></g>",
            l = escape(label),
            ty = y + 13.0,
            tx = left + len + 6.0,
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// `1732540800000` → `2026-11-25 13:00` (UTC).
pub fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60
    )
}

/// Days since 1970-01-01 to (year, month, day): the proleptic Gregorian calendar.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times() {
        assert_eq!(super::time(0), "1970-01-01 00:00");
        assert_eq!(super::time(1_764_077_400_000), "2025-11-25 13:30");
    }
}

//! tracking: click and open tracking, prepared once per post.
//!
//! ```toml
//! [[plugin]]
//! use = "tracking"
//! clicks = true                 # rewrite links in text and HTML parts
//! opens = true                  # add an open pixel to HTML parts
//! ignore = ["*unsubscribe*"]    # links left alone (`*` is any run)
//! ```
//!
//! Each link becomes `{{roost:link:N}}` with the original declared by a `track-link` edit;
//! the host fills in a signed per-recipient URL at delivery (no per-recipient plugin call),
//! records the click at `/t/c/...` and redirects to the declared link only. The pixel is
//! `{{roost:open-url}}`. Parts in base64 are left as they are.

use roost_plugin_sdk::{
    Deserialize, Edit, Header, HookResult, Message, Plugin, PostResult, mime, pattern_matches,
};

#[derive(Deserialize)]
#[serde(crate = "roost_plugin_sdk::serde", deny_unknown_fields)]
struct Config {
    #[serde(default = "yes")]
    clicks: bool,
    #[serde(default = "yes")]
    opens: bool,
    #[serde(default)]
    ignore: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Default for Config {
    fn default() -> Self {
        Config {
            clicks: true,
            opens: true,
            ignore: Vec::new(),
        }
    }
}

/// The links of a post, numbered in order of first appearance.
struct Links<'a> {
    urls: Vec<String>,
    ignore: &'a [String],
}

impl Links<'_> {
    /// The placeholder for `url`, or `None` for a link left alone.
    fn placeholder(&mut self, url: &str) -> Option<String> {
        if self.ignore.iter().any(|p| pattern_matches(p, url)) {
            return None;
        }
        let n = match self.urls.iter().position(|u| u == url) {
            Some(n) => n,
            None => {
                self.urls.push(url.to_string());
                self.urls.len() - 1
            }
        };
        Some(format!("{{{{roost:link:{n}}}}}"))
    }
}

fn unescape_html(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// Links in plain text: `http(s)://` up to white space or a delimiter, without trailing
/// punctuation.
fn rewrite_plain(text: &str, links: &mut Links) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_url(rest) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || "<>\"'()[]{}".contains(c))
            .unwrap_or(tail.len());
        let mut url = &tail[..end];
        while url.ends_with(['.', ',', ';', ':', '!', '?']) {
            url = &url[..url.len() - 1];
        }
        match links.placeholder(url) {
            Some(p) => out.push_str(&p),
            None => out.push_str(url),
        }
        rest = &tail[url.len()..];
    }
    out.push_str(rest);
    out
}

fn find_url(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    match (lower.find("http://"), lower.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Links in HTML: the values of `href` attributes that are http(s) URLs.
fn rewrite_html(html: &str, links: &mut Links) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    loop {
        let lower = rest.to_ascii_lowercase();
        let Some(at) = lower.find("href=") else {
            break;
        };
        let value_start = at + 5;
        let quote = rest[value_start..].chars().next();
        let (open, close) = match quote {
            Some('"') => (value_start + 1, '"'),
            Some('\'') => (value_start + 1, '\''),
            _ => {
                out.push_str(&rest[..value_start]);
                rest = &rest[value_start..];
                continue;
            }
        };
        let Some(len) = rest[open..].find(close) else {
            break;
        };
        let raw = &rest[open..open + len];
        out.push_str(&rest[..open]);
        let url = unescape_html(raw.trim());
        let lower_url = url.to_ascii_lowercase();
        let replaced = (lower_url.starts_with("http://") || lower_url.starts_with("https://"))
            .then(|| links.placeholder(&url))
            .flatten();
        out.push_str(replaced.as_deref().unwrap_or(raw));
        rest = &rest[open + len..];
    }
    out.push_str(rest);
    out
}

const PIXEL: &str =
    "<img src=\"{{roost:open-url}}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">";

fn add_pixel(html: &str) -> String {
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(at) => format!("{}{PIXEL}{}", &html[..at], &html[at..]),
        None => format!("{html}{PIXEL}"),
    }
}

struct Tracking;

impl Plugin for Tracking {
    fn on_post(message: Message) -> HookResult<PostResult> {
        let c: Config = roost_plugin_sdk::config()?;
        if !c.clicks && !c.opens {
            return Ok(PostResult::next());
        }
        let top = message
            .header("content-type")
            .unwrap_or("text/plain")
            .to_string();
        let encoding = message
            .header("content-transfer-encoding")
            .unwrap_or("7bit")
            .to_string();
        let mut links = Links {
            urls: Vec::new(),
            ignore: &c.ignore,
        };
        let rewritten = mime::rewrite_text(&top, &encoding, &message.body, &mut |media, text| {
            let mut new = text.to_string();
            if c.clicks {
                new = if media == "text/html" {
                    rewrite_html(&new, &mut links)
                } else {
                    rewrite_plain(&new, &mut links)
                };
            }
            if c.opens && media == "text/html" {
                new = add_pixel(&new);
            }
            (new != text).then_some(new)
        });
        let Some((body, top_8bit)) = rewritten else {
            return Ok(PostResult::next());
        };
        let mut result = PostResult::next().edit(Edit::ReplaceBody(body));
        if top_8bit {
            result = result.edit(Edit::SetHeader(Header::new(
                "Content-Transfer-Encoding",
                "8bit",
            )));
        }
        for url in links.urls {
            result = result.edit(Edit::TrackLink(url));
        }
        Ok(result)
    }
}

roost_plugin_sdk::export_plugin!(Tracking, config = Config, hooks = [on_post]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_become_numbered_placeholders() {
        let ignore = vec!["*unsubscribe*".to_string()];
        let mut links = Links {
            urls: Vec::new(),
            ignore: &ignore,
        };
        let text = rewrite_plain(
            "See https://a.example/x?y=1. And (http://b.example) or https://a.example/x?y=1 \
             but not https://c.example/unsubscribe",
            &mut links,
        );
        assert_eq!(
            text,
            "See {{roost:link:0}}. And ({{roost:link:1}}) or {{roost:link:0}} \
             but not https://c.example/unsubscribe"
        );
        let html = rewrite_html(
            "<a href=\"https://d.example/?a=1&amp;b=2\">d</a><a href='mailto:x@y'>m</a>\
             <A HREF=\"http://b.example\">b</A></body>",
            &mut links,
        );
        assert_eq!(
            html,
            "<a href=\"{{roost:link:2}}\">d</a><a href='mailto:x@y'>m</a>\
             <A HREF=\"{{roost:link:1}}\">b</A></body>"
        );
        assert_eq!(links.urls[2], "https://d.example/?a=1&b=2");
        assert!(add_pixel("<p>x</p></body>").contains("{{roost:open-url}}\" width"));
    }
}

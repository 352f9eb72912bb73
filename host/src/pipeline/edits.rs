//! The plugins' edits: kept with the post in compact form (`encode`), and applied to its
//! bytes once, when delivery prepares the post (`apply`, `prepare`). Edits were validated
//! when the plugin answered (no header injection, sane sizes); here they are carried out in
//! order.

use serde::{Deserialize, Serialize};

use crate::{
    message,
    plugins::wit::{Edit, Footer, Header},
};

/// The stored form of an edit (JSON), independent of the generated WIT types.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Stored {
    AddHeader { name: String, value: String },
    SetHeader { name: String, value: String },
    RemoveHeader { name: String },
    SubjectPrefix { prefix: String },
    AppendFooter { text: String, html: Option<String> },
    ReplaceBody { body: String },
    TrackLink { url: String },
}

/// Encode edits for the `messages.edits` column (a replacement body as hex, so any bytes
/// survive); `None` when there are none.
pub fn encode(edits: &[Edit]) -> Option<String> {
    if edits.is_empty() {
        return None;
    }
    let stored: Vec<Stored> = edits
        .iter()
        .map(|e| match e {
            Edit::AddHeader(h) => Stored::AddHeader {
                name: h.name.clone(),
                value: h.value.clone(),
            },
            Edit::SetHeader(h) => Stored::SetHeader {
                name: h.name.clone(),
                value: h.value.clone(),
            },
            Edit::RemoveHeader(n) => Stored::RemoveHeader { name: n.clone() },
            Edit::SubjectPrefix(p) => Stored::SubjectPrefix { prefix: p.clone() },
            Edit::AppendFooter(f) => Stored::AppendFooter {
                text: f.text.clone(),
                html: f.html.clone(),
            },
            Edit::ReplaceBody(b) => Stored::ReplaceBody {
                body: hex::encode(b),
            },
            Edit::TrackLink(u) => Stored::TrackLink { url: u.clone() },
        })
        .collect();
    serde_json::to_string(&stored).ok()
}

/// The links a post's stored edits declare for tracking (`track-link`), in order: link N
/// of the post is the N-th.
pub fn tracked_links(encoded: Option<&str>) -> Vec<String> {
    encoded
        .and_then(decode)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| match e {
            Edit::TrackLink(url) => Some(url),
            _ => None,
        })
        .collect()
}

/// Decode what `encode` wrote; `None` for a column that does not hold edits.
pub fn decode(encoded: &str) -> Option<Vec<Edit>> {
    let stored: Vec<Stored> = serde_json::from_str(encoded).ok()?;
    stored
        .into_iter()
        .map(|s| {
            Some(match s {
                Stored::AddHeader { name, value } => Edit::AddHeader(Header { name, value }),
                Stored::SetHeader { name, value } => Edit::SetHeader(Header { name, value }),
                Stored::RemoveHeader { name } => Edit::RemoveHeader(name),
                Stored::SubjectPrefix { prefix } => Edit::SubjectPrefix(prefix),
                Stored::AppendFooter { text, html } => Edit::AppendFooter(Footer { text, html }),
                Stored::ReplaceBody { body } => Edit::ReplaceBody(hex::decode(body).ok()?),
                Stored::TrackLink { url } => Edit::TrackLink(url),
            })
        })
        .collect()
}

/// The post as it is to be delivered: the raw post with its stored edits applied, and the
/// tracked links they declared. Posts without edits go out as received.
pub fn prepare(raw: &[u8], encoded: Option<&str>) -> Option<(Vec<u8>, Vec<String>)> {
    match encoded {
        None => Some((raw.to_vec(), Vec::new())),
        Some(e) => Some(apply(raw, &decode(e)?)),
    }
}

/// The post after `edits`, and the links declared with `track-link` (in order).
pub fn apply(raw: &[u8], edits: &[Edit]) -> (Vec<u8>, Vec<String>) {
    let mut out = raw.to_vec();
    let mut links = Vec::new();
    for edit in edits {
        match edit {
            Edit::AddHeader(h) => message::append_field(&mut out, &h.name, &h.value),
            Edit::SetHeader(h) => message::set_field(&mut out, &h.name, &h.value),
            Edit::RemoveHeader(name) => {
                message::remove_fields(&mut out, name);
            }
            Edit::SubjectPrefix(prefix) => subject_prefix(&mut out, prefix),
            Edit::AppendFooter(f) => out = message::append_footer(&out, &f.text, f.html.as_deref()),
            Edit::ReplaceBody(body) => {
                message::ensure_blank_line(&mut out);
                out.truncate(message::body_start(&out));
                out.extend_from_slice(body);
            }
            Edit::TrackLink(url) => links.push(url.clone()),
        }
    }
    (out, links)
}

/// Put `prefix` before the subject unless it is there already (replies keep one tag).
fn subject_prefix(raw: &mut Vec<u8>, prefix: &str) {
    let current = message::header(raw, "subject").unwrap_or_default();
    let tag = prefix.trim();
    if !tag.is_empty() && current.to_lowercase().contains(&tag.to_lowercase()) {
        return;
    }
    message::set_field(raw, "Subject", &format!("{prefix}{current}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    const POST: &[u8] = b"From: a@example.org\r\nSubject: Hello\r\nX-Old: 1\r\n\r\nBody\r\n";

    #[test]
    fn edits_apply_in_order() {
        let h = |n: &str, v: &str| Header {
            name: n.into(),
            value: v.into(),
        };
        let (out, links) = apply(
            POST,
            &[
                Edit::SubjectPrefix("[news] ".into()),
                Edit::RemoveHeader("x-old".into()),
                Edit::AddHeader(h("X-New", "2")),
                Edit::SetHeader(h("X-New", "3")),
                Edit::TrackLink("https://example.org/a".into()),
            ],
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Subject: [news] Hello\r\n"), "{text}");
        assert!(!text.contains("X-Old"));
        assert_eq!(text.matches("X-New").count(), 1);
        assert!(text.contains("X-New: 3\r\n\r\nBody\r\n"), "{text}");
        assert!(
            text.starts_with("From: a@example.org\r\nSubject: [news] Hello\r\n"),
            "{text}"
        );
        assert_eq!(links, ["https://example.org/a"]);
    }

    #[test]
    fn edits_survive_encoding() {
        let edits = vec![
            Edit::SubjectPrefix("[x] ".into()),
            Edit::AppendFooter(Footer {
                text: "bye".into(),
                html: None,
            }),
            Edit::ReplaceBody(vec![0xff, 0x00, b'a']),
        ];
        let encoded = encode(&edits).unwrap();
        let (direct, _) = apply(POST, &edits);
        let (prepared, _) = prepare(POST, Some(&encoded)).unwrap();
        assert_eq!(direct, prepared);
        assert!(decode("not json").is_none());
        assert_eq!(prepare(POST, None).unwrap().0, POST);
    }

    #[test]
    fn a_tagged_subject_is_not_tagged_again() {
        let (out, _) = apply(
            b"Subject: Re: [news] Hello\r\n\r\nx",
            &[Edit::SubjectPrefix("[news] ".into())],
        );
        assert_eq!(
            message::header(&out, "subject").as_deref(),
            Some("Re: [news] Hello")
        );
    }

    #[test]
    fn replace_body_keeps_the_header() {
        let (out, _) = apply(POST, &[Edit::ReplaceBody(b"New body\r\n".to_vec())]);
        assert!(out.ends_with(b"X-Old: 1\r\n\r\nNew body\r\n"));
    }
}

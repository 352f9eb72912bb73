//! Applying the plugins' edits to a post's bytes. Edits were validated when the plugin
//! answered (no header injection, sane sizes); here they are carried out in order.

use crate::{message, plugins::wit::Edit};

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
    use crate::plugins::wit::Header;

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

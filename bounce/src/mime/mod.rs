//! A small, bounded MIME walker.
//!
//! Bounces are often malformed (missing closing boundaries, wrong content types, text in the
//! preamble), and the parser must survive hostile input in linear time, so instead of a full
//! MIME library we keep just what the detectors need: unfolded headers, the content type, and
//! each leaf's raw bytes, flattened into one list in document order. Nesting depth and the
//! number of parts are capped; whatever lies beyond the caps is kept as an opaque leaf.

mod decode;
mod header;

pub use header::{ContentType, Headers, parse_headers};
use header::{trim_ascii_end, trim_eol};

/// Deeper nesting than this is not produced by any real MTA; beyond it a part is a leaf.
const MAX_DEPTH: usize = 24;
/// Bounces have a handful of parts; the cap keeps hostile input linear.
const MAX_PARTS: usize = 256;

/// One entity of the message. Multiparts are listed too (with an empty body) so that detectors
/// can see the structure; `parent` points at the enclosing entity.
#[derive(Debug, Clone)]
pub struct Part<'a> {
    pub headers: Headers,
    pub content_type: ContentType,
    /// Raw (still transfer-encoded) body.
    pub body: &'a [u8],
    pub parent: Option<usize>,
    /// Inside a returned message (`message/rfc822`, `text/rfc822-headers`): the original mail,
    /// whose addresses must never be mistaken for failed recipients.
    pub returned: bool,
    pub is_multipart: bool,
    /// The top entity of a returned message: its headers are the original's.
    pub original: bool,
}

impl Part<'_> {
    /// The body with its transfer encoding undone.
    pub fn decoded_bytes(&self) -> Vec<u8> {
        let encoding = self.headers.get("content-transfer-encoding").unwrap_or("");
        decode::transfer(self.body, encoding)
    }

    /// The body as text: transfer encoding and charset undone, HTML turned into lines.
    pub fn text(&self) -> String {
        let text = decode::charset(self.decoded_bytes(), self.content_type.param("charset"));
        if self.content_type.is("text", "html") {
            decode::html_to_text(&text)
        } else {
            text
        }
    }

    /// Text a human or an MTA wrote for the reader: `text/*` leaves, not attachments such as
    /// images.
    pub fn is_textual(&self) -> bool {
        !self.is_multipart && self.content_type.mime_type == "text"
    }
}

/// The whole message, flattened. `parts[0]` is the top-level entity.
#[derive(Debug)]
pub struct Mime<'a> {
    pub parts: Vec<Part<'a>>,
}

impl<'a> Mime<'a> {
    pub fn parse(raw: &'a [u8]) -> Mime<'a> {
        let mut mime = Mime { parts: Vec::new() };
        mime.add_entity(raw, 0, None, false, None);
        mime
    }

    pub fn top(&self) -> Option<&Part<'a>> {
        self.parts.first()
    }

    /// Leaves that the detectors may read: textual and not part of a returned message.
    pub fn report_texts(&self) -> impl Iterator<Item = &Part<'a>> {
        self.parts.iter().filter(|p| !p.returned && p.is_textual())
    }

    /// Parses an entity (headers and body) and everything inside it.
    fn add_entity(
        &mut self,
        raw: &'a [u8],
        depth: usize,
        parent: Option<usize>,
        returned: bool,
        default_type: Option<ContentType>,
    ) {
        let (headers, body_start) = parse_headers(raw);
        let body = &raw[body_start.min(raw.len())..];
        let content_type = headers
            .get("content-type")
            .and_then(ContentType::parse)
            .or(default_type)
            .unwrap_or_else(ContentType::text_plain);
        self.add_body(headers, content_type, body, depth, parent, returned);
    }

    fn add_body(
        &mut self,
        headers: Headers,
        content_type: ContentType,
        body: &'a [u8],
        depth: usize,
        parent: Option<usize>,
        returned: bool,
    ) {
        if self.parts.len() >= MAX_PARTS {
            return;
        }
        let index = self.parts.len();
        let deeper = depth < MAX_DEPTH && self.parts.len() + 1 < MAX_PARTS;
        let boundary = content_type
            .param("boundary")
            .filter(|b| !b.is_empty() && b.len() <= 200)
            .map(|b| b.as_bytes().to_vec());
        let is_digest = content_type.is("multipart", "digest");
        let (preamble, subparts) = match (&boundary, content_type.mime_type.as_str(), deeper) {
            (Some(b), "multipart", true) => split_multipart(body, b),
            _ => (&[][..], Vec::new()),
        };
        let nested = deeper
            && matches!(
                (
                    content_type.mime_type.as_str(),
                    content_type.subtype.as_str()
                ),
                ("message", "rfc822") | ("message", "global") | ("text", "rfc822-headers")
            );
        let is_multipart = !subparts.is_empty();
        // A multipart without any recognisable part is really text (some MTAs only pretend).
        let content_type = if content_type.mime_type == "multipart" && !is_multipart {
            ContentType::text_plain()
        } else {
            content_type
        };
        self.parts.push(Part {
            headers,
            content_type: content_type.clone(),
            body: if is_multipart || nested { &[] } else { body },
            parent,
            returned,
            is_multipart,
            original: false,
        });
        if is_multipart {
            // Some MTAs write their report into the preamble ("this is not really MIME"):
            // keep it as a text leaf of its own.
            if preamble.iter().any(|b| !b.is_ascii_whitespace()) {
                self.parts.push(Part {
                    headers: Headers::default(),
                    content_type: ContentType::text_plain(),
                    body: preamble,
                    parent: Some(index),
                    returned,
                    is_multipart: false,
                    original: false,
                });
            }
            let default = is_digest.then(ContentType::message_rfc822);
            for sub in subparts {
                if self.parts.len() >= MAX_PARTS {
                    break;
                }
                self.add_entity(sub, depth + 1, Some(index), returned, default.clone());
            }
        } else if nested {
            // The returned message: its headers matter (Message-ID, To for ARF); mark it so
            // that nothing inside is read as a failure report. Encoded returned messages are
            // rare and their headers are readable anyway, so they are not decoded.
            if content_type.is("text", "rfc822-headers") {
                let (h, _) = parse_headers(body);
                self.parts[index].returned = true;
                self.parts.push(Part {
                    headers: h,
                    content_type: ContentType::text_plain(),
                    body: &[],
                    parent: Some(index),
                    returned: true,
                    is_multipart: false,
                    original: true,
                });
            } else {
                let first = self.parts.len();
                self.add_entity(body, depth + 1, Some(index), true, None);
                if let Some(p) = self.parts.get_mut(first) {
                    p.original = true;
                }
            }
        }
    }

    /// Headers of the returned original message, if the bounce carries them. A returned
    /// message that is itself a report (a gateway forwarding a bounce) is looked through.
    pub fn returned_headers(&self) -> Option<&Headers> {
        self.parts
            .iter()
            .find(|p| {
                p.original && !p.headers.is_empty() && !p.content_type.is("multipart", "report")
            })
            .map(|p| &p.headers)
    }
}

/// Splits a multipart body on its boundary. Preamble and epilogue are dropped; a missing
/// closing delimiter ends the last part at the end of input.
fn split_multipart<'a>(body: &'a [u8], boundary: &[u8]) -> (&'a [u8], Vec<&'a [u8]>) {
    let mut preamble: &'a [u8] = &[];
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while pos < body.len() {
        let end = body[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| pos + i + 1);
        let line = trim_eol(&body[pos..end]);
        if let Some(rest) = line
            .strip_prefix(b"--")
            .and_then(|l| l.strip_prefix(boundary))
        {
            let rest = trim_ascii_end(rest);
            let closing = rest.starts_with(b"--");
            if rest.is_empty() || closing {
                if start.is_none() {
                    preamble = trim_eol(&body[..pos]);
                }
                if let Some(s) = start {
                    // The line break before the delimiter belongs to the delimiter.
                    let mut e = pos;
                    if e > s && body[e - 1] == b'\n' {
                        e -= 1;
                        if e > s && body[e - 1] == b'\r' {
                            e -= 1;
                        }
                    }
                    parts.push(&body[s..e]);
                    if parts.len() >= MAX_PARTS {
                        return (preamble, parts);
                    }
                }
                if closing {
                    return (preamble, parts);
                }
                start = Some(end);
            }
        }
        pos = end;
    }
    if let Some(s) = start {
        parts.push(&body[s.min(body.len())..]);
    }
    (preamble, parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_split() {
        let raw = b"Content-Type: multipart/mixed; boundary=XX\n\npre\n--XX\n\none\n--XX\nContent-Type: text/html\n\ntwo\n--XX--\n";
        let m = Mime::parse(raw);
        assert_eq!(m.parts.len(), 4);
        assert_eq!(m.parts[1].body, b"pre");
        assert_eq!(m.parts[2].body, b"one");
        assert!(m.parts[3].content_type.is("text", "html"));
    }
}

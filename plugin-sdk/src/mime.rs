//! Just enough MIME for list plugins: which content types a post carries, leaving some parts
//! out, and rewriting its text parts. Multipart bodies are split at their boundary (nested
//! ones too); text parts in 7bit, 8bit or quoted-printable are decoded for rewriting and
//! written back as 8bit. Base64 parts are left as they are.

/// The media type (lower-cased, no parameters) and the `boundary` parameter of a
/// Content-Type value.
pub fn content_type(value: &str) -> (String, Option<String>) {
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let boundary = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    });
    let media = if media.is_empty() {
        "text/plain".to_string()
    } else {
        media
    };
    (media, boundary)
}

/// The Content-Type of a part's header block (unfolded).
fn part_content_type(header: &str) -> String {
    let mut value: Option<String> = None;
    for line in header.split('\n') {
        let line = line.trim_end_matches('\r');
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((name, v)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-type")
        {
            value = Some(v.trim().to_string());
        }
    }
    value.unwrap_or_default()
}

/// One part of a multipart body: its bytes (headers and content) and its media type.
struct Part<'a> {
    bytes: &'a [u8],
    media: String,
    boundary: Option<String>,
}

/// The parts between `--boundary` lines, or `None` when the body is not well formed.
fn split<'a>(body: &'a [u8], boundary: &str) -> Option<(Vec<Part<'a>>, usize, usize)> {
    let delimiter = format!("--{boundary}");
    let mut starts = Vec::new();
    let mut line_start = 0;
    let mut close = None;
    while line_start < body.len() {
        let end = body[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |p| line_start + p + 1);
        let line = &body[line_start..end];
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if text == format!("{delimiter}--") {
            close = Some(line_start);
            break;
        }
        if text == delimiter {
            starts.push((line_start, end));
        }
        line_start = end;
    }
    let close = close?;
    let first = starts.first()?.0;
    let mut parts = Vec::new();
    for (i, &(_, content_start)) in starts.iter().enumerate() {
        let next = starts.get(i + 1).map_or(close, |s| s.0);
        let bytes = &body[content_start..next];
        let text = String::from_utf8_lossy(bytes);
        let header_end = text
            .find("\r\n\r\n")
            .or_else(|| text.find("\n\n"))
            .unwrap_or(0);
        let (media, boundary) = content_type(&part_content_type(&text[..header_end]));
        parts.push(Part {
            bytes,
            media,
            boundary,
        });
    }
    Some((parts, first, close))
}

/// Every media type in the body (the top level's and each part's, nested ones too).
pub fn media_types(top: &str, body: &[u8]) -> Vec<String> {
    let (media, boundary) = content_type(top);
    let mut out = vec![media];
    if let Some(b) = boundary
        && let Some((parts, _, _)) = split(body, &b)
    {
        for p in parts {
            let top = match &p.boundary {
                Some(b) => format!("{}; boundary=\"{b}\"", p.media),
                None => p.media.clone(),
            };
            out.extend(media_types(&top, p.bytes));
        }
    }
    out
}

/// The body without the parts whose type `drop` says to leave out (nested too); `None`
/// when nothing was removed or the body is not multipart.
pub fn without(top: &str, body: &[u8], drop: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    let (_, boundary) = content_type(top);
    let boundary = boundary?;
    let (parts, first, close) = split(body, &boundary)?;
    let mut out = body[..first].to_vec();
    let mut changed = false;
    for p in parts {
        if drop(&p.media) {
            changed = true;
            continue;
        }
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let inner = p.boundary.as_ref().and_then(|b| {
            let text = String::from_utf8_lossy(p.bytes);
            let header_end = text
                .find("\r\n\r\n")
                .map(|i| i + 4)
                .or_else(|| text.find("\n\n").map(|i| i + 2))?;
            let nested = without(
                &format!("{}; boundary=\"{b}\"", p.media),
                &p.bytes[header_end..],
                drop,
            )?;
            let mut bytes = p.bytes[..header_end].to_vec();
            bytes.extend_from_slice(&nested);
            Some(bytes)
        });
        match inner {
            Some(bytes) => {
                changed = true;
                out.extend_from_slice(&bytes);
            }
            None => out.extend_from_slice(p.bytes),
        }
    }
    out.extend_from_slice(&body[close..]);
    changed.then_some(out)
}

/// The `Content-Transfer-Encoding` of a header block, lower-cased (default `7bit`).
fn transfer_encoding(header: &str) -> String {
    header
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("content-transfer-encoding")
                .then(|| v.trim().to_ascii_lowercase())
        })
        .unwrap_or_else(|| "7bit".into())
}

/// Decode quoted-printable (soft line breaks removed, `=XX` turned back into bytes).
pub fn decode_qp(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b == b'=' {
            let rest = &text[i + 1..];
            if rest.starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if rest.starts_with(b"\n") {
                i += 2;
                continue;
            }
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(&h), Some(&l)) = (rest.first(), rest.get(1))
                && let (Some(h), Some(l)) = (hex(h), hex(l))
            {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// What a rewrite of one text part returns: the new text, or `None` to leave it alone.
pub type Rewrite<'a> = dyn FnMut(&str, &str) -> Option<String> + 'a;

/// Rewrite the text parts (`text/plain`, `text/html`) of a post. `top` is the post's
/// Content-Type and `top_encoding` its Content-Transfer-Encoding; `rewrite` gets each text
/// part's media type and decoded text. Returns the new body and whether the top level's
/// transfer encoding must become `8bit` (a single-part post that was quoted-printable);
/// `None` when nothing changed.
pub fn rewrite_text(
    top: &str,
    top_encoding: &str,
    body: &[u8],
    rewrite: &mut Rewrite<'_>,
) -> Option<(Vec<u8>, bool)> {
    let (media, boundary) = content_type(top);
    if let Some(boundary) = boundary {
        let (parts, first, close) = split(body, &boundary)?;
        let mut out = body[..first].to_vec();
        let mut changed = false;
        for p in parts {
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            let text = String::from_utf8_lossy(p.bytes).into_owned();
            let header_end = text
                .find("\r\n\r\n")
                .map(|i| i + 4)
                .or_else(|| text.find("\n\n").map(|i| i + 2));
            let rebuilt = header_end.and_then(|end| {
                let header = &text[..end];
                let encoding = transfer_encoding(header);
                let top = match &p.boundary {
                    Some(b) => format!("{}; boundary=\"{b}\"", p.media),
                    None => p.media.clone(),
                };
                let (new_body, to_8bit) = rewrite_text(&top, &encoding, &p.bytes[end..], rewrite)?;
                let mut header = header.to_string();
                if to_8bit {
                    header = set_encoding(&header, "8bit");
                }
                let mut bytes = header.into_bytes();
                bytes.extend_from_slice(&new_body);
                Some(bytes)
            });
            match rebuilt {
                Some(bytes) => {
                    changed = true;
                    out.extend_from_slice(&bytes);
                }
                None => out.extend_from_slice(p.bytes),
            }
        }
        out.extend_from_slice(&body[close..]);
        return changed.then_some((out, false));
    }
    if media != "text/plain" && media != "text/html" {
        return None;
    }
    let (decoded, qp) = match top_encoding.trim().to_ascii_lowercase().as_str() {
        "quoted-printable" => (decode_qp(body), true),
        "base64" => return None,
        _ => (body.to_vec(), false),
    };
    let text = String::from_utf8_lossy(&decoded);
    let new = rewrite(&media, &text)?;
    let mut bytes = new.into_bytes();
    if !bytes.ends_with(b"\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    Some((bytes, qp))
}

/// A part header with its Content-Transfer-Encoding set to `value`.
fn set_encoding(header: &str, value: &str) -> String {
    let mut out = String::with_capacity(header.len() + 40);
    let mut found = false;
    for line in header.split_inclusive('\n') {
        if let Some((n, _)) = line.split_once(':')
            && n.trim().eq_ignore_ascii_case("content-transfer-encoding")
        {
            out.push_str(&format!("Content-Transfer-Encoding: {value}\r\n"));
            found = true;
        } else if !found && (line == "\r\n" || line == "\n") {
            out.push_str(&format!("Content-Transfer-Encoding: {value}\r\n"));
            out.push_str(line);
            found = true;
        } else {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"preamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--b1\r\nContent-Type: application/x-msdownload; name=\"a.exe\"\r\n\r\nMZ...\r\n\
--b1\r\nContent-Type: multipart/alternative; boundary=\"b2\"\r\n\r\n\
--b2\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b2--\r\n\
--b1--\r\nepilogue\r\n";

    #[test]
    fn finds_every_type_and_strips_some() {
        let top = "multipart/mixed; boundary=\"b1\"";
        assert_eq!(
            media_types(top, BODY),
            [
                "multipart/mixed",
                "text/plain",
                "application/x-msdownload",
                "multipart/alternative",
                "text/html"
            ]
        );
        let out = without(top, BODY, &|m| m == "application/x-msdownload").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("MZ..."), "{text}");
        assert!(
            text.contains("hello")
                && text.contains("<p>x</p>")
                && text.ends_with("--b1--\r\nepilogue\r\n")
        );
        assert_eq!(media_types(top, text.as_bytes()).len(), 4);
        let nested = without(top, BODY, &|m| m == "text/html").unwrap();
        assert!(!String::from_utf8(nested).unwrap().contains("<p>x</p>"));
        assert!(without(top, BODY, &|_| false).is_none());
        assert!(without("text/plain", b"x", &|_| true).is_none());
    }
}

#[cfg(test)]
mod rewrite_tests {
    use super::*;

    #[test]
    fn text_parts_are_rewritten_and_quoted_printable_becomes_8bit() {
        let body = b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
see https://example.org/a?x=3D1 and =\r\nmore\r\n--b\r\nContent-Type: image/png\r\n\r\nPNG\r\n--b--\r\n";
        let (out, top_8bit) = rewrite_text(
            "multipart/mixed; boundary=b",
            "7bit",
            body,
            &mut |media, text| {
                assert_eq!(media, "text/plain");
                assert!(
                    text.contains("https://example.org/a?x=1 and more"),
                    "{text}"
                );
                Some(text.replace("https://example.org/a?x=1", "LINK"))
            },
        )
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(!top_8bit);
        assert!(
            out.contains("Content-Transfer-Encoding: 8bit\r\n\r\nsee LINK and more"),
            "{out}"
        );
        assert!(out.contains("image/png\r\n\r\nPNG"), "{out}");
        let single = rewrite_text(
            "text/plain",
            "quoted-printable",
            b"a=3Db\r\n",
            &mut |_, t| Some(t.to_uppercase()),
        )
        .unwrap();
        assert_eq!(single, (b"A=B\r\n".to_vec(), true));
        assert!(
            rewrite_text("text/plain", "base64", b"aGk=", &mut |_, t| Some(t.into())).is_none()
        );
    }
}

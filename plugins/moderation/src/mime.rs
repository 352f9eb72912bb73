//! Just enough MIME to see which content types a post carries and to leave some out:
//! multipart bodies are split at their boundary (nested ones too); nothing is decoded.

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

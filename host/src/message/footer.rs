//! Appending a list footer without breaking the message: appended to a plain, unencoded
//! text body; added as a part to multipart/mixed; otherwise the message is wrapped in
//! multipart/mixed with the footer as a second part (an encoded or HTML-only body is never
//! touched byte-wise).

use super::{body_start, field_line, header, remove_fields};

const FOOTER_PART_HEAD: &[u8] =
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n";

/// The message with `text` appended as a footer. `html` is used for an unencoded single-part
/// HTML body (inserted before `</body>`).
pub fn append_footer(raw: &[u8], text: &str, html: Option<&str>) -> Vec<u8> {
    // A message without the blank line after its header would get the footer in the header.
    let mut owned;
    let raw = if super::blank_line(raw).is_none() {
        owned = raw.to_vec();
        super::ensure_blank_line(&mut owned);
        &owned[..]
    } else {
        raw
    };
    let content_type = header(raw, "content-type").unwrap_or_else(|| "text/plain".into());
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let encoding = header(raw, "content-transfer-encoding")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let plain_bytes = matches!(encoding.as_str(), "" | "7bit" | "8bit" | "binary");
    let text = crlf(text);

    if mime == "text/plain" && plain_bytes {
        let mut out = raw.to_vec();
        if !out.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&text);
        out.extend_from_slice(b"\r\n");
        return out;
    }
    if let (true, true, Some(html)) = (mime == "text/html", plain_bytes, html) {
        let mut out = raw.to_vec();
        let body = body_start(raw);
        let at = find_last_ci(&raw[body..], b"</body>").map_or(out.len(), |p| body + p);
        out.splice(at..at, crlf(html));
        return out;
    }
    // RFC 2046 boundaries are 1 to 70 characters; a longer one is not trusted (the search
    // for it costs its length at every byte of the body), and the message is wrapped.
    if mime == "multipart/mixed"
        && let Some(boundary) = param(&content_type, "boundary").filter(|b| b.len() <= 70)
    {
        let close = format!("--{boundary}--");
        let body = body_start(raw);
        if let Some(pos) = find_last(&raw[body..], close.as_bytes()) {
            let at = body + pos;
            let mut part = format!("--{boundary}\r\n").into_bytes();
            part.extend_from_slice(FOOTER_PART_HEAD);
            part.extend_from_slice(&text);
            part.extend_from_slice(b"\r\n");
            let mut out = raw.to_vec();
            // The close delimiter must start a line.
            if at > 0 && raw[at - 1] != b'\n' {
                part.splice(0..0, b"\r\n".iter().copied());
            }
            out.splice(at..at, part);
            return out;
        }
    }
    wrap_in_mixed(raw, &content_type, &encoding, &text)
}

fn wrap_in_mixed(raw: &[u8], content_type: &str, encoding: &str, text: &[u8]) -> Vec<u8> {
    let body = &raw[body_start(raw)..];
    let boundary = fresh_boundary(body);
    // The header without its blank line (the caller made sure there is one).
    let blank = super::blank_line(raw).map_or(raw.len(), |(blank, _)| blank);
    let mut head = raw[..blank].to_vec();
    for name in ["content-type", "content-transfer-encoding", "mime-version"] {
        remove_fields(&mut head, name);
    }
    let mut out = head;
    out.extend(field_line("MIME-Version", "1.0"));
    out.extend(field_line(
        "Content-Type",
        &format!("multipart/mixed; boundary=\"{boundary}\""),
    ));
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    out.extend(field_line("Content-Type", content_type));
    if !encoding.is_empty() {
        out.extend(field_line("Content-Transfer-Encoding", encoding));
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    if !body.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    out.extend_from_slice(FOOTER_PART_HEAD);
    out.extend_from_slice(text);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// A boundary that occurs nowhere in `body`: `=_roost_footer_LEN_N` with N above every N the
/// body already holds, found in one pass (trying N = 0, 1, ... against a body written full of
/// candidates was quadratic), or a random one should even that occur.
fn fresh_boundary(body: &[u8]) -> String {
    let prefix = format!("=_roost_footer_{:x}_", body.len());
    let mut n = 0u64;
    let mut at = 0;
    while let Some(p) = find_first(&body[at..], prefix.as_bytes()) {
        let digits = at + p + prefix.len();
        let len = body[digits..]
            .iter()
            .take(19)
            .take_while(|b| b.is_ascii_digit())
            .count();
        let seen = std::str::from_utf8(&body[digits..digits + len])
            .ok()
            .and_then(|d| d.parse::<u64>().ok());
        n = n.max(seen.map_or(0, |v| v.saturating_add(1)));
        at = digits;
    }
    let boundary = format!("{prefix}{n}");
    if find_first(body, boundary.as_bytes()).is_none() {
        boundary
    } else {
        format!("=_roost_footer_{}", uuid::Uuid::now_v7().simple())
    }
}

/// A parameter of a structured header value (`boundary="x"`), quotes removed.
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|v| !v.is_empty())
    })
}

fn crlf(text: &str) -> Vec<u8> {
    text.replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes()
}

fn find_first(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

fn find_last_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .rposition(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(raw)
            .expect("parses")
    }

    #[test]
    fn plain_text_gets_the_footer_appended() {
        let out = append_footer(b"Subject: s\r\n\r\nHello\r\n", "--\nList footer", None);
        assert_eq!(out, b"Subject: s\r\n\r\nHello\r\n--\r\nList footer\r\n");
    }

    #[test]
    fn multipart_mixed_gets_a_part() {
        let raw = b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nHi\r\n--b1--\r\n";
        let out = append_footer(raw, "Footer", None);
        let m = parse(&out);
        assert_eq!(m.text_body_count() + m.attachment_count(), 2);
        assert!(String::from_utf8_lossy(&out).contains("Footer\r\n--b1--"));
    }

    #[test]
    fn encoded_and_html_bodies_are_wrapped_not_touched() {
        let raw = b"Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8=\r\n";
        let out = append_footer(raw, "Footer", None);
        let m = parse(&out);
        assert_eq!(m.subject(), Some("s"));
        assert_eq!(m.body_text(0).as_deref(), Some("Hello"));
        assert!(String::from_utf8_lossy(&out).contains("multipart/mixed"));
        let parts: Vec<String> = (0..2)
            .filter_map(|i| m.body_text(i).map(|t| t.trim().to_string()))
            .collect();
        assert!(parts.contains(&"Footer".to_string()), "{parts:?}");
    }

    #[test]
    fn a_message_without_a_blank_line_keeps_its_header() {
        let out = append_footer(b"Subject: hi\r\nMessage-ID: <x@y>", "Footer", None);
        assert_eq!(out, b"Subject: hi\r\nMessage-ID: <x@y>\r\n\r\nFooter\r\n");
        let out = append_footer(b"Content-Type: text/html\r\nSubject: hi", "Footer", None);
        let m = parse(&out);
        assert_eq!(m.subject(), Some("hi"));
        assert!(String::from_utf8_lossy(&out).contains("Subject: hi\r\nMIME-Version: 1.0\r\n"));
    }

    #[test]
    fn html_footer_goes_before_the_end_of_body() {
        let raw = b"Content-Type: text/html\r\n\r\n<html><body><p>Hi</p></body></html>\r\n";
        let out = append_footer(raw, "Footer", Some("<p>Footer</p>"));
        assert!(String::from_utf8_lossy(&out).contains("<p>Hi</p><p>Footer</p></body>"));
    }

    /// Hostile shapes that used to cost the body's length squared: a body written full of
    /// the boundaries the wrapper would try, and a multipart boundary of 100,000 bytes.
    #[test]
    fn hostile_bodies_are_footed_in_linear_time() {
        let started = std::time::Instant::now();
        let mut body = String::new();
        let len = 2_000_000;
        let mut n = 0;
        while body.len() < len - 40 {
            body.push_str(&format!("=_roost_footer_{len:x}_{n}\n"));
            n += 1;
        }
        body.push_str(&"x".repeat(len - body.len()));
        let raw = format!("Content-Type: text/html\r\n\r\n{body}");
        let out = append_footer(raw.as_bytes(), "Footer", None);
        let boundary = format!("=_roost_footer_{len:x}_{n}");
        assert!(String::from_utf8_lossy(&out).contains(&format!("boundary=\"{boundary}\"")));
        let long = "-".repeat(100_000);
        let raw = format!(
            "Content-Type: multipart/mixed; boundary=\"{long}x\"\r\n\r\n{}",
            "-".repeat(2_000_000)
        );
        let out = append_footer(raw.as_bytes(), "Footer", None);
        assert!(String::from_utf8_lossy(&out[..200]).contains("boundary=\"=_roost_footer_"));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    proptest::proptest! {
        /// Whatever the post's shape, the footer is there and the post's header and text
        /// are kept (the fuzzing of shapes the boundary and part searches meet).
        #[test]
        fn a_footer_never_loses_the_post(
            content_type in proptest::sample::select(vec![
                "text/plain", "text/html", "multipart/mixed; boundary=\"b\"",
                "multipart/mixed; boundary=b", "application/octet-stream", "text/plain; x",
            ]),
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "--b\r\n", "--b--\r\n", "--b--", "x", "\r\n", "\n", "</body>", "</BODY>",
                    "=_roost_footer_", "Content-Type: text/plain\r\n", "\u{e9}",
                ]),
                0..30,
            ),
        ) {
            let body = pieces.concat();
            let raw = format!("Subject: s\r\nContent-Type: {content_type}\r\n\r\n{body}");
            let out = append_footer(raw.as_bytes(), "FOOT", Some("<p>FOOT</p>"));
            let text = String::from_utf8_lossy(&out);
            proptest::prop_assert!(text.contains("FOOT"), "{}", text);
            proptest::prop_assert!(out.starts_with(b"Subject: s\r\n"), "{}", text);
            // The post's text is all there, in order (parts and footers may come between).
            let mut rest = out.iter();
            let kept = body.as_bytes().iter().all(|b| rest.any(|o| o == b));
            proptest::prop_assert!(kept, "{}", text);
        }
    }
}

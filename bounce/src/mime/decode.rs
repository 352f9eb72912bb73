//! Undoing transfer encodings, charsets and HTML: what turns a part's raw bytes into the
//! text the detectors read. Every decoder is lenient (a broken escape stays literal rather
//! than losing the part) and linear.

use mail_parser::decoders::{base64::base64_decode, charsets::map::charset_decoder};

/// The body with its transfer encoding (`base64`, `quoted-printable`) undone.
pub fn transfer(body: &[u8], encoding: &str) -> Vec<u8> {
    match encoding.trim().to_ascii_lowercase().as_str() {
        "base64" => {
            let clean: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
                .collect();
            // Padding was dropped with the junk; a dangling single character cannot decode,
            // so drop it too rather than lose the whole part.
            let usable = clean.len() - usize::from(clean.len() % 4 == 1);
            base64_decode(&clean[..usable]).unwrap_or_else(|| body.to_vec())
        }
        "quoted-printable" => decode_qp(body),
        _ => body.to_vec(),
    }
}

/// Bytes to text: UTF-8 when valid, else the declared charset when known, else a lossy
/// conversion.
pub fn charset(bytes: Vec<u8>, declared: Option<&str>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let bytes = e.into_bytes();
            let decoder = declared
                .filter(|c| !c.eq_ignore_ascii_case("utf-8") && c.len() < 40)
                .and_then(|c| charset_decoder(c.as_bytes()));
            match decoder {
                Some(decode) => decode(&bytes),
                None => String::from_utf8_lossy(&bytes).into_owned(),
            }
        }
    }
}

/// HTML to lines of text. Bounces in HTML are line-oriented (`<br>` per line, or plain text
/// mislabelled as HTML), so line breaks in the source are kept and block tags add more; tags
/// are dropped and the common entities decoded. One linear pass.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while let Some(lt) = rest.find('<') {
        if skip_until.is_none() {
            push_decoded(&mut out, &rest[..lt]);
        }
        let after = &rest[lt + 1..];
        let Some(gt) = after.find('>') else {
            rest = after;
            break;
        };
        let tag = after[..gt].trim().to_ascii_lowercase();
        rest = &after[gt + 1..];
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        if let Some(end) = skip_until {
            if tag.starts_with('/') && name == end {
                skip_until = None;
            }
            continue;
        }
        match name {
            "style" | "script" | "head" | "title" if !tag.starts_with('/') => {
                skip_until = Some(match name {
                    "style" => "style",
                    "script" => "script",
                    "head" => "head",
                    _ => "title",
                });
            }
            "br" | "p" | "div" | "tr" | "li" | "table" | "h1" | "h2" | "h3" | "pre" => {
                out.push('\n');
            }
            _ => {}
        }
    }
    if skip_until.is_none() {
        push_decoded(&mut out, rest);
    }
    out
}

fn push_decoded(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        // Entities are short: looking further would make "&&&&..." quadratic.
        let end = after.bytes().take(10).position(|b| b == b';');
        let decoded = end.and_then(|e| match &after[..e] {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            n => n
                .strip_prefix('#')
                .and_then(|d| d.parse::<u32>().ok())
                .and_then(char::from_u32),
        });
        match (decoded, end) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            _ => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

/// A lenient quoted-printable decoder: invalid escapes are kept literally instead of failing
/// the whole part, which is what bounce generators need.
fn decode_qp(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'=' {
            let rest = &raw[i + 1..];
            if rest.starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if rest.starts_with(b"\n") {
                i += 2;
                continue;
            }
            if let (Some(h), Some(l)) = (
                rest.first().and_then(|c| (*c as char).to_digit(16)),
                rest.get(1).and_then(|c| (*c as char).to_digit(16)),
            ) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_lines() {
        assert_eq!(
            html_to_text(
                "<html><style>x{}</style>a&lt;b&gt;<br>c<font color=red>d</font>\ne &#64;"
            ),
            "a<b>\ncd\ne @"
        );
    }

    #[test]
    fn lenient_qp_and_base64() {
        assert_eq!(transfer(b"a=3Db=\nc=ZZ", "quoted-printable"), b"a=bc=ZZ");
        assert_eq!(transfer(b"aGVs\nbG8=\n", "Base64"), b"hello");
    }
}

//! Header fields and `Content-Type` values, parsed leniently.

/// Header fields per part beyond this are ignored (bounces carry maybe a hundred).
const MAX_HEADERS: usize = 512;

/// Unfolded header fields of one entity, in order. Names keep their case; lookups ignore it.
#[derive(Debug, Default, Clone)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// The first field with this name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every field with this name, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

fn is_header_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_graphic() && b != b':')
}

/// Parses a header block and returns the fields and the offset where the body starts. A line
/// that is neither a field nor a continuation ends the block even without the blank line, since
/// some bounce generators forget it.
pub fn parse_headers(raw: &[u8]) -> (Headers, usize) {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut pos = 0;
    let mut first = true;
    while pos < raw.len() {
        let end = raw[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| pos + i + 1);
        let line = &raw[pos..end];
        let trimmed = trim_eol(line);
        if trimmed.is_empty() {
            return (Headers { fields }, end);
        }
        // An mbox "From " separator line on the very first line is not a field.
        if first && trimmed.starts_with(b"From ") {
            first = false;
            pos = end;
            continue;
        }
        first = false;
        if matches!(trimmed[0], b' ' | b'\t') {
            if let Some((_, value)) = fields.last_mut() {
                let more = String::from_utf8_lossy(trimmed);
                let more = more.trim();
                if !more.is_empty() && value.len() < 64 * 1024 {
                    if !value.is_empty() {
                        value.push(' ');
                    }
                    value.push_str(more);
                }
                pos = end;
                continue;
            }
            return (Headers { fields }, pos);
        }
        let Some(colon) = trimmed.iter().position(|&b| b == b':') else {
            return (Headers { fields }, pos);
        };
        let name = trim_ascii_end(&trimmed[..colon]);
        if !is_header_name(name) {
            return (Headers { fields }, pos);
        }
        if fields.len() < MAX_HEADERS {
            let value = String::from_utf8_lossy(&trimmed[colon + 1..])
                .trim()
                .to_string();
            fields.push((String::from_utf8_lossy(name).into_owned(), value));
        }
        pos = end;
    }
    (Headers { fields }, raw.len())
}

pub(super) fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

pub(super) fn trim_ascii_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &s[..end]
}

/// A parsed `Content-Type`: lower-cased type and subtype plus parameters (names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    pub mime_type: String,
    pub subtype: String,
    pub params: Vec<(String, String)>,
}

impl ContentType {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is(&self, mime_type: &str, subtype: &str) -> bool {
        self.mime_type == mime_type && self.subtype == subtype
    }

    pub(super) fn text_plain() -> Self {
        ContentType {
            mime_type: "text".into(),
            subtype: "plain".into(),
            params: Vec::new(),
        }
    }

    pub(super) fn message_rfc822() -> Self {
        ContentType {
            mime_type: "message".into(),
            subtype: "rfc822".into(),
            params: Vec::new(),
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        let mut it = value.splitn(2, ';');
        let full = it.next()?.trim();
        let (t, s) = full.split_once('/')?;
        let (t, s) = (t.trim(), s.trim());
        if t.is_empty() || s.is_empty() {
            return None;
        }
        Some(ContentType {
            mime_type: t.to_ascii_lowercase(),
            subtype: s.to_ascii_lowercase(),
            params: parse_params(it.next().unwrap_or("")),
        })
    }
}

/// Parses `; name=value; name="quoted; value"` lists, tolerating junk between parameters.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while out.len() < 32 {
        while chars
            .next_if(|(_, c)| *c == ';' || c.is_whitespace())
            .is_some()
        {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut name_end = s.len();
        let mut has_eq = false;
        for (i, c) in chars.by_ref() {
            if c == '=' {
                name_end = i;
                has_eq = true;
                break;
            }
            if c == ';' {
                name_end = i;
                break;
            }
        }
        if !has_eq {
            continue;
        }
        let name = s[start..name_end].trim().to_ascii_lowercase();
        while chars.next_if(|(_, c)| *c == ' ' || *c == '\t').is_some() {}
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '"').is_some() {
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    _ => value.push(c),
                }
            }
            // Skip whatever follows the closing quote up to the next parameter.
            while chars.next_if(|(_, c)| *c != ';').is_some() {}
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| *c != ';') {
                value.push(c);
            }
            let trimmed = value.trim_end().len();
            value.truncate(trimmed);
        }
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_unfold_and_lookup() {
        let (h, off) = parse_headers(b"From x\nSubject: a\n b\nX-A: 1\n\nbody");
        assert_eq!(h.get("subject"), Some("a b"));
        assert_eq!(h.get("x-a"), Some("1"));
        assert_eq!(off, 29);
    }

    #[test]
    fn content_type_params() {
        let ct =
            ContentType::parse("Multipart/Report; report-type=delivery-status;\tboundary=\"a;b\"")
                .unwrap();
        assert!(ct.is("multipart", "report"));
        assert_eq!(ct.param("boundary"), Some("a;b"));
        assert_eq!(ct.param("report-type"), Some("delivery-status"));
    }
}

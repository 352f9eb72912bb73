//! The RFC 5322 message as bytes: find the header block, read and change header fields, add
//! trace fields. Works on the raw bytes without a full MIME parse, so intake and the
//! pipeline stay cheap and never rewrite what they do not touch.

mod date;
mod footer;

pub use date::{parse_rfc3339, rfc3339, rfc5322_date};
pub use footer::append_footer;

/// Byte offset where the body starts (after the blank line), or the length when the
/// message has no body. The header block is `raw[..body_start(raw)]`.
pub fn body_start(raw: &[u8]) -> usize {
    blank_line(raw).map_or(raw.len(), |(_, body)| body)
}

/// The blank line that ends the header: (where it starts, where the body starts).
pub(crate) fn blank_line(raw: &[u8]) -> Option<(usize, usize)> {
    let mut line = 0;
    loop {
        let rest = &raw[line..];
        if rest.starts_with(b"\r\n") {
            return Some((line, line + 2));
        }
        if rest.starts_with(b"\n") {
            return Some((line, line + 1));
        }
        line += rest.iter().position(|&b| b == b'\n')? + 1;
    }
}

/// One header field with its byte range in the message (continuation lines included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// Unfolded, with surrounding whitespace trimmed; undecodable bytes replaced.
    pub value: String,
    pub start: usize,
    pub end: usize,
}

/// The header fields in order. Lines that are not `name: value` (garbage in broken mail)
/// are skipped rather than failing the message.
pub fn fields(raw: &[u8]) -> Vec<Field> {
    let header = &raw[..body_start(raw)];
    let mut out: Vec<Field> = Vec::new();
    let mut i = 0;
    while i < header.len() {
        let line_end = header[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(header.len(), |p| i + p + 1);
        let line = &header[i..line_end];
        let is_continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if is_continuation {
            if let Some(last) = out.last_mut() {
                last.value.push(' ');
                last.value.push_str(String::from_utf8_lossy(line).trim());
                last.end = line_end;
            }
        } else if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = &line[..colon];
            if !name.is_empty() && name.iter().all(|b| (33..=126).contains(b)) {
                out.push(Field {
                    name: String::from_utf8_lossy(name).into_owned(),
                    value: String::from_utf8_lossy(&line[colon + 1..])
                        .trim()
                        .to_string(),
                    start: i,
                    end: line_end,
                });
            }
        }
        i = line_end;
    }
    out
}

/// The first field of that name (case-insensitive), unfolded.
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    fields(raw)
        .into_iter()
        .find(|f| f.name.eq_ignore_ascii_case(name))
        .map(|f| f.value)
}

/// `name: value` with CRLF, folded nowhere (callers pass one-line values).
pub fn field_line(name: &str, value: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(name.len() + value.len() + 4);
    line.extend_from_slice(name.as_bytes());
    line.extend_from_slice(b": ");
    line.extend_from_slice(value.as_bytes());
    line.extend_from_slice(b"\r\n");
    line
}

/// Put a field at the top of the header (trace fields go first: RFC 5321 §4.4).
pub fn prepend_field(raw: &mut Vec<u8>, line: &[u8]) {
    raw.splice(0..0, line.iter().copied());
}

/// Add a field at the end of the header block.
pub fn append_field(raw: &mut Vec<u8>, name: &str, value: &str) {
    let at = header_end(raw);
    raw.splice(at..at, field_line(name, value));
}

/// Give the field of that name this value where it stands (the first one; any others are
/// removed), or add it at the end of the header when there is none.
pub fn set_field(raw: &mut Vec<u8>, name: &str, value: &str) {
    let matching: Vec<(usize, usize)> = fields(raw)
        .into_iter()
        .filter(|f| f.name.eq_ignore_ascii_case(name))
        .map(|f| (f.start, f.end))
        .collect();
    let Some(&(start, end)) = matching.first() else {
        return append_field(raw, name, value);
    };
    remove_ranges(raw, &matching[1..]);
    raw.splice(start..end, field_line(name, value));
}

/// Remove every field of that name; returns how many.
pub fn remove_fields(raw: &mut Vec<u8>, name: &str) -> usize {
    let doomed: Vec<(usize, usize)> = fields(raw)
        .into_iter()
        .filter(|f| f.name.eq_ignore_ascii_case(name))
        .map(|f| (f.start, f.end))
        .collect();
    remove_ranges(raw, &doomed);
    doomed.len()
}

/// Take these byte ranges (in order, not overlapping) out of `raw` in one pass. Draining
/// them one by one moves the rest of the message each time: a header of many fields of one
/// name made that quadratic.
pub fn remove_ranges(raw: &mut Vec<u8>, ranges: &[(usize, usize)]) {
    if ranges.is_empty() {
        return;
    }
    let mut write = ranges[0].0;
    for (i, &(_, end)) in ranges.iter().enumerate() {
        let next = ranges.get(i + 1).map_or(raw.len(), |r| r.0);
        raw.copy_within(end..next, write);
        write += next - end;
    }
    raw.truncate(write);
}

/// Give a message that has none the blank line that ends its header.
pub fn ensure_blank_line(raw: &mut Vec<u8>) {
    header_end(raw);
}

/// Where new fields go: before the blank line, or at the end of a message without one
/// (which then gets a blank line so the new field is not taken for body).
fn header_end(raw: &mut Vec<u8>) -> usize {
    if let Some((blank, _)) = blank_line(raw) {
        return blank;
    }
    if !raw.is_empty() && !raw.ends_with(b"\n") {
        raw.extend_from_slice(b"\r\n");
    }
    let at = raw.len();
    raw.extend_from_slice(b"\r\n");
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"From: a@example.org\r\nSubject: hello\r\n  world\r\nTo: l@example.org\r\n\r\nbody\r\n";

    #[test]
    fn reads_fields_and_unfolds() {
        let f = fields(MSG);
        assert_eq!(f.len(), 3);
        assert_eq!(f[1].name, "Subject");
        assert_eq!(f[1].value, "hello world");
        assert_eq!(header(MSG, "subject").as_deref(), Some("hello world"));
        assert_eq!(&MSG[body_start(MSG)..], b"body\r\n");
    }

    #[test]
    fn adds_and_removes_fields() {
        let mut m = MSG.to_vec();
        append_field(&mut m, "X-List", "yes");
        assert!(m.ends_with(b"To: l@example.org\r\nX-List: yes\r\n\r\nbody\r\n"));
        assert_eq!(remove_fields(&mut m, "subject"), 1);
        assert_eq!(header(&m, "subject"), None);
        assert!(m.starts_with(b"From: a@example.org\r\nTo: l@example.org\r\n"));
    }

    #[test]
    fn set_field_keeps_the_position() {
        let mut m = MSG.to_vec();
        set_field(&mut m, "subject", "new");
        assert!(m.starts_with(b"From: a@example.org\r\nsubject: new\r\nTo: l@example.org\r\n\r\n"));
        set_field(&mut m, "X-New", "1");
        assert!(m.ends_with(b"X-New: 1\r\n\r\nbody\r\n"));
    }

    #[test]
    fn handles_messages_without_body_or_header() {
        let mut m = b"Subject: only".to_vec();
        append_field(&mut m, "X-A", "1");
        assert_eq!(m, b"Subject: only\r\nX-A: 1\r\n\r\n");
        let mut m = b"\r\nbody".to_vec();
        append_field(&mut m, "X-A", "1");
        assert_eq!(m, b"X-A: 1\r\n\r\nbody");
        assert!(fields(b"garbage line\r\n\xff\xfe: x\r\n\r\n").is_empty());
    }

    #[test]
    fn bare_lf_messages_work() {
        let mut m = b"Subject: s\nFrom: f\n\nbody\n".to_vec();
        assert_eq!(fields(&m).len(), 2);
        append_field(&mut m, "X-A", "1");
        assert_eq!(m, b"Subject: s\nFrom: f\nX-A: 1\r\n\nbody\n");
    }

    #[test]
    fn many_fields_of_one_name_are_removed_in_linear_time() {
        let mut m = b"X-A: 1\r\n".repeat(400_000);
        m.extend_from_slice(b"Subject: kept\r\n\r\nbody\r\n");
        let started = std::time::Instant::now();
        assert_eq!(remove_fields(&mut m, "x-a"), 400_000);
        assert_eq!(m, b"Subject: kept\r\n\r\nbody\r\n");
        let mut m = b"X-A: 1\r\nX-B: 2\r\n".repeat(200_000);
        m.extend_from_slice(b"\r\n");
        set_field(&mut m, "x-b", "only");
        assert_eq!(fields(&m).len(), 200_001);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    proptest::proptest! {
        #[test]
        fn removing_ranges_keeps_the_rest_in_order(
            text in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..20),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            cuts.sort_unstable();
            let ranges: Vec<(usize, usize)> = cuts.chunks_exact(2).map(|c| (c[0], c[1])).collect();
            let expected: Vec<u8> = text
                .iter()
                .enumerate()
                .filter(|(i, _)| !ranges.iter().any(|&(s, e)| (s..e).contains(i)))
                .map(|(_, &b)| b)
                .collect();
            let mut raw = text.clone();
            remove_ranges(&mut raw, &ranges);
            proptest::prop_assert_eq!(raw, expected);
        }
    }
}

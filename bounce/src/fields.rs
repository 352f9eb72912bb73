//! Header-style field groups, as in `message/delivery-status` and `message/feedback-report`.

/// One group of fields; names lower-cased, values unfolded and trimmed.
#[derive(Debug, Default, Clone)]
pub struct Record {
    pub fields: Vec<(String, String)>,
}

impl Record {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Fields that occur once per recipient: seeing one again means a new recipient started
/// even though the generator forgot the blank line between groups.
const PER_RECIPIENT: &[&str] = &[
    "final-recipient",
    "original-recipient",
    "action",
    "status",
    "diagnostic-code",
];

const MAX_RECORDS: usize = 1000;
const MAX_VALUE: usize = 4096;
/// A DSN group has a dozen fields; more are junk and are ignored.
const MAX_FIELDS: usize = 64;

/// Splits text into records at blank lines, at lines that are not fields (prose around a DSN
/// pasted into a text part) and where a per-recipient field repeats.
pub fn records(text: &str) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let mut cur = Record::default();
    let flush = |cur: &mut Record, out: &mut Vec<Record>| {
        if !cur.fields.is_empty() && out.len() < MAX_RECORDS {
            out.push(std::mem::take(cur));
        }
        cur.fields.clear();
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut cur, &mut out);
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.fields.last_mut() {
                if v.len() < MAX_VALUE {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            flush(&mut cur, &mut out);
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            flush(&mut cur, &mut out);
            continue;
        };
        let name = name.trim_end();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            flush(&mut cur, &mut out);
            continue;
        }
        if cur.fields.len() >= MAX_FIELDS {
            continue;
        }
        let name = name.to_ascii_lowercase();
        if PER_RECIPIENT.contains(&name.as_str()) && cur.has(&name) {
            flush(&mut cur, &mut out);
        }
        let mut value = value.trim().to_string();
        value.truncate(floor_char_boundary(&value, MAX_VALUE));
        cur.fields.push((name, value));
    }
    flush(&mut cur, &mut out);
    out
}

/// The largest index `<= max` that is a char boundary of `s`.
pub fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    (0..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

/// One line, whitespace collapsed and other control characters (NUL above all, which a
/// database text column refuses) taken as space, at most `max` bytes: what goes into
/// `diagnostic`.
pub fn one_line(s: &str, max: usize) -> String {
    let mut out = String::new();
    for word in s.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if out.len() >= max {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.truncate(floor_char_boundary(&out, max));
    out
}

/// The first enhanced status code (`5.1.1`) in `s`, if any.
pub fn find_status(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let at_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.');
        if at_start
            && matches!(c, b'2' | b'4' | b'5')
            && let Some(len) = status_len(&bytes[i..])
        {
            return Some(s[i..i + len].to_string());
        }
        i += 1;
    }
    None
}

/// Length of `c.d{1,3}.d{1,3}` at the start of `b`, not followed by more digits or a dot-digit.
fn status_len(b: &[u8]) -> Option<usize> {
    if b.get(1) != Some(&b'.') {
        return None;
    }
    let digits = |from: usize| {
        b[from.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let d1 = digits(2);
    if !(1..=3).contains(&d1) || b.get(2 + d1) != Some(&b'.') {
        return None;
    }
    let d2 = digits(3 + d1);
    if !(1..=3).contains(&d2) {
        return None;
    }
    let end = 3 + d1 + d2;
    match b.get(end) {
        Some(c) if c.is_ascii_alphanumeric() => None,
        Some(b'.') if b.get(end + 1).is_some_and(u8::is_ascii_digit) => None,
        _ => Some(end),
    }
}

/// Drops an RFC 3464 type prefix such as `rfc822;` or `smtp;`.
pub fn strip_type(value: &str) -> &str {
    match value.split_once(';') {
        Some((t, rest))
            if !t.trim().is_empty()
                && t.trim()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            rest.trim()
        }
        _ => value.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_records() {
        let r = records(
            "Reporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@b.c\nAction: failed\n\
             Diagnostic-Code: smtp; 550\n  folded\nFinal-Recipient: rfc822; d@e.f\nAction: failed\n",
        );
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].get("diagnostic-code"), Some("smtp; 550 folded"));
        assert_eq!(r[2].get("final-recipient"), Some("rfc822; d@e.f"));
    }

    #[test]
    fn statuses() {
        assert_eq!(find_status("550 5.1.1 <x>").as_deref(), Some("5.1.1"));
        assert_eq!(find_status("4.4.7 (x)").as_deref(), Some("4.4.7"));
        assert_eq!(
            find_status("ip 10.5.1.1 and 5.2.2").as_deref(),
            Some("5.2.2")
        );
        assert_eq!(find_status("version 2.0"), None);
    }
}

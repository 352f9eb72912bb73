//! Recognising one address in a bounce's words.
//!
//! Detectors hand over the piece of text where their MTA puts a failed address; these helpers
//! decide whether that piece is an address at all. They are deliberately strict: a wrong
//! address unsubscribes a stranger, a missed one only delays bounce processing.

/// Normalises a candidate: trims blanks, `<>`, quotes, a `mailto:` or `SMTP:` prefix and
/// trailing punctuation; returns it only when it looks like `local@domain.tld`. Case is kept:
/// local parts may be case-sensitive.
pub fn clean(candidate: &str) -> Option<String> {
    let mut s = candidate.trim();
    for _ in 0..4 {
        let before = s.len();
        s = s.trim_matches(|c: char| {
            c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | '`' | '[' | ']' | '(' | ')')
        });
        s = s.trim_end_matches(['.', ',', ';', ':']);
        // A quoted-printable space left behind by a generator that forgot to declare QP.
        s = s.strip_suffix("=20").unwrap_or(s);
        for prefix in ["mailto:", "smtp:", "rfc822;"] {
            if s.get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
            {
                s = &s[prefix.len()..];
            }
        }
        if s.len() == before {
            break;
        }
    }
    valid(s).then(|| s.to_string())
}

/// Whether `s` is a plausible mailbox: one `@`, a local part without blanks or brackets, and a
/// dotted domain of letters, digits, hyphens (or a bracketed IP literal).
pub fn valid(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 128 || domain.len() > 255 {
        return false;
    }
    let local_ok = local.chars().all(|c| {
        !c.is_whitespace()
            && !c.is_control()
            && c != '\u{fffd}'
            && !matches!(
                c,
                '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | ':' | '@' | '"' | '\\'
            )
    });
    if !local_ok || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    if domain.starts_with('[') && domain.ends_with(']') {
        return domain.len() > 2
            && domain[1..domain.len() - 1]
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':'));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().any(|c| c.is_alphabetic()))
}

/// The content of the first `<...>` in `s`, cleaned.
pub fn bracketed(s: &str) -> Option<String> {
    let start = s.find('<')?;
    let len = s[start + 1..].find('>')?;
    clean(&s[start + 1..start + 1 + len])
}

/// The first whitespace-separated word of `s`, if it is an address.
pub fn first_word(s: &str) -> Option<String> {
    s.split_whitespace().next().and_then(clean)
}

/// The address from a header such as `From: Name <a@b>` or `To: a@b, c@d`; the first only.
pub fn from_header(value: &str) -> Option<String> {
    bracketed(value).or_else(|| value.split([',', ' ']).find_map(clean))
}

/// Every address in an address-list header (`a@b, Name <c@d>`), skipping groups and junk.
pub fn list_from_header(value: &str) -> Vec<String> {
    split_list(value)
        .into_iter()
        .filter_map(|item| bracketed(item).or_else(|| item.split_whitespace().find_map(clean)))
        .collect()
}

/// Splits on commas outside quotes and angle brackets.
fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans() {
        assert_eq!(
            clean(" <User@Example.COM>. ").as_deref(),
            Some("User@Example.COM")
        );
        assert_eq!(clean("\"a@b.org\"").as_deref(), Some("a@b.org"));
        assert_eq!(clean("SMTP:a@b.org").as_deref(), Some("a@b.org"));
        assert_eq!(clean("dylan"), None);
        assert_eq!(clean("userx@sims-ms-daemon"), None);
        assert_eq!(clean("a b@c.d"), None);
        assert_eq!(clean("@c.de"), None);
        // Found by the fuzzer: a prefix check must not slice inside a character.
        assert_eq!(clean("\u{ff}\u{ff}\u{ff}\u{ff}"), None);
    }

    #[test]
    fn lists() {
        assert_eq!(
            list_from_header("\"x, y\" <a@b.org>, c@d.net"),
            vec!["a@b.org".to_string(), "c@d.net".to_string()]
        );
    }
}

//! A post prepared once for a whole fan-out, split at its per-recipient placeholders, so
//! each copy is a few byte copies rather than a re-parse (DESIGN §6).
//!
//! Placeholders (WIT `edit`): `{{roost:address}}`, `{{roost:name}}`,
//! `{{roost:unsubscribe-url}}`, `{{roost:open-url}}` and `{{roost:link:N}}`. Any other
//! `{{roost:...}}` is text.

use std::ops::Range;

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Address,
    Name,
    UnsubscribeUrl,
    /// The open-tracking pixel's URL.
    OpenUrl,
    Link(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(Range<usize>),
    Slot(Slot),
}

#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    parts: Vec<Part>,
}

const OPEN: &[u8] = b"{{roost:";

impl Template {
    pub fn new(bytes: Vec<u8>) -> Template {
        let mut parts = Vec::new();
        let mut text_from = 0;
        let mut i = 0;
        while let Some(p) = find(&bytes[i..], OPEN) {
            let at = i + p;
            let name_from = at + OPEN.len();
            let Some(close) = find(&bytes[name_from..], b"}}").filter(|&c| c <= 16) else {
                i = name_from;
                continue;
            };
            let name = &bytes[name_from..name_from + close];
            let slot = match name {
                b"address" => Some(Slot::Address),
                b"name" => Some(Slot::Name),
                b"unsubscribe-url" => Some(Slot::UnsubscribeUrl),
                b"open-url" => Some(Slot::OpenUrl),
                _ => name
                    .strip_prefix(b"link:")
                    .and_then(|n| std::str::from_utf8(n).ok())
                    .and_then(|n| n.parse().ok())
                    .map(Slot::Link),
            };
            let end = name_from + close + 2;
            if let Some(slot) = slot {
                if text_from < at {
                    parts.push(Part::Text(text_from..at));
                }
                parts.push(Part::Slot(slot));
                text_from = end;
            }
            i = end;
        }
        if text_from < bytes.len() {
            parts.push(Part::Text(text_from..bytes.len()));
        }
        Template { bytes, parts }
    }

    /// Whether copies differ per recipient at all.
    pub fn has_slots(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Slot(_)))
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The copy for one recipient: `value` writes what a slot stands for.
    pub fn fill(&self, out: &mut Vec<u8>, mut value: impl FnMut(Slot, &mut Vec<u8>)) {
        out.reserve(self.bytes.len() + 128);
        for part in &self.parts {
            match part {
                Part::Text(r) => out.extend_from_slice(&self.bytes[r.clone()]),
                Part::Slot(s) => value(*s, out),
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(t: &Template) -> String {
        let mut out = Vec::new();
        t.fill(&mut out, |slot, out| {
            out.extend_from_slice(match slot {
                Slot::Address => b"bob@example.net",
                Slot::Name => b"Bob",
                Slot::UnsubscribeUrl => b"https://u/1",
                Slot::OpenUrl => b"https://o/1",
                Slot::Link(0) => b"https://t/0",
                Slot::Link(_) => b"https://t/n",
            })
        });
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn placeholders_are_filled_and_other_text_kept() {
        let t = Template::new(
            b"To: {{roost:address}}\r\n\r\nHi {{roost:name}}, {{roost:link:0}} {{roost:link:7}} \
              {{roost:unknown}} {{roost:unsubscribe-url}} {{roost:"
                .to_vec(),
        );
        assert!(t.has_slots());
        assert_eq!(
            fill(&t),
            "To: bob@example.net\r\n\r\nHi Bob, https://t/0 https://t/n {{roost:unknown}} \
             https://u/1 {{roost:"
        );
        let plain = Template::new(b"no slots here".to_vec());
        assert!(!plain.has_slots());
        assert_eq!(fill(&plain), "no slots here");
    }
}

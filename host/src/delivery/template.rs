//! A post prepared once for a whole fan-out, split at its per-recipient placeholders, so
//! each copy is a few byte copies rather than a re-parse.
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
/// The longest placeholder name (`unsubscribe-url`, `link:` with a number).
const MAX_NAME: usize = 16;

impl Template {
    pub fn new(bytes: Vec<u8>) -> Template {
        let mut parts = Vec::new();
        let mut text_from = 0;
        let mut i = 0;
        while let Some(p) = find(&bytes[i..], OPEN) {
            let at = i + p;
            let name_from = at + OPEN.len();
            // A name is at most MAX_NAME bytes, so `}}` is looked for only that far: searching
            // the rest of the message at every `{{roost:` made a body of them quadratic.
            let window = &bytes[name_from..bytes.len().min(name_from + MAX_NAME + 2)];
            let Some(close) = find(window, b"}}") else {
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

    /// The same split, written the obvious way: every `{{roost:` with its `}}` within reach.
    fn reference(bytes: &[u8]) -> Vec<Part> {
        let mut parts = Vec::new();
        let (mut text_from, mut i) = (0, 0);
        while i + OPEN.len() <= bytes.len() {
            if !bytes[i..].starts_with(OPEN) {
                i += 1;
                continue;
            }
            let from = i + OPEN.len();
            let close = (from..bytes.len().saturating_sub(1))
                .take(MAX_NAME + 1)
                .find(|&c| &bytes[c..c + 2] == b"}}");
            let Some(close) = close else {
                i = from;
                continue;
            };
            let t = Template::new(bytes[i..close + 2].to_vec());
            if let [Part::Slot(slot)] = t.parts.as_slice() {
                if text_from < i {
                    parts.push(Part::Text(text_from..i));
                }
                parts.push(Part::Slot(*slot));
                text_from = close + 2;
            }
            i = close + 2;
        }
        if text_from < bytes.len() {
            parts.push(Part::Text(text_from..bytes.len()));
        }
        parts
    }

    proptest::proptest! {
        #[test]
        fn splits_like_the_obvious_scan(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "{{roost:", "}}", "}", "address", "name", "link:", "7", "x", "\r\n",
                    "unsubscribe-url", "open-url", "{{", "roost:",
                ]),
                0..40,
            )
        ) {
            let bytes = pieces.concat().into_bytes();
            proptest::prop_assert_eq!(Template::new(bytes.clone()).parts, reference(&bytes));
        }
    }

    /// A 4 MiB body of nothing but openings (a hostile post to an owner address) used to
    /// search the rest of the message at each: hours. Now it is one pass.
    #[test]
    fn a_body_of_openings_is_linear() {
        let bytes = b"{{roost:".repeat(512 * 1024);
        let started = std::time::Instant::now();
        let t = Template::new(bytes);
        assert!(!t.has_slots());
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let bytes = b"{{roost:address}}.".repeat(100_000);
        let t = Template::new(bytes);
        assert_eq!(t.parts.len(), 200_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(4));
    }
}

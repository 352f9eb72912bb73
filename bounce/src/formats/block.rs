//! The shape most non-standard bounces share: an MTA-specific sentence ("The following
//! addresses failed:"), then the failed addresses laid out in that MTA's way, then a marker
//! ("--- Below this line is a copy of the message."). A [`Block`] describes one such layout.

use super::{Ctx, Found, Line};
use crate::address;

/// Reads one line of a layout: its address and reason, if the line holds one.
pub type Reader = fn(&str) -> Option<(String, String)>;

/// How the addresses are laid out inside a block.
#[derive(Clone, Copy, Debug)]
pub enum Take {
    /// Each address on a line of its own, perhaps bulleted (`*`, `>`, `-`), quoted, or
    /// bracketed behind a display name.
    Alone,
    /// QSBMF / Postfix paragraphs: `<address>: reason` at the start of a line, reason lines
    /// following; Postfix may add `(expanded from <list-address>)`.
    AngleColon,
    /// The address is the first word of its line, the reason follows on the same line.
    FirstWord,
    /// A layout of its own: the function returns the line's address and reason, if any.
    With(Reader),
}

pub struct Block {
    /// Lower-case phrases that open the block (the line holding one is not read).
    pub start: &'static [&'static str],
    /// Lower-case phrases that close it.
    pub end: &'static [&'static str],
    pub take: Take,
    /// Lines that hold no address allowed before the first one; more means this is not the
    /// layout we expected, and nothing is taken.
    pub noise: usize,
    pub temporary: bool,
}

impl Block {
    pub const fn new(
        start: &'static [&'static str],
        end: &'static [&'static str],
        take: Take,
    ) -> Self {
        Block {
            start,
            end,
            take,
            noise: 2,
            temporary: false,
        }
    }

    pub const fn noise(mut self, noise: usize) -> Self {
        self.noise = noise;
        self
    }

    pub const fn temporary(mut self) -> Self {
        self.temporary = true;
        self
    }
}

/// No failure summary is longer; the cap only bounds the damage of a stray opening phrase.
const MAX_BLOCK: usize = 2000;

/// Every address found in every occurrence of the block.
pub fn run(ctx: &Ctx<'_>, b: &Block) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    let lines = &ctx.lines;
    let mut i = 0;
    while i < lines.len() && out.len() < crate::MAX_RECIPIENTS {
        let line = &lines[i];
        i += 1;
        if !b.start.iter().any(|s| line.lower.contains(s)) {
            continue;
        }
        let part = line.part;
        let first_new = out.len();
        let (mut noise, mut taken, mut len) = (0, false, 0);
        let mut paragraph_open = false;
        while i < lines.len() && len < MAX_BLOCK {
            let line = &lines[i];
            if line.part != part || b.end.iter().any(|e| matches_end(line, e)) {
                break;
            }
            // Another opening sentence starts a new block (Netscape repeats its heading).
            if b.start.iter().any(|s| line.lower.contains(s)) {
                break;
            }
            i += 1;
            len += 1;
            if line.text.trim().is_empty() {
                paragraph_open = false;
                continue;
            }
            let hits = take(b.take, line);
            if !hits.is_empty() {
                for (address, diagnostic) in hits {
                    out.push(Found::new(address, &diagnostic, b.temporary));
                }
                taken = true;
                paragraph_open = true;
                continue;
            }
            if taken {
                // QSBMF reasons run to the end marker, under the address they belong to. In
                // the other layouts the addresses are contiguous: prose after them ends the
                // block.
                if !matches!(b.take, Take::AngleColon) {
                    break;
                }
                let has_new = out.len() > first_new;
                if let Some(last) = out.last_mut().filter(|_| has_new)
                    && paragraph_open
                    && last.diagnostic.len() < crate::dsn::MAX_DIAGNOSTIC
                {
                    let joined = format!("{} {}", last.diagnostic, line.text.trim());
                    *last = Found::new(last.address.clone(), joined.trim(), last.temporary);
                }
                continue;
            }
            noise += 1;
            if noise > b.noise {
                break;
            }
        }
    }
    out
}

/// An end phrase; a leading `^` anchors it at the start of the (trimmed) line.
fn matches_end(line: &Line, end: &str) -> bool {
    match end.strip_prefix('^') {
        Some(prefix) => line.lower.trim_start().starts_with(prefix),
        None => line.lower.contains(end),
    }
}

/// Leading decoration some MTAs put before an address on a line of its own.
fn strip_bullets(s: &str) -> &str {
    s.trim().trim_start_matches(|c: char| {
        matches!(c, '*' | '>' | '-' | '\u{2022}') || c.is_whitespace()
    })
}

fn take(kind: Take, line: &Line) -> Vec<(String, String)> {
    match kind {
        Take::Alone => alone(&line.text)
            .map(|a| (a, String::new()))
            .into_iter()
            .collect(),
        Take::AngleColon => angle_colon(&line.text),
        Take::With(f) => f(&line.text).into_iter().collect(),
        Take::FirstWord => {
            let t = line.text.trim();
            let (word, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
            address::clean(word)
                .map(|a| (a, rest.trim().to_string()))
                .into_iter()
                .collect()
        }
    }
}

/// The address when the line holds nothing else (but bullets, quotes, a display name).
pub fn alone(text: &str) -> Option<String> {
    let t = strip_bullets(text);
    // Sendmail's "(expanded from: list-address)", Exim's "(generated from list-address)":
    // the address the list sent to, before an alias rewrote it.
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("(expanded from") || lower.starts_with("(generated from") {
        let inner = t.trim_start_matches('(').trim_end_matches(')');
        let (_, rest) = inner.split_once(' ')?;
        let (_, rest) = rest.split_once(' ')?;
        return address::clean(rest.trim_start_matches(':'));
    }
    if let Some(a) = address::clean(t) {
        return Some(a);
    }
    // `"Name" <address>` or `Name <address>`: the line must end with the bracket.
    if t.ends_with('>') {
        let open = t.rfind('<')?;
        return address::clean(&t[open..]);
    }
    None
}

/// `<address>: reason` or `<address> (expanded from <other>): reason`, at column 0.
pub fn angle_colon(text: &str) -> Vec<(String, String)> {
    let Some(rest) = text.strip_prefix('<') else {
        return Vec::new();
    };
    let Some(close) = rest.find('>') else {
        return Vec::new();
    };
    let Some(addr) = address::clean(&rest[..close]) else {
        return Vec::new();
    };
    let after = &rest[close + 1..];
    if let Some(reason) = after.strip_prefix(':') {
        return vec![(addr, reason.trim().to_string())];
    }
    if after.is_empty() {
        return vec![(addr, String::new())];
    }
    let lower = after.to_ascii_lowercase();
    if lower.trim_start().starts_with("(expanded from")
        && let Some(end) = after.find("):")
    {
        let reason = after[end + 2..].trim().to_string();
        let mut out = vec![(addr, reason.clone())];
        if let Some(orig) = address::bracketed(&after[..end]) {
            out.push((orig, reason));
        }
        return out;
    }
    Vec::new()
}

//! Exim: `X-Failed-Recipients:` names the failed addresses outright; the text lists them
//! two spaces in, the reason indented deeper, and "(generated from list-address)" when an
//! alias or forward rewrote the address the list sent to.

use super::{Ctx, Found};
use crate::address;

/// Sentences after which Exim lists addresses; `true` for the delay warnings.
const STARTS: &[(&str, bool)] = &[
    ("following address(es) failed", false),
    ("following addresses failed", false),
    ("following address failed", false),
    (
        "has not yet been delivered to the following addresses",
        true,
    ),
    (
        "the address to which the message has not yet been delivered is",
        true,
    ),
];

const ENDS: &[&str] = &[
    "no action is required on your part",
    "included is a copy",
    "this is a copy of the message",
    "the header of the original message",
];

pub fn detect(ctx: &Ctx<'_>) -> Option<(&'static str, Vec<Found>)> {
    let from_text = from_text(ctx);
    let header: Vec<String> = ctx
        .headers
        .get_all("x-failed-recipients")
        .flat_map(address::list_from_header)
        .take(crate::MAX_RECIPIENTS)
        .collect();
    if header.is_empty() {
        return (!from_text.is_empty()).then_some(("exim", from_text));
    }
    // The header is authoritative; the text only lends its reasons.
    let found = header
        .into_iter()
        .map(|a| {
            match from_text
                .iter()
                .find(|f| f.address.eq_ignore_ascii_case(&a))
            {
                Some(f) => f.clone(),
                None => Found::new(a, "", false),
            }
        })
        .collect();
    Some(("exim", found))
}

fn start_of(ctx: &Ctx<'_>, i: usize) -> Option<bool> {
    let line = &ctx.lines[i].lower;
    if let Some((_, temporary)) = STARTS.iter().find(|(s, _)| line.contains(s)) {
        return Some(*temporary);
    }
    // "... The following addresses" / "failed:" broken over two lines.
    let next = ctx.lines.get(i + 1)?;
    (line.trim_end().ends_with("the following addresses")
        && next.lower.trim_start().starts_with("failed:"))
    .then_some(false)
}

fn from_text(ctx: &Ctx<'_>) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    let lines = &ctx.lines;
    let mut i = 0;
    while i < lines.len() && out.len() < crate::MAX_RECIPIENTS {
        let Some(temporary) = start_of(ctx, i) else {
            i += 1;
            continue;
        };
        // Skip the rest of the opening sentence.
        i += 1;
        if lines
            .get(i)
            .is_some_and(|l| l.lower.trim_start().starts_with("failed:"))
        {
            i += 1;
        }
        let part = lines[i.saturating_sub(1)].part;
        let mut indent: Option<usize> = None;
        let mut count = 0;
        while let Some(line) = lines.get(i) {
            if line.part != part
                || count > 60
                || line.lower.trim_start().starts_with("---")
                || ENDS.iter().any(|e| line.lower.contains(e))
            {
                break;
            }
            i += 1;
            count += 1;
            let text = line.text.trim_start();
            if text.is_empty() {
                continue;
            }
            let depth = line.text.len() - text.len();
            if text.starts_with("(generated from") || text.starts_with("(expanded from") {
                if let Some(a) = super::block::alone(text) {
                    out.push(Found::new(a, "", temporary));
                }
                continue;
            }
            if indent.is_some_and(|d| depth > d) {
                // A reason line under the last address.
                if let Some(last) = out.last_mut()
                    && last.diagnostic.len() < crate::dsn::MAX_DIAGNOSTIC
                {
                    let joined = format!("{} {}", last.diagnostic, text);
                    *last = Found::new(last.address.clone(), joined.trim(), last.temporary);
                }
                continue;
            }
            let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
            if let Some(a) = address::clean(word) {
                indent.get_or_insert(depth);
                out.push(Found::new(a, rest, temporary));
            }
        }
    }
    out
}

//! Microsoft Exchange and Outlook-era servers (and others that copied their wording):
//! "did not reach the following recipient(s)" with `address on date` or X.400-style
//! `...;SMTP=address; on date` lines up to the `MSEXCH:` trailer, and the later
//! "Delivery has failed to these recipients or groups" form.

use super::block::{Block, Take, alone};
use super::{Ctx, Found, block, word_after};
use crate::address;

/// `address on <date>` or `c=US;a= ;p=ORG;...;SMTP=address; on <date>`.
fn recipient_on_date(text: &str) -> Option<(String, String)> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    if let Some(at) = lower.find("smtp=") {
        let rest = &t[at + 5..];
        let end = rest.find(';').unwrap_or(rest.len());
        return address::clean(&rest[..end]).map(|a| (a, String::new()));
    }
    let (word, rest) = t.split_once(' ')?;
    rest.starts_with("on ")
        .then(|| address::clean(word))
        .flatten()
        .map(|a| (a, String::new()))
}

const DID_NOT_REACH: Block = Block::new(
    &["did not reach the following recipient"],
    &["msexch:"],
    Take::With(recipient_on_date),
);

/// `* [address]: reason`, `address (address)`, `Recipient: [SMTP:address]`, or the
/// address alone.
fn listed(text: &str) -> Option<(String, String)> {
    let t = text
        .trim()
        .trim_start_matches(|c: char| c == '*' || c == '-' || c.is_whitespace());
    let t = t
        .strip_prefix("Recipient:")
        .map(str::trim_start)
        .unwrap_or(t);
    if let Some(inner) = t.strip_prefix('[') {
        let end = inner.find(']')?;
        let a = address::clean(&inner[..end])?;
        return Some((
            a,
            inner[end + 1..].trim_start_matches(':').trim().to_string(),
        ));
    }
    if let Some(a) = alone(t) {
        return Some((a, String::new()));
    }
    let (word, rest) = t.split_once(' ')?;
    let a = address::clean(word)?;
    // `address (address)` or `Name (address)` as newer Exchange writes it.
    rest.trim().starts_with('(').then_some((a, String::new()))
}

const FAILED_TO_THESE: Block = Block::new(
    &["delivery has failed to these recipients or"],
    &[
        "original message details",
        "diagnostic information for administrators",
        "^___",
    ],
    Take::With(listed),
)
.noise(3);

const NOT_REACHED: Block = Block::new(
    &["the following recipient(s) could not be reached"],
    &["error type", "message headers follow"],
    Take::With(listed),
);

const BELOW: Block = Block::new(
    &["the email below could not be delivered to the following user"],
    &["old message:"],
    Take::Alone,
);

pub fn detect(ctx: &Ctx<'_>) -> Option<(&'static str, Vec<Found>)> {
    // The address on the heading line itself (SpamLion and some gateways).
    let same_line: Vec<Found> = ctx
        .lines
        .iter()
        .filter_map(|l| word_after(l, "did not reach the following recipient:"))
        .map(|a| Found::new(a, "", false))
        .collect();
    if !same_line.is_empty() {
        return Some(("exchange", same_line));
    }
    block(ctx, "exchange", &DID_NOT_REACH)
        .or_else(|| block(ctx, "exchange", &FAILED_TO_THESE))
        .or_else(|| block(ctx, "exchange", &NOT_REACHED))
        .or_else(|| block(ctx, "exchange", &BELOW))
}

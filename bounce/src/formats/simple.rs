//! Bounces of smaller MTAs and gateways that each say it their own way. Two kinds of rules:
//! a sentence that ends with the failed address on the same line, and a heading followed
//! by a block of addresses (see [`Block`]).

use super::block::{Block, Take};
use super::{Ctx, Found, word_after};

/// `(name, sentence, also required on the line)`: the address is the first word after the
/// sentence.
const SENTENCES: &[(&str, &str, &str)] = &[
    ("usa.net", "intended recipient:", ""),
    ("hotpop", "undeliverable address:", ""),
    ("prodigy", "user's mailbox is full:", ""),
    ("lsmtp", "error-for:", ""),
    ("simple", "failed recipient:", ""),
    ("simple", "(originally addressed to", ""),
    ("interscan", "unable to deliver message to", ""),
    ("mail.ru", "local mailbox", "is unavailable"),
    ("demon", "the following message, addressed to", ""),
    ("simple", "your message to", "has reached our local address"),
    ("dovecot", "your message to", "was automatically rejected"),
    ("simple", "sorry, unable to deliver your message to", ""),
];

/// "userx@example.net - no such user here." (MDaemon).
fn dash_reason(text: &str) -> Option<(String, String)> {
    let (word, rest) = text.trim().split_once(" - ")?;
    let a = crate::address::clean(word)?;
    Some((a, rest.trim().to_string()))
}

/// "-- user@example.com" under "addressed to email address :".
fn dashed(text: &str) -> Option<(String, String)> {
    let rest = text.trim().strip_prefix("-- ")?;
    crate::address::clean(rest.trim()).map(|a| (a, String::new()))
}

/// " 552 Quota violation for user@example.com": an SMTP reply ending with the address.
fn reply_ending_with_address(text: &str) -> Option<(String, String)> {
    let t = text.trim();
    let code = t.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) || !matches!(code.as_bytes()[0], b'4' | b'5') {
        return None;
    }
    let a = crate::address::clean(t.split_whitespace().last()?)?;
    Some((a, t.to_string()))
}

const BLOCKS: &[(&str, Block)] = &[
    (
        "sdm",
        Block::new(
            &["here is your list of failed recipients"],
            &["here is your returned mail"],
            Take::Alone,
        ),
    ),
    (
        "mdaemon",
        Block::new(
            &["the following addresses did not receive a copy of your message"],
            &["session transcript"],
            Take::Alone,
        ),
    ),
    (
        "smail",
        Block::new(
            &["failed addresses follow:"],
            &["message text follows:"],
            Take::FirstWord,
        ),
    ),
    (
        "google",
        Block::new(
            &[
                "delivery to the following recipient failed",
                "delivery to the following recipients failed",
                "delevery to the following recipients failed",
                "delivery to the following recipients was aborted",
                "delevery to the following recipients was aborted",
            ],
            &["^===", "^---", "technical details"],
            Take::Alone,
        ),
    ),
    (
        "google",
        Block::new(
            &["delivery to the following recipient has been delayed"],
            &["^===", "^---", "message will be retried"],
            Take::Alone,
        )
        .temporary(),
    ),
    (
        "domino",
        Block::new(&["was not delivered to:"], &["because:"], Take::Alone),
    ),
    (
        "simple",
        Block::new(
            &["a message could not be delivered to:"],
            &["subject:"],
            Take::Alone,
        ),
    ),
    (
        "simple",
        Block::new(
            &["message not delivered to the following addresses"],
            &["error detail"],
            Take::Alone,
        ),
    ),
    (
        "simple",
        Block::new(
            &["------ failed recipients ------"],
            &["returned mail"],
            Take::AngleColon,
        ),
    ),
    (
        "simple",
        Block::new(
            &[
                "your message could not be delivered to",
                "could not be delivered to the following recipients",
            ],
            &["^***"],
            Take::Alone,
        ),
    ),
    (
        "messageswitch",
        Block::new(
            &["your message to:"],
            &["not yet been delivered"],
            Take::Alone,
        )
        .noise(0),
    ),
    (
        "exchange",
        Block::new(
            &["delivery of email to this address"],
            &["has been postponed"],
            Take::Alone,
        )
        .temporary(),
    ),
    (
        "simple",
        Block::new(
            &["this is a delivery failure notification message"],
            &["the problem appears to be"],
            Take::With(dashed),
        ),
    ),
    (
        "simple",
        Block::new(
            &["sorry, unable to deliver your message to"],
            &["a copy of the original message"],
            Take::With(reply_ending_with_address),
        ),
    ),
    (
        "xinnet",
        Block::new(
            &["wasn't able to deliver your message to the following addresses"],
            &["^--"],
            Take::Alone,
        ),
    ),
];

/// `(name, phrase, reader)`: lines holding the phrase carry the address and reason.
const LINES: &[(&str, &str, super::block::Reader)] =
    &[("mdaemon", " - no such user here", dash_reason)];

pub fn detect(ctx: &Ctx<'_>) -> Option<(&'static str, Vec<Found>)> {
    for (name, phrase, read) in LINES {
        let found: Vec<Found> = ctx
            .lines
            .iter()
            .filter(|l| l.lower.contains(phrase))
            .filter_map(|l| read(&l.text))
            .map(|(a, d)| Found::new(a, &d, false))
            .collect();
        if !found.is_empty() {
            return Some((name, found));
        }
    }
    for (name, block) in BLOCKS {
        let mut found = super::block::run(ctx, block);
        if found.is_empty() {
            continue;
        }
        // A same-line sentence may name more addresses (dachamp names one in each).
        for line in &ctx.lines {
            if found.len() >= crate::MAX_RECIPIENTS {
                break;
            }
            for (_, sentence, also) in SENTENCES {
                if (also.is_empty() || line.lower.contains(also))
                    && let Some(a) = word_after(line, sentence)
                    && !found.iter().any(|f| f.address.eq_ignore_ascii_case(&a))
                    && block.start.iter().any(|s| line.lower.contains(s))
                {
                    found.push(Found::new(a, line.text.trim(), block.temporary));
                }
            }
        }
        return Some((name, found));
    }
    let mut name = "";
    let mut found: Vec<Found> = Vec::new();
    for line in &ctx.lines {
        if found.len() >= crate::MAX_RECIPIENTS {
            break;
        }
        for (n, sentence, also) in SENTENCES {
            if (also.is_empty() || line.lower.contains(also))
                && let Some(a) = word_after(line, sentence)
            {
                if found.is_empty() {
                    name = n;
                }
                if !found.iter().any(|f| f.address.eq_ignore_ascii_case(&a)) {
                    found.push(Found::new(a, line.text.trim(), false));
                }
            }
        }
    }
    (!found.is_empty()).then_some((name, found))
}

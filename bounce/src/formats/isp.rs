//! Formats of single providers, recognised by the sender first: Yahoo!, Sina, AOL, Yale and
//! LLNL. Keying on the sender keeps their loose layouts from matching anyone else's mail.

use super::block::{Block, Take};
use super::{Ctx, Found, block, word_after};
use crate::address;

/// The domain of the `From` address when its local part is `local`.
fn sender_domain(ctx: &Ctx<'_>, local: &str) -> Option<String> {
    let from = ctx.from();
    let (l, d) = from.rsplit_once('@')?;
    (l == local).then(|| d.to_string())
}

const YAHOO: Block = Block::new(
    &[
        "message from yahoo.",
        "message from  yahoo.",
        "unable to deliver message to the following address",
        "sorry, we were unable to deliver your message to the following address",
    ],
    &["^--"],
    Take::AngleColon,
)
.noise(3);

/// Yahoo's short form: no address list, only a summary of the returned message.
fn summary_to(text: &str) -> Option<(String, String)> {
    let rest = text.trim().strip_prefix("To:")?;
    address::clean(rest.trim()).map(|a| (a, String::new()))
}

const YAHOO_SUMMARY: Block = Block::new(
    &["wasn't able to deliver the following message"],
    &["^--"],
    Take::With(summary_to),
)
.noise(4);

pub fn yahoo(ctx: &Ctx<'_>) -> Option<(&'static str, Vec<Found>)> {
    if !sender_domain(ctx, "mailer-daemon")?.starts_with("yahoo.") {
        return None;
    }
    block(ctx, "yahoo", &YAHOO).or_else(|| block(ctx, "yahoo", &YAHOO_SUMMARY))
}

/// Sina: `<address>:` lines, without any introduction (it is in Chinese, in whatever charset).
pub fn sina(ctx: &Ctx<'_>) -> Option<(&'static str, Vec<Found>)> {
    if sender_domain(ctx, "mailer-daemon")? != "sina.com" {
        return None;
    }
    let found: Vec<Found> = ctx
        .lines
        .iter()
        .take_while(|l| !l.lower.starts_with("---"))
        .flat_map(|l| super::block::angle_colon(&l.text))
        .map(|(a, d)| Found::new(a, &d, false))
        .collect();
    (!found.is_empty()).then_some(("sina", found))
}

/// AOL names its members by screen name only, one per line, indented.
pub fn aol(ctx: &Ctx<'_>) -> Option<(&'static str, Vec<Found>)> {
    let domain = ctx.from().rsplit_once('@')?.1.to_string();
    if domain != "aol.com" {
        return None;
    }
    let start = ctx.find("mail to the following recipients could not be delivered")?;
    let mut out = Vec::new();
    for line in ctx.lines.iter().skip(start + 1) {
        let t = line.text.trim();
        if t.is_empty() {
            if out.is_empty() {
                continue;
            }
            break;
        }
        if !line.text.starts_with([' ', '\t']) {
            // The sentence continues ("they are not accepting mail from ...").
            if out.is_empty() {
                continue;
            }
            break;
        }
        if t.contains(char::is_whitespace) {
            break;
        }
        let candidate = if t.contains('@') {
            t.to_string()
        } else {
            format!("{t}@aol.com")
        };
        if let Some(a) = address::clean(&candidate) {
            out.push(Found::new(a, "", false));
        }
    }
    (!out.is_empty()).then_some(("aol", out))
}

/// Yale's directory bounce names the user without a domain; its members had addresses at
/// both yale.edu and cs.yale.edu, so both are reported (a list only acts on its members).
pub fn yale(ctx: &Ctx<'_>) -> Option<(&'static str, Vec<Found>)> {
    let domain = sender_domain(ctx, "mailer-daemon")?;
    if !(domain == "yale.edu" || domain.ends_with(".yale.edu")) {
        return None;
    }
    let start = ctx.find("message not delivered to the following")?;
    let mut out = Vec::new();
    for line in ctx.lines.iter().skip(start + 1) {
        if line.lower.contains("error detail") {
            break;
        }
        let Some(name) = line.text.split_whitespace().next() else {
            continue;
        };
        if name.contains('@')
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
        {
            continue;
        }
        let diagnostic = line.text.trim()[name.len()..].trim();
        for domain in ["yale.edu", "cs.yale.edu"] {
            if let Some(a) = address::clean(&format!("{name}@{domain}")) {
                out.push(Found::new(a, diagnostic, false));
            }
        }
    }
    (!out.is_empty()).then_some(("yale", out))
}

/// LLNL's postmaster answers in prose: "The address to which your message was addressed,
/// user@..., did not exactly match an LLNL email address."
pub fn llnl(ctx: &Ctx<'_>) -> Option<(&'static str, Vec<Found>)> {
    if !ctx.from().ends_with("@llnl.gov") {
        return None;
    }
    let found: Vec<Found> = ctx
        .lines
        .iter()
        .filter_map(|l| word_after(l, "which your message was addressed,"))
        .map(|a| Found::new(a, "did not match an address", false))
        .collect();
    (!found.is_empty()).then_some(("llnl", found))
}

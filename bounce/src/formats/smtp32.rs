//! SMTP32 (Ipswitch IMail), identified by `X-Mailer: <SMTP32 v...>`: one sentence per failed
//! address that ends with the address, before "Original message follows.".

use super::{Ctx, Found};
use crate::address;

/// Openings of SMTP32's failure sentences.
const SENTENCES: &[&str] = &[
    "delivery failed",
    "undeliverable to",
    "unknown user",
    "invalid final delivery userid",
    "user mailbox exceeds allowed size",
    "user mailbox",
];

pub fn detect(ctx: &Ctx<'_>) -> Option<(&'static str, Vec<Found>)> {
    if !ctx.header("x-mailer").trim_start().starts_with("<SMTP32 v") {
        return None;
    }
    let mut out = Vec::new();
    for line in &ctx.lines {
        if line.lower.contains("original message follows") {
            break;
        }
        let lower = line.lower.split_whitespace().collect::<Vec<_>>().join(" ");
        if !SENTENCES.iter().any(|s| lower.starts_with(s)) {
            continue;
        }
        if let Some(a) = line.text.split_whitespace().last().and_then(address::clean) {
            out.push(Found::new(a, line.text.trim(), false));
        }
    }
    (!out.is_empty()).then_some(("smtp32", out))
}

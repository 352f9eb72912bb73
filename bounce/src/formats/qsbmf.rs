//! Postfix and qmail (QSBMF, <http://cr.yp.to/proto/qsbmf.txt>) plain-text bounces, and the
//! many qmail derivatives: an introduction, then one paragraph per failed recipient that
//! starts with `<address>:` in column 0, then a `---` line before the returned message.

use super::block::{Block, Take};
use super::{Ctx, Found, block};

/// Postfix's notification part (also "Keftamail", "BNS Postfix", SuSE's Postfix): the
/// address paragraphs come after several paragraphs of prose.
const POSTFIX: Block = Block::new(
    &[
        "this is the mail system at host",
        "this is the postfix program at host",
        "postfix program at host",
        "this is the keftamail program at host",
        "could not be delivered to one or more destinations",
    ],
    &["^--"],
    Take::AngleColon,
)
.noise(20);

pub fn postfix(ctx: &Ctx<'_>) -> Option<(&'static str, Vec<Found>)> {
    block(ctx, "postfix", &POSTFIX)
}

/// qmail-send's own introduction and the variants providers wrote over the years.
const QMAIL: Block = Block::new(
    &[
        "this is the qmail-send program at",
        "hi. the mta program at",
        "this is the mail delivery agent at",
        "unfortunately, your mail was not delivered",
        "your mail message to the following address",
        "we're sorry. there's a problem with the e-mail address",
        "check your send e-mail address",
        "wasn't able to deliver your message to the following address",
        "we were not able to deliver your message to the following address",
        "unable to deliver message to the following address(es)",
        "your message could not be delivered.",
    ],
    &["^--"],
    Take::AngleColon,
)
.noise(8);

pub fn qmail(ctx: &Ctx<'_>) -> Option<(&'static str, Vec<Found>)> {
    block(ctx, "qmail", &QMAIL)
}

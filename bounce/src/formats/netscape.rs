//! Netscape Messaging Server (and the caiwireless.net MTA, which borrowed its wording): the
//! failed addresses in angle brackets, each under its own heading.

use super::block::{Block, Take};
use super::{Ctx, Found, block};

const NETSCAPE: Block = Block::new(
    &[
        "the following recipients did not receive your message",
        "the following recipients did not receive this message",
    ],
    &[],
    Take::Alone,
)
.noise(1);

pub fn detect(ctx: &Ctx<'_>) -> Option<(&'static str, Vec<Found>)> {
    block(ctx, "netscape", &NETSCAPE)
}

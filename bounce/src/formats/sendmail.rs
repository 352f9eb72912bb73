//! Sendmail's plain-text bounces (the ones without a DSN part): a dashed heading, the
//! addresses one per line with "(expanded from: list-address)" for aliases, then the
//! session transcript.

use super::block::{Block, Take};
use super::{Ctx, Found, block};

const PERMANENT: Block = Block::new(
    &["the following addresses had permanent fatal errors"],
    &["transcript of session follows", "^-----"],
    Take::Alone,
);

const TRANSIENT: Block = Block::new(
    &["the following addresses had transient non-fatal errors"],
    &["transcript of session follows", "^-----"],
    Take::Alone,
)
.temporary();

pub fn detect(ctx: &Ctx<'_>) -> Option<(&'static str, Vec<Found>)> {
    block(ctx, "sendmail", &PERMANENT).or_else(|| block(ctx, "sendmail", &TRANSIENT))
}

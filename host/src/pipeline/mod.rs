//! The per-list plugin chains: which plugins run for a list, in its TOML order, with its
//! config and limits. Built once at start (and on reload); the hooks run through them.

mod chains;

pub use chains::{Chains, SetupError};

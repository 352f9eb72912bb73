//! The per-list plugin pipeline: chains of bound plugins per list (built at start), and the
//! processing of stored mail after intake's 250: posts through the `on-post` chain, commands
//! through `on-command`, confirmations and owner mail by the host (`requests`).

pub mod auth;
mod chains;
pub mod edits;
pub mod loops;
pub mod process;
pub mod requests;
mod worker;

pub use chains::{Chains, SetupError};
pub use worker::Processor;

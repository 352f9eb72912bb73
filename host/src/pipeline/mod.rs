//! The per-list plugin pipeline: chains of bound plugins per list (built at start), and the
//! processing of stored posts through them after intake's 250.

mod chains;
pub mod edits;
pub mod process;
mod worker;

pub use chains::{Chains, SetupError};
pub use worker::Processor;

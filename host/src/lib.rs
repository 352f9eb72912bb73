//! Roost: a clustered mailing-list server whose list behaviours are sandboxed WebAssembly
//! plugins. See ARCHITECTURE.md for the map of modules and how a post flows through them.

pub mod bounces;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod confirm;
pub mod counter;
pub mod delivery;
pub mod http;
pub mod message;
pub mod metrics;
pub mod pipeline;
pub mod plugins;
pub mod scheduler;
pub mod smtp;
pub mod store;
pub mod tokens;

/// `tokio::spawn` that keeps the caller's span: tasks started by `roost serve` log under
/// its `node{name}` span, so every line names the node, as do their own spans (SMTP
/// sessions, deliveries).
pub(crate) fn spawn<F>(task: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    use tracing::Instrument;
    tokio::spawn(task.in_current_span())
}

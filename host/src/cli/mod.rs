//! The `roost` command: wires config, store, plugins and (later) the servers together.
//! This is the binary's edge, so errors are `anyhow`; `exit_code` maps them to 0/1/2.

mod bounce;
mod held;
mod lists;
mod members;
mod nodes;
mod plugin;
mod queue;
mod report;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{cluster::ClusterError, config::ConfigError, pipeline::SetupError};

#[derive(Parser, Debug)]
#[command(
    name = "roost",
    version,
    about = "A clustered mailing-list server with sandboxed WebAssembly list plugins"
)]
pub struct Cli {
    /// The node's config file.
    #[arg(
        long,
        global = true,
        env = "ROOST_CONFIG",
        default_value = "roost.toml"
    )]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node until SIGINT or SIGTERM.
    Serve,
    /// Create or update the database schema, then exit.
    Migrate,
    /// Show the lists and their plugin chains.
    Lists,
    /// Show the nodes of the cluster: state, last heartbeat, version, host.
    Nodes,
    /// Messages processing could not decide (retrying or set aside, with the error), then
    /// what waits to be delivered, per destination: recipients, next attempt, last reply.
    Queue,
    /// Reports in the terminal.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// The hold queue: posts waiting for a moderator.
    #[command(subcommand)]
    Held(HeldCommand),
    /// A list's members.
    #[command(subcommand)]
    Members(MembersCommand),
    /// Bounces: parse one, or see what a list received.
    #[command(subcommand)]
    Bounce(BounceCommand),
}

#[derive(Subcommand, Debug)]
pub enum BounceCommand {
    /// Print the structured report of FILE (a raw message) as JSON; exit 0 when it is a
    /// bounce, 1 when it is not.
    Parse { file: PathBuf },
    /// The list's latest bounces, newest first (tab-separated), with what was decided.
    List {
        list: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum MembersCommand {
    /// Add members (delivery enabled).
    Add {
        list: String,
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Remove members.
    Remove {
        list: String,
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// One member per line: address, name, status, moderated, bounce score, last bounce
    /// decision (tab-separated).
    List { list: String },
    /// Import a CSV file of `address[,name]` rows (bad rows are reported and skipped).
    Import { list: String, file: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Server Sending Speed: attempted, succeeded and failed copies per hour, per node and
    /// for the cluster.
    Speed {
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
        /// How many hours back (the current one included).
        #[arg(long, default_value_t = 24)]
        hours: u32,
    },
    /// One post: recipients, delivered, deferred, bounced, unsubscribed, opens, clicks.
    Post { id: String },
}

#[derive(Subcommand, Debug)]
pub enum HeldCommand {
    /// One held post per line: id, received, sender, subject, reason (tab-separated).
    List {
        /// The list's name or address.
        list: String,
    },
    /// Approve a held post: it is delivered once, however many moderators approve it.
    Approve { list: String, id: String },
    /// Reject a held post; its author gets a notice.
    Reject {
        list: String,
        id: String,
        /// Told to the author.
        #[arg(long, default_value = "rejected by a moderator")]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Check that FILE is a roost:list/plugin component; print its name, version and hooks.
    Check {
        /// The component file (.wasm).
        file: PathBuf,
    },
}

/// A usage mistake (bad argument or file): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve::run(&cli.config).await,
        Command::Migrate => lists::migrate(&cli.config).await,
        Command::Lists => lists::show(&cli.config).await,
        Command::Nodes => nodes::show(&cli.config).await,
        Command::Queue => queue::show(&cli.config).await,
        Command::Report(ReportCommand::Speed { node, hours }) => {
            report::speed(&cli.config, node.as_deref(), hours).await
        }
        Command::Report(ReportCommand::Post { id }) => report::post(&cli.config, &id).await,
        Command::Plugin(PluginCommand::Check { file }) => plugin::check(&file).await,
        Command::Members(MembersCommand::Add { list, addresses }) => {
            members::add(&cli.config, &list, &addresses).await
        }
        Command::Members(MembersCommand::Remove { list, addresses }) => {
            members::remove(&cli.config, &list, &addresses).await
        }
        Command::Members(MembersCommand::List { list }) => members::list(&cli.config, &list).await,
        Command::Members(MembersCommand::Import { list, file }) => {
            members::import(&cli.config, &list, &file).await
        }
        Command::Bounce(BounceCommand::Parse { file }) => bounce::parse(&file),
        Command::Bounce(BounceCommand::List { list, limit }) => {
            bounce::list(&cli.config, &list, limit).await
        }
        Command::Held(HeldCommand::List { list }) => held::list(&cli.config, &list).await,
        Command::Held(HeldCommand::Approve { list, id }) => {
            held::approve(&cli.config, &list, &id).await
        }
        Command::Held(HeldCommand::Reject { list, id, reason }) => {
            held::reject(&cli.config, &list, &id, &reason).await
        }
    }
}

/// 2 for usage and config errors, 1 for failures at run time.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    let usage = e.chain().any(|c| {
        c.is::<ConfigError>()
            || c.is::<UsageError>()
            || c.is::<SetupError>()
            || c.is::<crate::delivery::SetupError>()
            || matches!(
                c.downcast_ref::<ClusterError>(),
                Some(ClusterError::NameInUse { .. })
            )
    });
    if usage { 2 } else { 1 }
}

/// The address of a list named by its name or address, or a usage error.
fn list_address(config: &crate::config::Config, list: &str) -> anyhow::Result<String> {
    config.list(list).map(|l| l.address.clone()).ok_or_else(|| {
        UsageError(format!(
            "no list `{list}` in {}",
            config.node.lists_dir.display()
        ))
        .into()
    })
}

/// Load the config or fail with exit code 2.
fn load_config(path: &std::path::Path) -> anyhow::Result<crate::config::Config> {
    Ok(crate::config::Config::load(path)?)
}

/// Open the database named by the config and bring its schema up to date.
async fn open_store(config: &crate::config::Config) -> anyhow::Result<crate::store::Store> {
    let url = &config.node.database_url;
    let store = crate::store::Store::connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", crate::store::redact(url)))?;
    store.migrate().await?;
    Ok(store)
}

fn runtime_for(config: &crate::config::Config) -> anyhow::Result<crate::plugins::Runtime> {
    Ok(crate::plugins::Runtime::new(
        crate::plugins::RuntimeOptions {
            instances: config.node.plugin_instances,
            max_memory: config.node.plugin_max_memory,
            cache_dir: Some(config.node.plugin_cache_dir.clone()),
            reuse_instances: config.node.plugin_reuse_instances,
        },
    )?)
}

//! Write Roost list plugins in Rust.
//!
//! A plugin is a type that implements [`Plugin`] (every hook has a default that continues
//! the chain) and is exported with [`export_plugin!`]. Its per-list TOML table is read into
//! the author's own serde struct with [`config`]. The crate builds for
//! `wasm32-unknown-unknown`; `make plugins` turns the result into a component.
//!
//! ```ignore
//! use roost_plugin_sdk::{Deserialize, Edit, HookResult, Message, Plugin, PostResult};
//!
//! #[derive(Deserialize)]
//! #[serde(crate = "roost_plugin_sdk::serde", deny_unknown_fields)]
//! struct Config { tag: String }
//!
//! struct Tagger;
//! impl Plugin for Tagger {
//!     fn on_post(_message: Message) -> HookResult<PostResult> {
//!         let cfg: Config = roost_plugin_sdk::config()?;
//!         Ok(PostResult::next().edit(Edit::SubjectPrefix(cfg.tag)))
//!     }
//! }
//! roost_plugin_sdk::export_plugin!(Tagger, config = Config, hooks = [on_post]);
//! ```

// The host-facing bindings are generated from `wit/`, the one thing the SDK and the host
// share. They are public so the export macro can reach them from the plugin's crate.
#[doc(hidden)]
#[allow(clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "roost_plugin_sdk::bindings",
    });
}

mod helpers;
mod macros;
pub mod mime;
#[doc(hidden)]
pub use macros::__private;

pub use bindings::roost::list::types::{
    BounceAction, BounceReason, BounceReport, BouncedRecipient, Command, CommandReply,
    DeliveryStatus, Edit, Envelope, Footer, Header, Hook, HttpRequest, HttpResponse, Manifest,
    Member, Message, PostResult, Recipient, Rejection, Schedule, ScheduledTask, Timestamp, Verdict,
};
pub use helpers::{NoConfig, config, parse_config, pattern_matches};

/// serde, re-exported so a plugin crate needs no dependency but this SDK. Derive with
/// `#[derive(roost_plugin_sdk::Deserialize)]` and `#[serde(crate = "roost_plugin_sdk::serde")]`.
pub use serde::{self, Deserialize};

/// The host's capabilities, each scoped to the list and plugin of the running hook.
pub mod host {
    pub use crate::bindings::roost::list::{
        clock, config, confirm, events, held, kv, log, members, notify, reports, stats,
    };

    /// The node's wall-clock time in milliseconds since the Unix epoch.
    pub fn now() -> crate::Timestamp {
        clock::now()
    }
}

/// What every hook returns: `Err(text)` fails the call cleanly, and the host applies the
/// list's failure policy and logs the text with the plugin and hook names.
pub type HookResult<T> = Result<T, String>;

/// A list behaviour. Implement the hooks you need; the rest continue the chain.
///
/// Hooks are associated functions. The host may run a call in a fresh instance or in one
/// that served an earlier call of the same list (it never reuses one that failed), and each
/// node has its own instances: keep nothing in memory between calls. State that must last
/// goes to [`host::kv`], which every node shares.
pub trait Plugin {
    /// A post arrived. Return a verdict and edits.
    fn on_post(message: Message) -> HookResult<PostResult> {
        let _ = message;
        Ok(PostResult::next())
    }

    /// One copy is about to go to one recipient (the per-recipient hot path).
    fn on_deliver(message: Message, recipient: Recipient) -> HookResult<Vec<Edit>> {
        let _ = (message, recipient);
        Ok(Vec::new())
    }

    /// The host parsed a bounce for the list.
    fn on_bounce(report: BounceReport) -> HookResult<BounceAction> {
        let _ = report;
        Ok(BounceAction::Continue)
    }

    /// A mail command reached `NAME-request@`.
    fn on_command(command: Command) -> HookResult<CommandReply> {
        let _ = command;
        Ok(CommandReply::Continue)
    }

    /// A request reached `/p/{list}/{plugin}/...`.
    fn on_http(request: HttpRequest) -> HookResult<HttpResponse> {
        let _ = request;
        Ok(HttpResponse::text(404, "not found"))
    }

    /// A scheduled occurrence is due.
    fn on_schedule(task: ScheduledTask) -> HookResult<()> {
        let _ = task;
        Ok(())
    }

    /// Schedules this plugin wants (`on_schedule` must be in its hooks).
    fn schedules() -> Vec<Schedule> {
        Vec::new()
    }
}

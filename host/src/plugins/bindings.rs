//! Host-side bindings generated from `wit/` (the one thing the host shares with the SDK).
//!
//! Imports are async (they reach the database) and trappable: a host failure traps the
//! call instead of handing the plugin a made-up answer.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::roost::list::types::Hook;

impl Hook {
    /// The hook's name as the WIT spells it, for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Hook::OnPost => "on-post",
            Hook::OnDeliver => "on-deliver",
            Hook::OnBounce => "on-bounce",
            Hook::OnCommand => "on-command",
            Hook::OnHttp => "on-http",
            Hook::OnSchedule => "on-schedule",
        }
    }
}

//! The export macro and logging macros.

/// Export a [`Plugin`](crate::Plugin) as the component's implementation of the
/// `roost:list/plugin` world.
///
/// `hooks` lists the hooks the plugin implements; the host calls only those (an unlisted
/// hook costs nothing, which matters for `on_deliver`, run once per recipient). `config`
/// names the serde type of the plugin's TOML table, checked when the node starts; leave it
/// out for a plugin without settings (then any key is an error).
///
/// ```ignore
/// roost_plugin_sdk::export_plugin!(MyPlugin, config = MyConfig, hooks = [on_post, on_http]);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty, hooks = [$($hook:ident),* $(,)?] $(,)?) => {
        $crate::export_plugin!($plugin, config = $crate::NoConfig, hooks = [$($hook),*]);
    };
    ($plugin:ty, config = $config:ty, hooks = [$($hook:ident),* $(,)?] $(,)?) => {
        #[doc(hidden)]
        pub struct __RoostPluginExport;

        impl $crate::bindings::Guest for __RoostPluginExport {
            fn manifest() -> $crate::Manifest {
                $crate::__private::install_panic_hook();
                $crate::Manifest {
                    name: ::std::string::String::from(env!("CARGO_PKG_NAME")),
                    version: ::std::string::String::from(env!("CARGO_PKG_VERSION")),
                    hooks: ::std::vec![$($crate::__hook!($hook)),*],
                    schedules: <$plugin as $crate::Plugin>::schedules(),
                }
            }
            fn check_config(raw: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__private::install_panic_hook();
                $crate::parse_config::<$config>(&raw).map(|_| ())
            }
            fn on_post(message: $crate::Message) -> $crate::HookResult<$crate::PostResult> {
                $crate::__private::install_panic_hook();
                <$plugin as $crate::Plugin>::on_post(message)
            }
            fn on_deliver(message: $crate::Message, recipient: $crate::Recipient) -> $crate::HookResult<::std::vec::Vec<$crate::Edit>> {
                $crate::__private::install_panic_hook();
                <$plugin as $crate::Plugin>::on_deliver(message, recipient)
            }
            fn on_bounce(report: $crate::BounceReport) -> $crate::HookResult<$crate::BounceAction> {
                $crate::__private::install_panic_hook();
                <$plugin as $crate::Plugin>::on_bounce(report)
            }
            fn on_command(command: $crate::Command) -> $crate::HookResult<$crate::CommandReply> {
                $crate::__private::install_panic_hook();
                <$plugin as $crate::Plugin>::on_command(command)
            }
            fn on_http(request: $crate::HttpRequest) -> $crate::HookResult<$crate::HttpResponse> {
                $crate::__private::install_panic_hook();
                <$plugin as $crate::Plugin>::on_http(request)
            }
            fn on_schedule(task: $crate::ScheduledTask) -> $crate::HookResult<()> {
                $crate::__private::install_panic_hook();
                <$plugin as $crate::Plugin>::on_schedule(task)
            }
        }

        $crate::bindings::__export_plugin_world!(__RoostPluginExport with_types_in $crate::bindings);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __hook {
    (on_post) => {
        $crate::Hook::OnPost
    };
    (on_deliver) => {
        $crate::Hook::OnDeliver
    };
    (on_bounce) => {
        $crate::Hook::OnBounce
    };
    (on_command) => {
        $crate::Hook::OnCommand
    };
    (on_http) => {
        $crate::Hook::OnHttp
    };
    (on_schedule) => {
        $crate::Hook::OnSchedule
    };
    ($other:ident) => {
        compile_error!(concat!(
            "unknown hook `",
            stringify!($other),
            "`; expected on_post, on_deliver, on_bounce, on_command, on_http or on_schedule"
        ))
    };
}

/// Log through the host at a level: `roost_plugin_sdk::log!(Info, "held {}", id)`.
/// The host adds the list, plugin and hook to every line.
#[macro_export]
macro_rules! log {
    ($level:ident, $($arg:tt)+) => {
        $crate::host::log::write($crate::host::log::Level::$level, &::std::format!($($arg)+))
    };
}

#[doc(hidden)]
pub mod __private {
    use std::sync::Once;

    /// A panic in a guest aborts with an `unreachable` trap and its message is lost; send the
    /// message to the host's log first so the operator sees why.
    pub fn install_panic_hook() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                crate::host::log::write(
                    crate::host::log::Level::Error,
                    &format!("plugin panicked: {info}"),
                );
            }));
        });
    }
}

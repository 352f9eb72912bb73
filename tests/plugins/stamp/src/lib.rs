//! stamp: an `on-deliver` plugin that edits every copy (adds `X-Roost-Recipient`), for the
//! fan-out benchmark's per-recipient cost and the tests of per-recipient edits.

use roost_plugin_sdk::{Edit, Header, HookResult, Message, Plugin, Recipient};

struct Stamp;

impl Plugin for Stamp {
    fn on_deliver(_message: Message, recipient: Recipient) -> HookResult<Vec<Edit>> {
        Ok(vec![Edit::AddHeader(Header::new(
            "X-Roost-Recipient",
            recipient.address,
        ))])
    }
}

roost_plugin_sdk::export_plugin!(Stamp, hooks = [on_deliver]);

//! subject-tag: put a tag such as `[announce]` before the subject of every post.
//!
//! ```toml
//! [[plugin]]
//! use = "subject-tag"
//! tag = "[announce]"   # default: "[list-name]", from the list's address
//! ```

use roost_plugin_sdk::{Deserialize, Edit, HookResult, Message, Plugin, PostResult};

// The SDK re-exports serde, so this crate depends on nothing else.
#[derive(Deserialize, Default)]
#[serde(crate = "roost_plugin_sdk::serde", deny_unknown_fields)]
struct Config {
    /// The tag to put before the subject.
    tag: Option<String>,
}

struct SubjectTag;

impl Plugin for SubjectTag {
    fn on_post(message: Message) -> HookResult<PostResult> {
        let config: Config = roost_plugin_sdk::config()?;
        let tag = match config.tag {
            Some(tag) if !tag.trim().is_empty() => tag,
            Some(_) => return Err("tag must not be empty".into()),
            None => default_tag(&message.list_address),
        };
        // The host leaves a subject that already carries the tag alone (replies).
        Ok(PostResult::next().edit(Edit::SubjectPrefix(format!("{tag} "))))
    }
}

/// `[name]` for a list `name@domain`.
fn default_tag(list: &str) -> String {
    let name = list.split('@').next().unwrap_or(list);
    format!("[{name}]")
}

roost_plugin_sdk::export_plugin!(SubjectTag, config = Config, hooks = [on_post]);

#[cfg(test)]
mod tests {
    #[test]
    fn default_tag_is_the_list_name() {
        assert_eq!(
            super::default_tag("announce@lists.example.org"),
            "[announce]"
        );
    }
}

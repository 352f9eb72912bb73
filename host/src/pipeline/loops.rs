//! Posts that must not go out by themselves: one that came round through this list already
//! (its own `List-Id` or `X-Loop`, or more trace hops than any honest path has), or one a
//! program sent (RFC 3834 `Auto-Submitted`). Such a post is held for the moderators before
//! any plugin runs, so two lists subscribed to each other pass a post on once each and then
//! stop, and an auto-responder subscribed to a list cannot answer it forever.

use crate::message;

/// More `Received:` fields than this and the post is taken to be looping. Honest mail
/// crosses a handful of hops; RFC 5321 §6.3 suggests a limit of at least 100 for relays,
/// which is for MTAs, where a list that holds the post loses nothing.
pub const MAX_HOPS: usize = 25;

/// Why this post must be held, or `None` when it may go to the plugins.
/// `list` is the list's address (its `List-Id` is the address with `.` for `@`).
pub fn hold_reason(list: &str, raw: &[u8]) -> Option<String> {
    let own_id = format!("<{}>", list.replacen('@', ".", 1));
    let mut hops = 0;
    for f in message::fields(raw) {
        let name = f.name.to_ascii_lowercase();
        match name.as_str() {
            "received" => hops += 1,
            "list-id" if contains_ignore_case(&f.value, &own_id) => {
                return Some("mail loop: the post already carries this list's List-Id".into());
            }
            "x-loop"
                if f.value
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .eq_ignore_ascii_case(list) =>
            {
                return Some("mail loop: X-Loop names this list".into());
            }
            "auto-submitted" if !f.value.trim().eq_ignore_ascii_case("no") => {
                let value: String = f
                    .value
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(40)
                    .collect();
                return Some(format!("sent automatically (Auto-Submitted: {value})"));
            }
            _ => {}
        }
    }
    (hops > MAX_HOPS).then(|| format!("mail loop: {hops} Received: hops (at most {MAX_HOPS})"))
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack.len() >= needle.len()
        && haystack
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(head: &str) -> Option<String> {
        hold_reason(
            "news@lists.example.org",
            format!("{head}Subject: s\r\n\r\nbody\r\n").as_bytes(),
        )
    }

    #[test]
    fn own_list_fields_and_automatic_mail_are_held() {
        assert_eq!(held("From: a@example.com\r\n"), None);
        assert_eq!(held("List-Id: Other <other.lists.example.org>\r\n"), None);
        assert!(held("List-Id: \"News\" <NEWS.lists.example.org>\r\n").is_some());
        assert!(held("X-Loop: news@lists.example.org\r\n").is_some());
        assert_eq!(held("X-Loop: other@lists.example.org\r\n"), None);
        assert_eq!(held("Auto-Submitted: no\r\n"), None);
        assert_eq!(
            held("Auto-Submitted: auto-replied\r\n").as_deref(),
            Some("sent automatically (Auto-Submitted: auto-replied)")
        );
        let hops = "Received: from a by b\r\n".repeat(MAX_HOPS);
        assert_eq!(held(&hops), None);
        let hops = "Received: from a by b\r\n".repeat(MAX_HOPS + 1);
        assert!(held(&hops).unwrap().contains("26 Received: hops"));
    }
}

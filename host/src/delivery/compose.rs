//! What every copy of a post carries (README, "How mail goes out"): the plugins' edits,
//! the RFC 2369/2919/8058 list fields, and a rewritten `From:` when the author's domain
//! would make a list copy fail DMARC. Done once per post; the result is the template that
//! `template::Template` fills per recipient. Notices get their own small message here too.

use mail_parser::MessageParser;

use crate::{config::ListConfig, message, pipeline::edits, store::PendingNotice};

/// Fields a copy must carry only in the list's own form: any the post arrived with (from
/// another list, or forged) are removed first.
const LIST_FIELDS: &[&str] = &[
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Post",
    "List-Help",
    "List-Owner",
    "List-Subscribe",
    "List-Archive",
    "Precedence",
    "Return-Path",
];

/// The author of a post: display name and address from `From:`.
pub fn author(raw: &[u8]) -> Option<(Option<String>, String)> {
    let parsed = MessageParser::new().parse_headers(raw)?;
    let addr = parsed.from()?.first()?;
    let address = addr.address()?.trim().to_string();
    address
        .contains('@')
        .then(|| (addr.name().map(|n| n.trim().to_string()), address))
}

/// The post as every member gets it, before per-recipient filling: the stored edits applied,
/// the list fields added, and `From:` rewritten when `rewrite_from` (the author's DMARC
/// policy is quarantine or reject). Returns the bytes and the tracked links. `None` when
/// the stored edits cannot be read.
pub fn post(
    list: &ListConfig,
    raw: &[u8],
    stored_edits: Option<&str>,
    rewrite_from: bool,
) -> Option<(Vec<u8>, Vec<String>)> {
    let (mut out, links) = edits::prepare(raw, stored_edits)?;
    message::ensure_blank_line(&mut out);
    for name in LIST_FIELDS {
        message::remove_fields(&mut out, name);
    }
    if rewrite_from && let Some((name, address)) = author(&out) {
        let shown = name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| address.split('@').next().unwrap_or_default().to_string());
        message::set_field(
            &mut out,
            "From",
            &format!(
                "{} <{}>",
                display_name(&format!("{shown} via {}", list.name)),
                list.address
            ),
        );
        let reply_to = message::header(&out, "reply-to");
        match reply_to {
            Some(r) if r.to_lowercase().contains(&address.to_lowercase()) => {}
            Some(r) => message::set_field(&mut out, "Reply-To", &format!("{r}, <{address}>")),
            None => message::append_field(&mut out, "Reply-To", &format!("<{address}>")),
        }
    }
    let (local, domain) = (list.local_part(), list.domain());
    let fields = [
        (
            "List-Id",
            format!("{} <{local}.{domain}>", display_name(&list.name)),
        ),
        (
            "List-Unsubscribe",
            format!(
                "<{{{{roost:unsubscribe-url}}}}>, <mailto:{local}-request@{domain}?subject=unsubscribe>"
            ),
        ),
        (
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click".to_string(),
        ),
        ("List-Post", format!("<mailto:{}>", list.address)),
        (
            "List-Help",
            format!("<mailto:{local}-request@{domain}?subject=help>"),
        ),
        ("List-Owner", format!("<mailto:{local}-owner@{domain}>")),
        (
            "List-Subscribe",
            format!("<mailto:{local}-request@{domain}?subject=subscribe>"),
        ),
        ("Precedence", "list".to_string()),
        // Kept by other lists (unlike List-Id, which each replaces): a copy that comes
        // back through a list subscribed to this one is held (`pipeline::loops`).
        ("X-Loop", list.address.clone()),
    ];
    for (name, value) in &fields {
        message::append_field(&mut out, name, value);
    }
    if let Some(archive) = &list.archive {
        message::append_field(&mut out, "List-Archive", &format!("<{archive}>"));
    }
    Some((out, links))
}

/// A notice from the list (to its owners or one address) as a message.
pub fn notice(
    list: &ListConfig,
    hostname: &str,
    id: &str,
    n: &PendingNotice,
    to: &[String],
    now_ms: i64,
) -> Vec<u8> {
    let (local, domain) = (list.local_part(), list.domain());
    let mut out = Vec::with_capacity(n.body.len() + 512);
    let subject = n.subject.replace(['\r', '\n'], " ");
    let lines = [
        (
            "From",
            format!(
                "{} <{local}-owner@{domain}>",
                display_name(&format!("{} owners", list.name))
            ),
        ),
        ("To", to.join(", ")),
        ("Subject", encode_word(&subject)),
        ("Date", message::rfc5322_date(now_ms)),
        ("Message-ID", format!("<{id}@{hostname}>")),
        ("MIME-Version", "1.0".to_string()),
        ("Content-Type", "text/plain; charset=utf-8".to_string()),
        ("Content-Transfer-Encoding", "8bit".to_string()),
        (
            "List-Id",
            format!("{} <{local}.{domain}>", display_name(&list.name)),
        ),
        ("Auto-Submitted", "auto-generated".to_string()),
        ("Precedence", "list".to_string()),
    ];
    for (name, value) in &lines {
        out.extend_from_slice(&message::field_line(name, value));
    }
    if let Some(reply_to) = &n.reply_to {
        out.extend_from_slice(&message::field_line("Reply-To", reply_to));
    }
    out.extend_from_slice(b"\r\n");
    for line in n.body.lines() {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A display name as a quoted string, or an RFC 2047 encoded word when it is not ASCII.
pub fn display_name(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).collect();
    if clean.is_ascii() {
        format!("\"{}\"", clean.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        encode_word(&clean)
    }
}

/// Text for an unstructured field: as is when ASCII, else one RFC 2047 base64 word.
fn encode_word(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    use base64_engine::encode;
    format!("=?utf-8?b?{}?=", encode(text.as_bytes()))
}

/// Plain base64 (RFC 4648) for encoded words.
mod base64_engine {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FailurePolicy, PluginLimits};

    fn list() -> ListConfig {
        ListConfig {
            file: "lists/news.toml".into(),
            address: "news@lists.example.org".into(),
            name: "News".into(),
            owners: vec!["boss@example.org".into()],
            on_plugin_error: FailurePolicy::Hold,
            limits: PluginLimits::default(),
            plugins: vec![],
            archive: Some("https://archive.example.org/news".into()),
            dkim: None,
        }
    }

    const POST: &[u8] = b"From: \"Alice A.\" <alice@example.com>\r\nList-Id: <forged>\r\n\
        Subject: Hi\r\n\r\nBody\r\n";

    #[test]
    fn copies_carry_the_list_fields_once() {
        let (out, _) = post(&list(), POST, None, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("List-Id:").count(), 1, "{text}");
        assert!(text.contains("List-Id: \"News\" <news.lists.example.org>\r\n"));
        assert!(text.contains(
            "List-Unsubscribe: <{{roost:unsubscribe-url}}>, \
             <mailto:news-request@lists.example.org?subject=unsubscribe>\r\n"
        ));
        assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
        assert!(text.contains("List-Archive: <https://archive.example.org/news>\r\n"));
        assert!(text.contains("From: \"Alice A.\" <alice@example.com>\r\n"));
        assert!(text.ends_with("\r\n\r\nBody\r\n"));
    }

    #[test]
    fn strict_dmarc_rewrites_from_and_keeps_the_author_in_reply_to() {
        let (out, _) = post(&list(), POST, None, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("From: \"Alice A. via News\" <news@lists.example.org>\r\n"),
            "{text}"
        );
        assert!(text.contains("Reply-To: <alice@example.com>\r\n"), "{text}");
        assert_eq!(author(text.as_bytes()).unwrap().1, "news@lists.example.org");
    }

    #[test]
    fn names_are_quoted_or_encoded() {
        assert_eq!(display_name("A \"B\""), "\"A \\\"B\\\"\"");
        assert_eq!(display_name("Zoë"), "=?utf-8?b?Wm/Dqw==?=");
    }
}

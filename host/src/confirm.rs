//! Confirmation tokens: what a `NAME-confirm+TOKEN@` reply or a `/c/{token}` link decides.
//!
//! Two kinds, both signed (`tokens::Purpose::Confirm`): a moderator's decision on a held post
//! (the post's id and approve or reject), and a pending confirmation row (a subscription or
//! an unsubscribe). Carrying them out is a conditional update in the database either way,
//! so the first answer acts and every later one (another node, the mail after the link)
//! changes nothing.

use crate::{
    store::{Confirmed, Store, StoreError},
    tokens::{Purpose, TokenKey},
};

/// How this cluster's confirmation tokens are made into a mail address and a link.
#[derive(Debug, Clone)]
pub struct Links {
    pub keys: TokenKey,
    /// `[http] public_url`, without a trailing `/`.
    pub public_url: String,
}

impl Links {
    /// `NAME-confirm+TOKEN@DOMAIN` for the list `NAME@DOMAIN`.
    pub fn address(&self, list: &str, token: &str) -> String {
        match list.split_once('@') {
            Some((name, domain)) => format!("{name}-confirm+{token}@{domain}"),
            None => format!("{list}-confirm+{token}"),
        }
    }

    pub fn url(&self, token: &str) -> String {
        format!("{}/c/{token}", self.public_url)
    }
}

const HELD: u64 = 1;
const ROW: u64 = 2;
const HELD_REPLY: u64 = 3;

/// What a valid token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A moderator's decision on a held post.
    Held { post: String, approve: bool },
    /// A pending confirmation row.
    Row(i64),
    /// The `Reply-To:` of a held-post notice: the reply itself says approve or reject
    /// ([`reply_decision`]), so answering the notice never decides by accident.
    HeldReply { post: String },
}

/// The token for approving (or rejecting) a held post.
pub fn held_token(keys: &TokenKey, post_id: &str, approve: bool) -> Option<String> {
    let (hi, lo) = uuid::Uuid::try_parse(post_id).ok()?.as_u64_pair();
    Some(keys.sign(Purpose::Confirm, &[HELD, hi, lo, u64::from(approve)]))
}

/// The token of a held-post notice's `Reply-To:` address.
pub fn held_reply_token(keys: &TokenKey, post_id: &str) -> Option<String> {
    let (hi, lo) = uuid::Uuid::try_parse(post_id).ok()?.as_u64_pair();
    Some(keys.sign(Purpose::Confirm, &[HELD_REPLY, hi, lo]))
}

/// What a moderator's reply to a held-post notice says: `Some(true)` approve, `Some(false)`
/// reject, `None` neither or both. The words are looked for at the start of the reply's own
/// lines, in its first text part decoded (base64, quoted-printable, or HTML made text), so
/// top- and bottom-posted replies both work. The notice is not read: quoted lines
/// (starting with `>`) are skipped, and reading stops where a client copies the notice
/// unquoted under a separator (Outlook's `-----Original Message-----` or rule of
/// underscores), since the notice quotes the post's subject, which its author chose.
pub fn reply_decision(raw: &[u8]) -> Option<bool> {
    let body = mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&raw[crate::message::body_start(raw)..]).into_owned()
        });
    let (mut approve, mut reject) = (false, false);
    for line in body.lines().take(400) {
        let line = line.trim_start();
        if line.starts_with("-----Original Message")
            || line.starts_with("________________")
            || line.starts_with("-----Ursprüngliche Nachricht")
        {
            break;
        }
        if line.starts_with('>') || line.starts_with("&gt;") {
            continue;
        }
        let mut text = String::new();
        let mut in_tag = false;
        for c in line.chars() {
            match c {
                '<' => in_tag = true,
                '>' if in_tag => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        let word: String = text
            .trim()
            .chars()
            .take_while(|c| c.is_alphabetic())
            .collect::<String>()
            .to_lowercase();
        match word.as_str() {
            "approve" | "approved" => approve = true,
            "reject" | "rejected" => reject = true,
            _ => {}
        }
    }
    match (approve, reject) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

pub fn row_token(keys: &TokenKey, id: i64) -> String {
    keys.sign(Purpose::Confirm, &[ROW, u64::try_from(id).unwrap_or(0)])
}

pub fn parse(keys: &TokenKey, token: &str) -> Option<Token> {
    match keys.verify(Purpose::Confirm, token)?.as_slice() {
        [HELD, hi, lo, approve] if *approve <= 1 => Some(Token::Held {
            post: uuid::Uuid::from_u64_pair(*hi, *lo).simple().to_string(),
            approve: *approve == 1,
        }),
        [ROW, id] => Some(Token::Row(i64::try_from(*id).ok()?)),
        [HELD_REPLY, hi, lo] => Some(Token::HeldReply {
            post: uuid::Uuid::from_u64_pair(*hi, *lo).simple().to_string(),
        }),
        _ => None,
    }
}

/// What happened when a token was used, in words for the page or the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(String),
    /// Nothing changed (decided before, expired, gone); the reason in words.
    Nothing(String),
}

/// Carry out what `token` stands for. `Ok(None)`: not a valid token.
pub async fn execute(
    store: &Store,
    keys: &TokenKey,
    token: &str,
) -> Result<Option<Outcome>, StoreError> {
    match parse(keys, token) {
        Some(t) => execute_token(store, t).await,
        None => Ok(None),
    }
}

/// Carry out a parsed token. A [`Token::HeldReply`] decides nothing by itself (its reply
/// says what to do): `Ok(None)`.
pub async fn execute_token(store: &Store, t: Token) -> Result<Option<Outcome>, StoreError> {
    Ok(Some(match t {
        Token::HeldReply { .. } => return Ok(None),
        Token::Held { post, approve } => {
            let Ok(m) = store.message(&post).await else {
                return Ok(None);
            };
            let changed = if approve {
                store.approve_held(&m.list, &post).await?
            } else {
                store
                    .reject_held(&m.list, &post, "rejected by a moderator")
                    .await?
            };
            match (changed, approve) {
                (true, true) => {
                    crate::metrics::global().add(crate::metrics::Counter::PostsAccepted, 1);
                    Outcome::Done(format!(
                        "The post {post} to {} is approved and will be sent.",
                        m.list
                    ))
                }
                (true, false) => {
                    crate::metrics::global().add(crate::metrics::Counter::PostsRejected, 1);
                    Outcome::Done(format!(
                        "The post {post} to {} is rejected; its author is told.",
                        m.list
                    ))
                }
                (false, _) => Outcome::Nothing(format!(
                    "The post {post} to {} was already decided: nothing changed.",
                    m.list
                )),
            }
        }
        Token::Row(id) => match store.confirm(id).await? {
            Confirmed::Done { list, action } => Outcome::Done(match action {
                crate::store::Action::Subscribe { address, .. } => {
                    format!("{address} is now subscribed to {list}.")
                }
                crate::store::Action::Unsubscribe { address } => {
                    format!("{address} is unsubscribed from {list}.")
                }
            }),
            Confirmed::AlreadyDone => {
                Outcome::Nothing("This was confirmed before: nothing changed.".into())
            }
            Confirmed::Expired => Outcome::Nothing(
                "This confirmation has expired: nothing changed. Please ask again.".into(),
            ),
            Confirmed::Unknown => return Ok(None),
        },
    }))
}

/// What a token would do, for the page that asks before acting. `None`: not valid.
pub async fn describe(store: &Store, keys: &TokenKey, token: &str) -> Option<String> {
    match parse(keys, token)? {
        Token::HeldReply { .. } => None,
        Token::Held { post, approve } => {
            let m = store.message(&post).await.ok()?;
            let subject = crate::message::header(&m.raw, "subject").unwrap_or_default();
            Some(format!(
                "{} the post \"{subject}\" from {} to {}{}",
                if approve { "Approve" } else { "Reject" },
                if m.mail_from.is_empty() {
                    "<>"
                } else {
                    &m.mail_from
                },
                m.list,
                if m.state == "held" {
                    ""
                } else {
                    " (already decided)"
                }
            ))
        }
        Token::Row(id) => {
            let p = store.pending_confirmation(id).await.ok()??;
            let what = match &p.action {
                crate::store::Action::Subscribe { address, .. } => {
                    format!("Subscribe {address} to {}", p.list)
                }
                crate::store::Action::Unsubscribe { address } => {
                    format!("Unsubscribe {address} from {}", p.list)
                }
            };
            Some(if p.done {
                format!("{what} (already confirmed)")
            } else if p.expired {
                format!("{what} (expired)")
            } else {
                what
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_tokens_carry_the_post_and_the_decision() {
        let keys = TokenKey::new(b"k");
        let id = uuid::Uuid::now_v7().simple().to_string();
        let yes = held_token(&keys, &id, true).unwrap();
        let no = held_token(&keys, &id, false).unwrap();
        assert_ne!(yes, no);
        assert!(yes.len() <= 50, "{yes}");
        assert_eq!(
            parse(&keys, &yes),
            Some(Token::Held {
                post: id.clone(),
                approve: true
            })
        );
        assert_eq!(parse(&keys, &row_token(&keys, 42)), Some(Token::Row(42)));
        // An unsubscribe token is not a confirmation token.
        assert_eq!(
            parse(&keys, &keys.sign(Purpose::Unsubscribe, &[2, 42])),
            None
        );
        assert_eq!(held_token(&keys, "not-a-uuid", true), None);
        assert_eq!(
            parse(&keys, &held_reply_token(&keys, &id).unwrap()),
            Some(Token::HeldReply { post: id.clone() })
        );
    }

    #[test]
    fn replies_say_approve_or_reject_in_their_own_lines() {
        let mail = |body: &str| format!("Subject: Re: Held\r\n\r\n{body}").into_bytes();
        assert_eq!(
            reply_decision(&mail("Approve\r\n\r\n> To reject it, reply\r\n")),
            Some(true)
        );
        assert_eq!(
            reply_decision(&mail(
                "> A post is held\r\n> approve\r\n\r\nreject, spam.\r\n"
            )),
            Some(false)
        );
        assert_eq!(reply_decision(&mail("<div>Reject</div>\r\n")), Some(false));
        assert_eq!(
            reply_decision(&mail("On Tue, the list wrote:\r\n> Approve?\r\n")),
            None
        );
        assert_eq!(reply_decision(&mail("approve\r\nreject\r\n")), None);
        assert_eq!(reply_decision(&mail("")), None);
        // Outlook copies the notice unquoted below a separator; its lines are not read.
        assert_eq!(
            reply_decision(&mail(
                "Reject\r\n\r\n-----Original Message-----\r\nSubject: x\r\napprove me\r\n"
            )),
            Some(false)
        );
        // Base64 and quoted-printable text parts are decoded first.
        let b64 = b"Subject: Re: Held\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nUmVqZWN0LCBzcGFtLg0K\r\n";
        assert_eq!(reply_decision(b64), Some(false));
        let qp = b"Subject: Re: Held\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=41pprove=0D=0A\r\n";
        assert_eq!(reply_decision(qp), Some(true));
    }
}

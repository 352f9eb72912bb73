//! Mail to a list's other addresses: commands to `NAME-request@` (answered by the list's
//! `on-command` plugins), answers to `NAME-confirm+TOKEN@` (carried out by the host), and
//! mail to `NAME-owner@` (sent on to the owners as it came).

use crate::{
    config::ListConfig,
    confirm::{self, Links},
    message,
    plugins::{Hook, Runtime, wit},
    store::{Decision, Notice, NoticeTarget, Store, StoredMessage},
};

use super::process;

/// Lines of a command mail's body looked at for a command when the subject has none.
const BODY_LINES: usize = 5;

/// The address to answer, or `None` when answering could loop or bother nobody: a null
/// sender, one of the list's own addresses, or mail that says it was sent automatically
/// (RFC 3834 `Auto-Submitted`, `Precedence: bulk|junk|list`).
pub fn reply_to(list: &ListConfig, m: &StoredMessage) -> Option<String> {
    let sender = m.mail_from.trim();
    let lower = sender.to_ascii_lowercase();
    let own =
        lower.ends_with(&format!("@{}", list.domain())) && lower.starts_with(list.local_part());
    (!sender.is_empty() && !own && !automatic(m)).then(|| sender.to_string())
}

/// Mail sent by a program, not a person (RFC 3834 `Auto-Submitted`, `Precedence:
/// bulk|junk|list`): never answered, and never taken as a confirmation.
fn automatic(m: &StoredMessage) -> bool {
    let auto = message::header(&m.raw, "auto-submitted")
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("no"));
    let bulk = message::header(&m.raw, "precedence").is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "bulk" | "junk" | "list"
        )
    });
    auto || bulk
}

/// The command of a request mail: the subject (without `Re:`), or else the first non-blank
/// line of the body among the first few. (verb lower-cased, arguments)
pub fn parse_command(raw: &[u8]) -> Option<(String, Vec<String>)> {
    let subject = message::header(raw, "subject").unwrap_or_default();
    let mut subject = subject.trim();
    while let Some(rest) = subject
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("re:"))
        .map(|_| subject[3..].trim())
    {
        subject = rest;
    }
    let body = String::from_utf8_lossy(&raw[message::body_start(raw)..]).into_owned();
    let line = if subject.is_empty() {
        body.lines()
            .take(BODY_LINES)
            .map(str::trim)
            .find(|l| !l.is_empty())?
            .to_string()
    } else {
        subject.to_string()
    };
    let mut words = line.split_whitespace();
    let verb = words.next()?.to_ascii_lowercase();
    Some((verb, words.map(str::to_string).collect()))
}

/// A request to `NAME-request@`: the first `on-command` plugin that answers decides; the
/// answer goes back to the sender.
pub async fn command(
    runtime: &Runtime,
    chain: &[crate::plugins::Bound],
    list: &ListConfig,
    m: &StoredMessage,
    fallback: Option<(&Store, &Links)>,
) -> Decision {
    let Some(sender) = reply_to(list, m) else {
        return done(None);
    };
    let Some((verb, args)) = parse_command(&m.raw) else {
        return done(reply(
            sender,
            list,
            "Your mail had no command. Send `help` for the list of commands.".into(),
            None,
        ));
    };
    let command = wit::Command {
        sender: sender.clone(),
        verb: verb.clone(),
        args,
        message: process::to_wit(m),
    };
    let mut answer = None;
    let mut any = false;
    for bound in chain
        .iter()
        .filter(|b| b.plugin.implements(Hook::OnCommand))
    {
        any = true;
        match runtime.on_command(bound, &command).await {
            Ok(wit::CommandReply::Continue) => continue,
            Ok(wit::CommandReply::Reply(text)) => {
                answer = Some(text);
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "command failed");
                answer = Some(format!(
                    "The list could not carry out `{verb}` just now. Please try again later, \
                     or write to {}-owner@{}.",
                    list.local_part(),
                    list.domain()
                ));
                break;
            }
        }
    }
    // The `mailto:` of every copy's List-Unsubscribe must work even on a list without a
    // plugin for it: the host asks the member to confirm, as for any unsubscribe by mail.
    if answer.is_none()
        && matches!(verb.as_str(), "unsubscribe" | "leave" | "signoff")
        && let Some((store, links)) = fallback
    {
        answer = Some(match unsubscribe(store, links, list, &sender).await {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(error = %e, "cannot queue an unsubscribe confirmation");
                "The list could not take your request just now. Please try again later.".into()
            }
        });
    }
    let text = match answer {
        Some(text) if text.trim().is_empty() => return done(None),
        Some(text) => text,
        None if any => format!(
            "`{verb}` is not a command of {}. Send `help` for the list of commands.",
            list.address
        ),
        None => format!(
            "{} takes no commands by mail. Write to {}-owner@{} instead.",
            list.address,
            list.local_part(),
            list.domain()
        ),
    };
    done(reply(sender, list, text, fallback.map(|(_, links)| links)))
}

/// Ask `sender` to confirm leaving the list (a goodbye is queued with the confirmation).
async fn unsubscribe(
    store: &Store,
    links: &Links,
    list: &ListConfig,
    sender: &str,
) -> Result<String, crate::store::StoreError> {
    if store.member(&list.address, sender).await?.is_none() {
        return Ok(format!("{sender} is not subscribed to {}.", list.address));
    }
    let goodbye = Notice {
        to: NoticeTarget::Address(sender.to_string()),
        subject: format!("You have left {}", list.address),
        body: format!("{sender} gets no more posts from {}.\n", list.address),
        reply_to: None,
    };
    let action = crate::store::Action::Unsubscribe {
        address: sender.to_string(),
    };
    let id = store
        .create_confirmation(&list.address, &action, Some(&goodbye), 7 * 86_400_000)
        .await?;
    let token = confirm::row_token(&links.keys, id);
    Ok(format!(
        "To confirm that {sender} leaves {}, reply to this mail, or write to:\n  {}\nor open:\n  {}\n",
        list.address,
        links.address(&list.address, &token),
        links.url(&token)
    ))
}

/// An answer to `NAME-confirm+TOKEN@`: carried out by the host (once, however often it is
/// answered). Moderators hear what their answer did; a subscriber whose confirmation
/// worked gets the list's welcome instead (queued by the confirmation itself).
pub async fn confirmation(
    store: &Store,
    links: Option<&Links>,
    list: &ListConfig,
    m: &StoredMessage,
) -> Result<Decision, crate::store::StoreError> {
    let to = reply_to(list, m);
    let (Some(links), Some(token)) = (links, m.token.as_deref()) else {
        return Ok(done(None));
    };
    // An auto-reply (a vacation notice answering the notice) confirms nothing.
    if automatic(m) {
        return Ok(done(None));
    }
    let parsed = match confirm::parse(&links.keys, token) {
        // A reply to a held-post notice: its words decide.
        Some(confirm::Token::HeldReply { post }) => match confirm::reply_decision(&m.raw) {
            Some(approve) => Some(confirm::Token::Held { post, approve }),
            None => {
                // The address in the text makes this answer's Reply-To the same address,
                // so the moderator can simply reply again.
                let text = format!(
                    "Your answer did not say what to do with the held post: reply with the \
                     word approve or reject on a line of its own (to {}).",
                    links.address(&list.address, token)
                );
                return Ok(done(to.and_then(|to| reply(to, list, text, Some(links)))));
            }
        },
        other => other,
    };
    let outcome = match parsed.clone() {
        Some(t) => confirm::execute_token(store, t).await?,
        None => None,
    };
    let text = match (outcome, parsed) {
        (None, _) => Some("This confirmation is not valid: nothing was changed.".to_string()),
        (Some(confirm::Outcome::Done(text)), Some(confirm::Token::Held { .. })) => Some(text),
        (Some(confirm::Outcome::Done(_)), _) => None,
        (Some(confirm::Outcome::Nothing(text)), _) => Some(text),
    };
    Ok(done(
        to.zip(text)
            .and_then(|(to, text)| reply(to, list, text, Some(links))),
    ))
}

/// Mail to `NAME-owner@`: sent on, as it came, to the owners.
pub fn forward_to_owners(list: &ListConfig) -> Decision {
    Decision {
        forward_to: list.owners.clone(),
        bounces: Vec::new(),
        ..done(None)
    }
}

fn reply(to: String, list: &ListConfig, text: String, links: Option<&Links>) -> Option<Notice> {
    let reply_to = links.and_then(|links| confirmation_address(list, &text, links));
    Some(Notice {
        to: NoticeTarget::Address(to),
        subject: format!("Re: your request to {}", list.address),
        body: text,
        reply_to,
    })
}

/// The one `NAME-confirm+TOKEN@` address of `list` with a token this cluster signed that
/// an answer names (a subscription or an unsubscribe to confirm), so that replying to the
/// answer is the confirmation. Words a sender put in the answer (an unknown command is
/// quoted back) carry no valid token.
fn confirmation_address(list: &ListConfig, text: &str, links: &Links) -> Option<String> {
    let prefix = format!("{}-confirm+", list.local_part()).to_ascii_lowercase();
    let suffix = format!("@{}", list.domain()).to_ascii_lowercase();
    let mut found: Vec<&str> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c| matches!(c, '<' | '>' | '(' | ')' | ',' | '.' | ';' | ':')))
        .filter(|w| {
            let lower = w.to_ascii_lowercase();
            lower.starts_with(&prefix)
                && lower.ends_with(&suffix)
                && w.get(prefix.len()..w.len() - suffix.len())
                    .is_some_and(|token| confirm::parse(&links.keys, token).is_some())
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

fn done(notice: Option<Notice>) -> Decision {
    Decision {
        state: "done",
        reason: None,
        edits: None,
        notice,
        forward_to: Vec::new(),
        bounces: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_come_from_the_subject_or_the_body() {
        assert_eq!(
            parse_command(b"Subject: Re: RE: Subscribe Ann Example\r\n\r\nignored\r\n"),
            Some(("subscribe".into(), vec!["Ann".into(), "Example".into()]))
        );
        assert_eq!(
            parse_command(b"Subject: \r\n\r\n\r\n  help  \r\nmore\r\n"),
            Some(("help".into(), vec![]))
        );
        assert_eq!(parse_command(b"Subject:\r\n\r\n\r\n"), None);
    }
}

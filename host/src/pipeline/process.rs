//! Processing one stored post: run the list's `on-post` chain and turn the answers into a
//! decision (accepted, held, rejected, discarded) with the edited post.
//!
//! Runs after the 250, not before it: a session never waits on plugins, group commit stays
//! fast, and a plugin that is slow or broken cannot make senders time out or retry. The cost
//! is that a rejection reaches the sender as a notice rather than an SMTP reply; Mailman and
//! Sympa make the same choice.

use crate::{
    config::{FailurePolicy, ListConfig},
    confirm::{self, Links},
    message,
    plugins::{Bound, Hook, Runtime, wit},
    store::{Decision, Notice, NoticeTarget, StoredMessage},
};

use super::edits;

/// What the chain decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Accept,
    Hold(String),
    Reject(String),
    Discard(String),
}

/// The post as plugins see it.
pub fn to_wit(m: &StoredMessage) -> wit::Message {
    let body = message::body_start(&m.raw);
    wit::Message {
        id: m.id.clone(),
        list_address: m.list.clone(),
        envelope: wit::Envelope {
            mail_from: m.mail_from.clone(),
            rcpt_to: m.rcpt_to.clone(),
            client_ip: m.client_ip.clone(),
            helo: m.helo.clone(),
        },
        headers: message::fields(&m.raw)
            .into_iter()
            .map(|f| wit::Header {
                name: f.name,
                value: f.value,
            })
            .collect(),
        body: m.raw[body..].to_vec(),
        size: m.raw.len() as u64,
        received_at: u64::try_from(m.received_at).unwrap_or(0),
    }
}

/// Run every plugin of the chain that implements `on-post`, in order, until one decides.
/// Each sees the post as received; their edits are applied in chain order afterwards.
pub async fn run_chain(
    runtime: &Runtime,
    chain: &[Bound],
    post: &wit::Message,
    policy: FailurePolicy,
) -> (Verdict, Vec<wit::Edit>) {
    let mut edits = Vec::new();
    for bound in chain.iter().filter(|b| b.plugin.implements(Hook::OnPost)) {
        let answer = match runtime.on_post(bound, post).await {
            Ok(answer) => answer,
            Err(e) => match policy {
                FailurePolicy::Hold => return (Verdict::Hold(e.to_string()), edits),
                FailurePolicy::Reject => return (Verdict::Reject(e.to_string()), edits),
                FailurePolicy::Accept => continue,
            },
        };
        edits.extend(answer.edits);
        match answer.verdict {
            wit::Verdict::Continue => {}
            wit::Verdict::Accept => return (Verdict::Accept, edits),
            wit::Verdict::Hold(reason) => return (Verdict::Hold(reason), edits),
            wit::Verdict::Reject(r) => {
                let text = format!("{} {} {}", r.code, r.enhanced, r.text).replace("  ", " ");
                return (Verdict::Reject(text), edits);
            }
            wit::Verdict::Discard(reason) => return (Verdict::Discard(reason), edits),
        }
    }
    (Verdict::Accept, edits)
}

/// Text from a plugin or a post made fit for a text column and a log line: control
/// characters (NUL above all: PostgreSQL refuses it) become spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The stored decision for a verdict. A held post brings the moderators a notice with the
/// addresses and links that approve or reject it (when `links` is known).
pub fn decide(
    list: &ListConfig,
    m: &StoredMessage,
    verdict: Verdict,
    edits: &[wit::Edit],
    links: Option<&Links>,
) -> Decision {
    let verdict = match verdict {
        Verdict::Accept => Verdict::Accept,
        Verdict::Hold(r) => Verdict::Hold(one_line(&r)),
        Verdict::Reject(r) => Verdict::Reject(one_line(&r)),
        Verdict::Discard(r) => Verdict::Discard(one_line(&r)),
    };
    let (state, reason, edits, notice) = match verdict {
        Verdict::Accept => ("accepted", None, edits::encode(edits), None),
        // Kept with its edits, so an approval sends what the plugins made of it.
        Verdict::Hold(reason) => {
            let notice = links.and_then(|l| held_notice(list, m, &reason, l));
            ("held", Some(reason), edits::encode(edits), notice)
        }
        Verdict::Reject(reason) => {
            let notice = rejection_notice(list, m, &reason);
            ("rejected", Some(reason), None, notice)
        }
        Verdict::Discard(reason) => ("discarded", Some(reason), None, None),
    };
    Decision {
        state,
        reason,
        edits,
        notice,
        forward_to: Vec::new(),
        bounces: Vec::new(),
    }
}

/// What the moderators (the owners) get for a held post: reply to approve or reject, or
/// press a button; whichever answer comes first decides, once.
fn held_notice(
    list: &ListConfig,
    m: &StoredMessage,
    reason: &str,
    links: &Links,
) -> Option<Notice> {
    if list.owners.is_empty() {
        return None;
    }
    let approve = confirm::held_token(&links.keys, &m.id, true)?;
    let reject = confirm::held_token(&links.keys, &m.id, false)?;
    let answer = confirm::held_reply_token(&links.keys, &m.id)?;
    let subject = one_line(&message::header(&m.raw, "subject").unwrap_or_default());
    let sender = if m.mail_from.is_empty() {
        "<>"
    } else {
        &m.mail_from
    };
    Some(Notice {
        to: NoticeTarget::Owners,
        subject: format!("Held for moderation on {}: {subject}", list.address),
        body: format!(
            "A post to {list} is held for moderation.\n\n\
             From: {sender}\nSubject: {subject}\nReason: {reason}\nPost: {id}\n\n\
             Reply to this mail with the word approve or reject on a line of its own.\n\n\
             Or, to approve it, write to {approve_address}\n  or open {approve_url}\n\n\
             To reject it, write to {reject_address}\n  or open {reject_url}\n\n\
             Or on a node: roost held approve {local} {id}\n",
            list = list.address,
            id = m.id,
            local = list.local_part(),
            approve_address = links.address(&list.address, &approve),
            approve_url = links.url(&approve),
            reject_address = links.address(&list.address, &reject),
            reject_url = links.url(&reject),
        ),
        reply_to: Some(links.address(&list.address, &answer)),
    })
}

/// Tell the sender, unless there is no one to tell or telling could loop (see
/// `requests::reply_to`).
fn rejection_notice(list: &ListConfig, m: &StoredMessage, reason: &str) -> Option<Notice> {
    let sender = super::requests::reply_to(list, m)?;
    let subject = one_line(&message::header(&m.raw, "subject").unwrap_or_default());
    Some(Notice {
        to: NoticeTarget::Address(sender),
        subject: format!("Your post to {} was not accepted", list.address),
        body: format!(
            "Your post to {list} was not accepted.\n\nSubject: {subject}\nReason: {reason}\n",
            list = list.address
        ),
        reply_to: None,
    })
}

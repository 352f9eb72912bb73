//! Bounce mail into bounce rows. Only a bounce that proves it is about a copy Roost sent
//! can change a member: the VERP token of the address it came to, or a token quoted in it
//! together with the copy's List-Id and Message-ID, says which copy bounced (whatever
//! address the bounce names: forwarding and aliases change it). Anything else is recorded
//! as `unverified`, with the members it names, and handed to no plugin.

use roost_bounce::{Recipient, Report};

use crate::{
    store::{Decision, NewBounce, SentCopy, Store, StoreError, StoredMessage},
    tokens::{Purpose, TokenKey},
};

/// How bounce mail ends: `parsed` (its bounces recorded) or `ignored` (not a bounce, an
/// auto-reply, or about nobody on the list), with the reason kept on the message.
pub async fn decide(
    store: &Store,
    keys: Option<&TokenKey>,
    m: &StoredMessage,
) -> Result<Decision, StoreError> {
    let raw = m.raw.clone();
    // Parsing is bounded (the crate reads at most 1 MiB, limits nesting and parts), but it
    // is CPU work: off the async threads so a hostile bounce never stalls SMTP or delivery.
    let report = tokio::task::spawn_blocking(move || roost_bounce::parse(&raw))
        .await
        .ok()
        .flatten();
    let report = match report {
        Some(r) if r.is_bounce() => r,
        Some(r) => {
            tracing::info!(format = %r.format, "bounce mail that reports no failure: ignored");
            return Ok(ignored(format!("{}: no failure reported", r.format)));
        }
        None => {
            tracing::info!("bounce mail that is not a bounce: ignored");
            return Ok(ignored("not a bounce".into()));
        }
    };
    let failing: Vec<&Recipient> = report
        .recipients
        .iter()
        .filter(|r| matches!(r.action.as_str(), "failed" | "delayed" | "complained"))
        .collect();
    let copy = match keys {
        Some(keys) => proven_copy(store, keys, m, &report).await?,
        None => None,
    };
    let bounces = match copy {
        Some(copy) => {
            let member_id = match copy.member_id {
                Some(id) => Some(id),
                None => member_of(store, &m.list, &copy.address).await?,
            };
            // The copy had one recipient: the report's line for that address, or its worst
            // line when the bounce names another (a forward, an alias).
            let line = failing
                .iter()
                .find(|r| names(r, &copy.address))
                .or_else(|| failing.iter().find(|r| !r.temporary))
                .or_else(|| failing.first());
            line.map(|r| {
                let mut b = bounce(m, &report, r, &copy.address, member_id);
                b.message_id = Some(copy.message_id.clone());
                b.verified = true;
                b
            })
            .into_iter()
            .collect()
        }
        None => {
            // Anyone can write any address into a bounce: without proof that it is about a
            // copy we sent, it is kept for the operator (`roost bounce list`) and changes
            // nobody. The members it names are noted so the operator can see who.
            let addresses: Vec<String> = failing
                .iter()
                .flat_map(|r| std::iter::once(r.address.clone()).chain(r.final_recipient.clone()))
                .filter(|a| !a.is_empty())
                .collect();
            let members = store.member_ids(&m.list, &addresses).await?;
            let mut out = Vec::new();
            for r in &failing {
                match members.iter().find(|(k, _)| names(r, k)) {
                    Some((key, id)) => out.push(bounce(m, &report, r, key, Some(*id))),
                    None => {
                        tracing::info!(address = %r.address, "bounce for an address that is not a member")
                    }
                }
            }
            if !out.is_empty() {
                tracing::info!(
                    list = %m.list,
                    "bounce without proof that it is about a copy we sent: kept as unverified, nobody changed"
                );
            }
            out
        }
    };
    if bounces.is_empty() {
        return Ok(ignored(format!(
            "{}: about nobody on the list",
            report.format
        )));
    }
    let summary = bounces
        .iter()
        .map(|b| {
            format!(
                "{} {} {} ({}){}",
                b.address,
                b.recipient.action,
                b.recipient.status,
                b.recipient.reason.as_str(),
                if b.verified { "" } else { ", unverified" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    tracing::info!(format = %report.format, bounces = %summary, "bounce parsed");
    Ok(Decision {
        state: "parsed",
        reason: Some(format!("{}: {summary}", report.format)),
        edits: None,
        notice: None,
        forward_to: Vec::new(),
        bounces,
    })
}

/// Whether a report line is about `address` (as sent, or as finally delivered to).
fn names(r: &Recipient, address: &str) -> bool {
    r.address.eq_ignore_ascii_case(address)
        || r.final_recipient
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case(address))
}

async fn member_of(store: &Store, list: &str, address: &str) -> Result<Option<i64>, StoreError> {
    let found = store.member_ids(list, &[address.to_string()]).await?;
    Ok(found.first().map(|(_, id)| *id))
}

/// An unverified bounce row; the caller marks one it has proof for.
fn bounce(
    m: &StoredMessage,
    report: &Report,
    r: &Recipient,
    address: &str,
    member_id: Option<i64>,
) -> NewBounce {
    NewBounce {
        list: m.list.clone(),
        member_id,
        address: address.to_string(),
        message_id: None,
        source: "dsn",
        recipient: r.clone(),
        format: report.format.clone(),
        verified: false,
    }
}

/// The copy this bounce is about, when it proves one: the VERP token of the address it came
/// to, or else a token found in the bounce (the returned copy's `List-Unsubscribe` link, a
/// quoted VERP return path) whose copy's `List-Id` and `Message-ID` the returned headers
/// also carry. Every token names one copy of this list, so a bounce can only ever be about
/// the recipient of a copy its sender has seen.
async fn proven_copy(
    store: &Store,
    keys: &TokenKey,
    m: &StoredMessage,
    report: &Report,
) -> Result<Option<SentCopy>, StoreError> {
    if let Some(token) = &m.token {
        match keys.verify(Purpose::Verp, token).as_deref() {
            Some([rid, ..]) => {
                if let Some(copy) = copy_of_list(store, m, *rid).await? {
                    return Ok(Some(copy));
                }
                tracing::warn!(token, "bounce whose VERP token names no copy of this list");
            }
            _ => tracing::warn!(token, "bounce with a VERP token that does not verify"),
        }
    }
    let list_id = m.list.replacen('@', ".", 1);
    let quotes_list = report
        .original_list_id
        .as_deref()
        .is_some_and(|id| id.eq_ignore_ascii_case(&list_id));
    let Some(message_id) = report
        .original_message_id
        .as_deref()
        .filter(|_| quotes_list)
    else {
        return Ok(None);
    };
    for rid in quoted_copies(keys, &m.raw) {
        if let Some(copy) = copy_of_list(store, m, rid).await?
            && store.header_message_id(&copy.message_id).await?.as_deref() == Some(message_id)
        {
            return Ok(Some(copy));
        }
    }
    Ok(None)
}

async fn copy_of_list(
    store: &Store,
    m: &StoredMessage,
    rid: u64,
) -> Result<Option<SentCopy>, StoreError> {
    let Ok(rid) = i64::try_from(rid) else {
        return Ok(None);
    };
    Ok(store.sent_copy(rid).await?.filter(|c| c.list == m.list))
}

/// Tokens that verify, quoted anywhere in the bounce: after `-bounces+` (a VERP return
/// path) or `/u/` (the unsubscribe link, which names the copy too). A member's unsubscribe
/// link can leak (quoted in a reply, say), but whoever has it can unsubscribe that member
/// with one click anyway: as proof of a copy it gives nobody anything new. One pass over at most
/// what the parser reads; a few marks at most are checked (an HMAC each) and a few copies
/// looked up, so a bounce full of marks costs no more than an honest one.
fn quoted_copies(keys: &TokenKey, raw: &[u8]) -> Vec<u64> {
    const MARKS: [(&[u8], Purpose); 2] = [
        (b"-bounces+", Purpose::Verp),
        (b"/u/", Purpose::Unsubscribe),
    ];
    const MOST: usize = 4;
    const MOST_CHECKED: usize = 32;
    let raw = &raw[..raw.len().min(roost_bounce::MAX_INPUT)];
    let mut found = Vec::new();
    let mut checked = 0;
    let mut i = 0;
    while i < raw.len() && found.len() < MOST && checked < MOST_CHECKED {
        let Some((mark, purpose)) = MARKS.iter().find(|(mark, _)| raw[i..].starts_with(mark))
        else {
            i += 1;
            continue;
        };
        let from = i + mark.len();
        let len = raw[from..]
            .iter()
            .take(65)
            .take_while(|b| matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'2'..=b'7'))
            .count();
        i = from + len;
        // Tokens are at least 16 characters: stray marks (`/u/` in any URL) do not use up
        // the checks and hide a real token after them.
        if len < 16 {
            continue;
        }
        let Ok(token) = std::str::from_utf8(&raw[from..from + len]) else {
            continue;
        };
        checked += 1;
        let rid = match (purpose, keys.verify(*purpose, token).as_deref()) {
            (Purpose::Verp, Some([rid, ..])) => *rid,
            (_, Some([_member, rid])) => *rid,
            _ => continue,
        };
        if !found.contains(&rid) {
            found.push(rid);
        }
    }
    found
}

fn ignored(reason: String) -> Decision {
    Decision {
        state: "ignored",
        reason: Some(reason),
        edits: None,
        notice: None,
        forward_to: Vec::new(),
        bounces: Vec::new(),
    }
}

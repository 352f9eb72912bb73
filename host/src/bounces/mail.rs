//! Bounce mail into bounce rows. The VERP token, when it verifies, says which copy
//! bounced (whatever address the bounce names: forwarding and aliases change it); without
//! one, the addresses in the report are matched against the list's members.

use roost_bounce::{Recipient, Report};

use crate::{
    store::{Decision, NewBounce, Store, StoreError, StoredMessage},
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
    let verp = match (keys, &m.token) {
        (Some(keys), Some(token)) => match keys.verify(Purpose::Verp, token) {
            Some(fields) => match fields.first().and_then(|&r| i64::try_from(r).ok()) {
                Some(rid) => store.verp_recipient(rid).await?,
                None => None,
            },
            None => {
                tracing::warn!(token, "bounce with a VERP token that does not verify");
                None
            }
        },
        _ => None,
    };
    let bounces = match verp {
        Some((message_id, address, member_id)) => {
            let member_id = match member_id {
                Some(id) => Some(id),
                None => member_of(store, &m.list, &address).await?,
            };
            // The copy had one recipient: the report's line for that address, or its worst
            // line when the bounce names another (a forward, an alias).
            let line = failing
                .iter()
                .find(|r| names(r, &address))
                .or_else(|| failing.iter().find(|r| !r.temporary))
                .or_else(|| failing.first());
            line.map(|r| bounce(m, &report, r, &address, member_id, Some(message_id)))
                .into_iter()
                .collect()
        }
        None => {
            // The address the list sent to, and where it was forwarded (an alias target).
            let addresses: Vec<String> = failing
                .iter()
                .flat_map(|r| std::iter::once(r.address.clone()).chain(r.final_recipient.clone()))
                .filter(|a| !a.is_empty())
                .collect();
            let members = store.member_ids(&m.list, &addresses).await?;
            let mut out = Vec::new();
            for r in &failing {
                match members.iter().find(|(k, _)| names(r, k)) {
                    Some((key, id)) => out.push(bounce(m, &report, r, key, Some(*id), None)),
                    None => {
                        tracing::info!(address = %r.address, "bounce for an address that is not a member")
                    }
                }
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
                "{} {} {} ({})",
                b.address,
                b.recipient.action,
                b.recipient.status,
                b.recipient.reason.as_str()
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

fn bounce(
    m: &StoredMessage,
    report: &Report,
    r: &Recipient,
    address: &str,
    member_id: Option<i64>,
    message_id: Option<String>,
) -> NewBounce {
    NewBounce {
        list: m.list.clone(),
        member_id,
        address: address.to_string(),
        message_id,
        source: "dsn",
        recipient: r.clone(),
        format: report.format.clone(),
    }
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

//! Bounce parsing: one raw message in, a structured report out.
//!
//! This crate is pure (no I/O, no async) so that it can be fuzzed on its own and reused by
//! the `roost bounce parse` command, the intake of `NAME-bounces+TOKEN@` mail and the
//! synchronous 5xx / expiry paths of delivery, which all speak the same [`Report`].

use serde::Serialize;

mod address;
mod arf;
mod autoreply;
mod classify;
mod dsn;
mod fields;
mod formats;
mod mime;
#[cfg(test)]
mod tests;

/// Input beyond this is ignored: the failure report is at the top of a bounce, and the cap
/// bounds the work done on hostile input.
pub const MAX_INPUT: usize = 1024 * 1024;

/// Recipients per report beyond this are dropped: no real bounce names more, and the cap keeps
/// the per-address work linear on hostile input.
pub const MAX_RECIPIENTS: usize = 500;

/// What kind of failure a bounce reports. Mirrors `bounce-reason` in `wit/types.wit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    MailboxUnknown,
    MailboxFull,
    Policy,
    DnsOrRouting,
    MessageTooBig,
    AutoReply,
    DelayNotice,
    Complaint,
    Unknown,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MailboxUnknown => "mailbox-unknown",
            Reason::MailboxFull => "mailbox-full",
            Reason::Policy => "policy",
            Reason::DnsOrRouting => "dns-or-routing",
            Reason::MessageTooBig => "message-too-big",
            Reason::AutoReply => "auto-reply",
            Reason::DelayNotice => "delay-notice",
            Reason::Complaint => "complaint",
            Reason::Unknown => "unknown",
        }
    }
}

/// One recipient named by a bounce.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recipient {
    /// The address as the bounce gave it (not lower-cased: the local part may be case-sensitive).
    pub address: String,
    /// RFC 3464 action: `failed`, `delayed`, `delivered`, `relayed`, `expanded`; for ARF
    /// reports `complained`, for auto-replies `auto-replied`.
    pub action: String,
    /// Enhanced status code such as `5.1.1`; empty when the bounce gave none.
    pub status: String,
    /// The remote server's words (one line, trimmed, at most a few hundred bytes).
    pub diagnostic: String,
    /// Not final: the MTA is still retrying (a DSN `delayed` action, a warning). A `failed`
    /// DSN with a 4.x.x status is an expiry after retries, which is final.
    pub temporary: bool,
    pub reason: Reason,
    /// Where the message finally failed when that differs from `address`: a DSN's
    /// `Final-Recipient` after an alias or forward rewrote the address (`address` is then the
    /// `Original-Recipient`, the address the list sent to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_recipient: Option<String>,
}

/// A parsed bounce.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Which detector recognised it: `rfc3464` (also MDNs and DSN fields in plain text),
    /// `arf`, `auto-reply`, one of the non-standard formats (`postfix`, `qmail`, `exim`,
    /// `sendmail`, `exchange`, `yahoo`, `smtp32`, `netscape`, `aol`, `sina`, ...), or from
    /// delivery `smtp-reply` / `expiry`. For logs and statistics; nothing should branch on it.
    pub format: String,
    pub recipients: Vec<Recipient>,
    /// `Message-ID` of the returned original, when the bounce carries its headers (or pastes
    /// them into its text), without the angle brackets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_message_id: Option<String>,
    /// `List-Id` of the returned original (the part in angle brackets), found the same way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_list_id: Option<String>,
}

impl Report {
    /// Whether this report says that mail did not get through (or, for ARF, that it was
    /// unwanted). Auto-replies and "delivered"/"relayed" DSNs are reports but not bounces.
    pub fn is_bounce(&self) -> bool {
        self.recipients
            .iter()
            .any(|r| matches!(r.action.as_str(), "failed" | "delayed" | "complained"))
    }
}

/// Parse a raw message. `None` when it is not recognisable as a bounce, a delivery report,
/// an ARF complaint or an auto-reply.
///
/// Only the first [`MAX_INPUT`] bytes are read. Explicit reports win over guesses: an ARF
/// feedback report, then RFC 3464 (and forwarded or mislabelled DSNs), then the non-standard
/// formats, and only when none of them applies the auto-reply headers, since MTAs flag their
/// bounces `Auto-Submitted: auto-replied` too.
pub fn parse(raw: &[u8]) -> Option<Report> {
    let raw = &raw[..raw.len().min(MAX_INPUT)];
    let mime = mime::Mime::parse(raw);
    let top = mime.top()?;
    let report = |format: &str, recipients: Vec<Recipient>| Report {
        format: format.to_string(),
        recipients: dedup(recipients),
        original_message_id: original_message_id(&mime),
        original_list_id: original_list_id(&mime),
    };
    // Structured reports first: they name recipients explicitly.
    if let Some(recipients) = arf::parse(&mime) {
        return Some(report("arf", recipients));
    }
    if let Some(recipients) = dsn::parse(&mime)
        && !recipients.is_empty()
    {
        return Some(report("rfc3464", recipients));
    }
    if let Some((format, recipients)) = formats::detect(&mime)
        && !recipients.is_empty()
    {
        return Some(report(format, recipients));
    }
    if let Some(recipient) = autoreply::detect(&top.headers) {
        return Some(report("auto-reply", vec![recipient]));
    }
    None
}

/// One entry per address (case-insensitively); a failure beats a delay for the same address
/// because the failure is final.
fn dedup(recipients: Vec<Recipient>) -> Vec<Recipient> {
    let mut out: Vec<Recipient> = Vec::new();
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for r in recipients {
        match seen.get(&r.address.to_lowercase()) {
            Some(&i) if out[i].action != "failed" && r.action == "failed" => out[i] = r,
            Some(_) => {}
            None if out.len() < MAX_RECIPIENTS => {
                seen.insert(r.address.to_lowercase(), out.len());
                out.push(r);
            }
            None => {}
        }
    }
    out
}

/// The returned original's Message-ID, without angle brackets: from its headers when the
/// bounce attaches them, else from a `Message-ID:` line in the bounce text (MTAs that paste
/// the original inline).
fn original_message_id(mime: &mime::Mime<'_>) -> Option<String> {
    let value = original_field(mime, "message-id")?;
    let id = value
        .split_whitespace()
        .next()?
        .trim_start_matches('<')
        .trim_end_matches('>');
    (!id.is_empty() && id.len() <= 998).then(|| id.to_string())
}

/// The returned original's `List-Id` (its `<id>` part, without brackets), found like its
/// Message-ID: what ties a bounce to one list when it came without a VERP token.
fn original_list_id(mime: &mime::Mime<'_>) -> Option<String> {
    let value = original_field(mime, "list-id")?;
    let inner = value.rsplit_once('<')?.1.split_once('>')?.0.trim();
    (!inner.is_empty() && inner.len() <= 255).then(|| inner.to_string())
}

/// A field of the returned original: from its headers when the bounce attaches them, else
/// from a `Name:` line in the bounce text (MTAs that paste the original inline).
fn original_field(mime: &mime::Mime<'_>, name: &str) -> Option<String> {
    let from_headers = mime
        .returned_headers()
        .and_then(|h| h.get(name))
        .map(str::to_string);
    from_headers.or_else(|| {
        mime.report_texts().find_map(|p| {
            p.text().lines().find_map(|l| {
                let (n, value) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_string())
            })
        })
    })
}

/// Classify a failure from its enhanced status code and the server's words.
pub fn classify(status: &str, diagnostic: &str, temporary: bool) -> Reason {
    classify::classify(status, diagnostic, temporary)
}

/// The report for a reply received at delivery (`code` like 550, `enhanced` like `5.1.1`,
/// possibly empty) or for a copy that expired in the queue (`expired`).
pub fn from_delivery(
    address: &str,
    code: u16,
    enhanced: &str,
    text: &str,
    expired: bool,
) -> Report {
    let temporary = !expired && (400..500).contains(&code);
    let diagnostic = if enhanced.is_empty() {
        format!("{code} {text}")
    } else {
        format!("{code} {enhanced} {text}")
    };
    let status = if enhanced.is_empty() {
        format!("{}.0.0", code / 100)
    } else {
        enhanced.to_string()
    };
    Report {
        format: if expired { "expiry" } else { "smtp-reply" }.to_string(),
        recipients: vec![Recipient {
            address: address.to_string(),
            action: if temporary { "delayed" } else { "failed" }.to_string(),
            reason: classify(&status, &diagnostic, temporary),
            status,
            diagnostic,
            temporary,
            final_recipient: None,
        }],
        original_message_id: None,
        original_list_id: None,
    }
}

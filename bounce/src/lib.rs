//! Bounce parsing: one raw message in, a structured report out.
//!
//! This crate is pure (no I/O, no async) so that it can be fuzzed on its own and reused by
//! the `roost bounce parse` command, the intake of `NAME-bounces+TOKEN@` mail and the
//! synchronous 5xx / expiry paths of delivery, which all speak the same [`Report`].

use serde::Serialize;

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
    pub temporary: bool,
    pub reason: Reason,
}

/// A parsed bounce.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Which detector recognised it: `rfc3464`, `arf`, `postfix`, `qmail`, `exim`,
    /// `smtp-reply`, `expiry`, ...
    pub format: String,
    pub recipients: Vec<Recipient>,
    /// `Message-ID` of the returned original, when the bounce carries its headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_message_id: Option<String>,
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
pub fn parse(raw: &[u8]) -> Option<Report> {
    let _ = raw;
    None
}

/// Classify a failure from its enhanced status code and the server's words.
pub fn classify(status: &str, diagnostic: &str, temporary: bool) -> Reason {
    let _ = (status, diagnostic, temporary);
    Reason::Unknown
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
        }],
        original_message_id: None,
    }
}

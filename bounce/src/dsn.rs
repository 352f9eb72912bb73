//! RFC 3464 delivery status notifications.
//!
//! The standard is followed loosely in the wild: field names in any case, missing type
//! prefixes, several recipients in one group, and DSN fields pasted into a `text/plain` part.
//! All of that is accepted, but only `Original-Recipient` / `Final-Recipient` values are ever
//! taken as addresses.

use crate::fields::{Record, find_status, one_line, records, strip_type};
use crate::mime::Mime;
use crate::{Recipient, address, classify};

/// Longest `diagnostic` kept: enough for any server's sentence, short enough for a log line.
pub const MAX_DIAGNOSTIC: usize = 300;

fn is_status_type(ct: &crate::mime::ContentType) -> bool {
    ct.mime_type == "message"
        && matches!(
            ct.subtype.as_str(),
            "delivery-status" | "global-delivery-status"
        )
}

/// Whether part `i` lies in a returned message that is itself a delivery report: a bounce
/// that a gateway forwarded as an attachment. Returned list posts are never reports.
fn in_wrapped_report(mime: &Mime<'_>, i: usize) -> bool {
    let mut cur = Some(i);
    for _ in 0..64 {
        let Some(p) = cur.and_then(|c| mime.parts.get(c)) else {
            return false;
        };
        if p.original {
            return p.content_type.is("multipart", "report");
        }
        cur = p.parent;
    }
    false
}

/// Recipients of every `message/delivery-status` part (or of a message/disposition-notification
/// saying the message was deleted unread); when there is none, of DSN field groups found in
/// the text parts. `None` when the message has neither.
pub fn parse(mime: &Mime<'_>) -> Option<Vec<Recipient>> {
    let mut found_part = false;
    let mut out = Vec::new();
    for p in mime.parts.iter().filter(|p| !p.returned) {
        if is_status_type(&p.content_type) {
            found_part = true;
            let text = p.text();
            out.extend(records(&text).iter().filter_map(|r| recipient(r, false)));
        } else if p.content_type.is("message", "disposition-notification") {
            found_part = true;
            out.extend(records(&p.text()).iter().filter_map(mdn_failure));
        }
    }
    if found_part {
        return Some(out);
    }
    // A forwarded bounce: the report is inside the attached message.
    for (i, p) in mime.parts.iter().enumerate() {
        if p.returned && is_status_type(&p.content_type) && in_wrapped_report(mime, i) {
            found_part = true;
            out.extend(
                records(&p.text())
                    .iter()
                    .filter_map(|r| recipient(r, false)),
            );
        }
    }
    if found_part {
        return Some(out);
    }
    // A DSN with the wrong content type: only groups that carry an Action or a Status next
    // to the recipient count, so that prose mentioning "Final-Recipient:" does not.
    for part in mime.report_texts() {
        let text = part.text();
        if !contains_ignore_case(&text, "final-recipient:")
            && !contains_ignore_case(&text, "original-recipient:")
        {
            continue;
        }
        out.extend(records(&text).iter().filter_map(|r| recipient(r, true)));
    }
    (!out.is_empty()).then_some(out)
}

/// An RFC 8098 MDN whose disposition says the message was thrown away (Dovecot sends these
/// for over-quota mailboxes instead of a DSN). Read receipts are not failures.
fn mdn_failure(r: &Record) -> Option<Recipient> {
    let disposition = r.get("disposition")?.to_ascii_lowercase();
    if !["deleted", "denied", "failed", "error", "rejected"]
        .iter()
        .any(|w| disposition.contains(w))
    {
        return None;
    }
    let address = r.get("final-recipient").and_then(recipient_address)?;
    Some(Recipient {
        reason: classify("", &disposition, false),
        address,
        action: "failed".to_string(),
        status: String::new(),
        diagnostic: one_line(&disposition, MAX_DIAGNOSTIC),
        temporary: false,
        final_recipient: None,
    })
}

pub fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack.to_ascii_lowercase().contains(needle)
}

/// The address of a `Final-Recipient`/`Original-Recipient` value. A value without a type and
/// without angle brackets is still taken when it parses as an address.
fn recipient_address(value: &str) -> Option<String> {
    address::clean(strip_type(value))
}

fn recipient(r: &Record, strict: bool) -> Option<Recipient> {
    if !r.has("final-recipient") && !r.has("original-recipient") {
        return None;
    }
    if strict && !r.has("action") && !r.has("status") {
        return None;
    }
    // Original-Recipient, when the DSN has it, is the address as the sender (the list) gave
    // it, i.e. how the list knows its member; Final-Recipient may be an alias target or a
    // forward the list has never heard of. Final-Recipient stands in when there is no usable
    // Original-Recipient, and is kept alongside when it differs.
    let original = r.get("original-recipient").and_then(recipient_address);
    let final_ = r.get("final-recipient").and_then(recipient_address);
    let address = original.clone().or_else(|| final_.clone())?;
    let final_recipient = final_.filter(|f| !f.eq_ignore_ascii_case(&address));
    let diagnostic = r
        .get("diagnostic-code")
        .map(|d| one_line(strip_type(d), MAX_DIAGNOSTIC))
        .unwrap_or_default();
    let status = r
        .get("status")
        .and_then(find_status)
        .or_else(|| find_status(&diagnostic))
        .unwrap_or_default();
    let action = normalise_action(r.get("action").unwrap_or(""), &status);
    // The action decides: "failed" with a 4.x.x status means the MTA gave up retrying (an
    // expiry), which is final. The status only decides when the action says nothing.
    let temporary = action == "delayed";
    let words = if diagnostic.is_empty() {
        r.get("status")
            .map(|s| one_line(s, MAX_DIAGNOSTIC))
            .unwrap_or_default()
    } else {
        diagnostic.clone()
    };
    let reason = classify(&status, &words, temporary);
    Some(Recipient {
        address,
        action,
        status,
        diagnostic,
        temporary,
        reason,
        final_recipient,
    })
}

/// RFC 3464 actions, lower-case, with the variants seen in the wild folded in (`error` from
/// OpenSMTPD, comments after the keyword). A missing action is inferred from the status.
fn normalise_action(action: &str, status: &str) -> String {
    let word = action
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_ascii_lowercase();
    let known = match word.as_str() {
        "failed" | "failure" | "fail" | "error" | "undeliverable" => "failed",
        "delayed" | "delay" => "delayed",
        "delivered" => "delivered",
        "relayed" => "relayed",
        "expanded" => "expanded",
        _ => match status.as_bytes().first() {
            Some(b'2') => "delivered",
            Some(b'4') => "delayed",
            _ => "failed",
        },
    };
    known.to_string()
}

#[cfg(test)]
mod tests {
    use crate::{Reason, parse};

    const POSTFIX: &str = "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\r
To: list-bounces@lists.example.com\r
Subject: Undelivered Mail Returned to Sender\r
Message-Id: <20240101.ABC@mx.example.org>\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status;\r
\tboundary=\"B1\"\r
\r
This is a MIME-encapsulated message.\r
\r
--B1\r
Content-Description: Notification\r
Content-Type: text/plain; charset=us-ascii\r
\r
I'm sorry to have to inform you that your message could not\r
be delivered to one or more recipients.\r
\r
<Some.User@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1\r
    <Some.User@example.net>: Recipient address rejected: User unknown\r
\r
--B1\r
Content-Description: Delivery report\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.example.org\r
X-Postfix-Queue-ID: ABC\r
Arrival-Date: Mon,  1 Jan 2024 10:00:00 +0000 (UTC)\r
\r
final-recipient: RFC822; <Some.User@example.net>\r
Original-Recipient: rfc822;Some.User@example.net\r
Action: failed\r
Status: 5.1.1\r
Remote-MTA: dns; mx.example.net\r
Diagnostic-Code: smtp; 550 5.1.1 <Some.User@example.net>: Recipient address\r
    rejected: User unknown\r
\r
--B1\r
Content-Description: Undelivered Message Headers\r
Content-Type: text/rfc822-headers\r
\r
From: list@lists.example.com\r
To: Some.User@example.net\r
Message-ID: <orig-1@lists.example.com>\r
Subject: hello\r
\r
--B1--\r
";

    #[test]
    fn postfix_dsn_permanent() {
        let r = parse(POSTFIX.as_bytes()).unwrap();
        assert_eq!(r.format, "rfc3464");
        assert!(r.is_bounce());
        assert_eq!(r.recipients.len(), 1);
        let rcpt = &r.recipients[0];
        assert_eq!(rcpt.address, "Some.User@example.net");
        assert_eq!(rcpt.action, "failed");
        assert_eq!(rcpt.status, "5.1.1");
        assert_eq!(
            rcpt.diagnostic,
            "550 5.1.1 <Some.User@example.net>: Recipient address rejected: User unknown"
        );
        assert!(!rcpt.temporary);
        assert_eq!(rcpt.reason, Reason::MailboxUnknown);
        assert_eq!(
            r.original_message_id.as_deref(),
            Some("orig-1@lists.example.com")
        );
    }

    #[test]
    fn delayed_dsn() {
        let raw = "From: postmaster@relay.example.cz\n\
Subject: Delivery delayed\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"x/y\"\n\
\n\
--x/y\n\
Content-Type: text/plain\n\
\n\
Your message is delayed.\n\
--x/y\n\
Content-Type: message/delivery-status\n\
\n\
Reporting-MTA: dns; relay.example.cz\n\
\n\
Final-Recipient: rfc822; user@example.cz\n\
Action: delayed\n\
Status: 4.4.1 (no answer from host)\n\
Will-Retry-Until: Mon, 26 Mar 2001 03:42:45 +0100\n\
--x/y--\n";
        let r = parse(raw.as_bytes()).unwrap();
        assert_eq!(r.format, "rfc3464");
        assert!(r.is_bounce());
        let rcpt = &r.recipients[0];
        assert_eq!(rcpt.address, "user@example.cz");
        assert_eq!(rcpt.action, "delayed");
        assert_eq!(rcpt.status, "4.4.1");
        assert!(rcpt.temporary);
        assert_eq!(rcpt.reason, Reason::DelayNotice);
    }

    #[test]
    fn delivered_is_not_a_bounce() {
        let raw = "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n\
--b\nContent-Type: message/delivery-status\n\n\
Reporting-MTA: dns; a.example\n\n\
Final-Recipient: rfc822; x@example.com\nAction: relayed\nStatus: 2.0.0\n--b--\n";
        let r = parse(raw.as_bytes()).unwrap();
        assert_eq!(r.recipients[0].action, "relayed");
        assert!(!r.is_bounce());
    }

    #[test]
    fn original_recipient_first() {
        let raw = "Content-Type: multipart/report; boundary=b\n\n\
--b\nContent-Type: message/delivery-status\n\n\
Action: failed\nStatus: 5.0.0 (recipient reached disk quota)\n\
Original-recipient: rfc822;userx@example.com\nFinal-recipient: rfc822;userx@sims-ms-daemon\n--b--\n";
        let r = parse(raw.as_bytes()).unwrap();
        assert_eq!(r.recipients[0].address, "userx@example.com");
        assert_eq!(r.recipients[0].reason, Reason::MailboxFull);
        assert_eq!(r.recipients[0].final_recipient, None);
        let raw = raw.replace("userx@sims-ms-daemon", "HAASM@mail.example.com");
        let r = parse(raw.as_bytes()).unwrap();
        assert_eq!(r.recipients[0].address, "userx@example.com");
        assert_eq!(
            r.recipients[0].final_recipient.as_deref(),
            Some("HAASM@mail.example.com")
        );
    }

    #[test]
    fn dsn_fields_in_text_plain() {
        let raw = "Subject: failure\nContent-Type: text/plain\n\nSorry.\n\n\
Final-Recipient: rfc822; someone@example.org\nAction: failed\nStatus: 5.2.2\n";
        let r = parse(raw.as_bytes()).unwrap();
        assert_eq!(r.recipients[0].address, "someone@example.org");
        assert_eq!(r.recipients[0].reason, Reason::MailboxFull);
    }
}

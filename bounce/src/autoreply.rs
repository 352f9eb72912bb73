//! Vacation and out-of-office replies.
//!
//! They arrive at the bounce address because list mail has the bounce address as envelope
//! sender. They prove the mailbox exists, so they are reported (the host may want to log them)
//! but never count as bounces.

use crate::mime::Headers;
use crate::{Reason, Recipient, address};

/// Subject openings of automatic replies in the languages list members most often use.
const SUBJECTS: &[&str] = &[
    "auto:",
    "auto-reply",
    "autoreply",
    "auto reply",
    "auto response",
    "auto-response",
    "autoresponse",
    "automatic reply",
    "automatische antwort",
    "autosvar",
    "out of office",
    "out of the office",
    "out-of-office",
    "on vacation",
    "vacation",
    "away from my mail",
    "abwesenheit",
    "abwesend",
    "réponse automatique",
    "reponse automatique",
    "absence",
    "respuesta automática",
    "respuesta automatica",
    "risposta automatica",
    "fuori sede",
    "automatisch antwoord",
    "afwezig",
    "resposta automática",
];

/// Whether the top-level headers say "automatic reply", and if so the report's recipient.
pub fn detect(headers: &Headers) -> Option<Recipient> {
    let auto_submitted = headers
        .get("auto-submitted")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let precedence = headers
        .get("precedence")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let flagged = auto_submitted.starts_with("auto-replied")
        || headers.get("x-autoreply").is_some_and(is_yes)
        || headers.get("x-autorespond").is_some()
        || headers.get("x-autoresponder").is_some()
        || headers.get("x-vacation").is_some()
        || precedence == "auto_reply"
        || headers
            .get("x-ms-exchange-inbox-rules-loop")
            .is_some_and(|_| subject_says_auto(headers));
    let generated_with_subject = (auto_submitted.starts_with("auto-generated")
        || headers.get("x-auto-response-suppress").is_some()
        || matches!(precedence.as_str(), "bulk" | "junk" | "list"))
        && subject_says_auto(headers);
    let plain_subject = subject_says_auto(headers) && !looks_like_list_traffic(headers);
    if !(flagged || generated_with_subject || plain_subject) || from_mail_system(headers) {
        return None;
    }
    let from = headers
        .get("from")
        .and_then(address::from_header)
        .or_else(|| headers.get("sender").and_then(address::from_header))?;
    Some(Recipient {
        address: from,
        action: "auto-replied".to_string(),
        status: String::new(),
        diagnostic: headers
            .get("subject")
            .map(|s| crate::fields::one_line(s, crate::dsn::MAX_DIAGNOSTIC))
            .unwrap_or_default(),
        temporary: true,
        reason: Reason::AutoReply,
        final_recipient: None,
    })
}

/// Mail systems flag their bounces `auto-replied` too; what they send is never a vacation
/// notice, and a bounce that no detector understood must not pass for one.
fn from_mail_system(headers: &Headers) -> bool {
    let from = headers.get("from").unwrap_or("").to_ascii_lowercase();
    let local = address::from_header(&from)
        .and_then(|a| a.rsplit_once('@').map(|(l, _)| l.to_string()))
        .unwrap_or_default();
    let subject = headers.get("subject").unwrap_or("").to_ascii_lowercase();
    matches!(
        local.as_str(),
        "mailer-daemon" | "mailer_daemon" | "mailerdaemon" | "postmaster" | "mail-daemon"
    ) || from.contains("mail delivery")
        || from.contains("delivery subsystem")
        || [
            "undeliver",
            "delivery status",
            "delivery fail",
            "returned mail",
            "failure notice",
        ]
        .iter()
        .any(|w| subject.contains(w))
}

fn is_yes(v: &str) -> bool {
    let v = v.trim();
    !(v.eq_ignore_ascii_case("no") || v.eq_ignore_ascii_case("false") || v == "0")
}

/// A subject beginning (after `Re:`/`AW:` style prefixes) with an auto-reply phrase. Only the
/// beginning: "Re: my vacation photos" from a person is not an auto-reply.
fn subject_says_auto(headers: &Headers) -> bool {
    let Some(subject) = headers.get("subject") else {
        return false;
    };
    let decoded = decode_subject(subject).to_lowercase();
    let mut s = decoded.trim();
    for _ in 0..3 {
        let Some((prefix, rest)) = s.split_once(':') else {
            break;
        };
        if prefix.len() <= 4 && SUBJECTS.iter().all(|w| !s.starts_with(w)) {
            s = rest.trim_start();
        } else {
            break;
        }
    }
    SUBJECTS.iter().any(|w| s.starts_with(w))
}

/// Posts from another list (List-Id, List-Unsubscribe) can have any subject; they are never
/// auto-replies unless flagged as such.
fn looks_like_list_traffic(headers: &Headers) -> bool {
    headers.get("list-id").is_some() || headers.get("list-unsubscribe").is_some()
}

/// Decodes RFC 2047 encoded words well enough to read a subject's first words.
fn decode_subject(subject: &str) -> String {
    if !subject.contains("=?") {
        return subject.to_string();
    }
    let raw = format!("Subject: {subject}\r\n\r\n");
    mail_parser::MessageParser::new()
        .parse_headers(raw.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| subject.to_string())
}

#[cfg(test)]
mod tests {
    use crate::{Reason, parse};

    #[test]
    fn vacation_reply() {
        let raw = "From: Jane Doe <jane@example.org>\n\
To: list-bounces@lists.example.com\n\
Subject: Out of Office: [list] weekly news\n\
Auto-Submitted: auto-replied\n\
\n\
I am away until Monday.\n";
        let r = parse(raw.as_bytes()).unwrap();
        assert_eq!(r.format, "auto-reply");
        assert!(!r.is_bounce());
        let rcpt = &r.recipients[0];
        assert_eq!(rcpt.address, "jane@example.org");
        assert_eq!(rcpt.action, "auto-replied");
        assert_eq!(rcpt.reason, Reason::AutoReply);
        assert!(rcpt.temporary);
    }

    #[test]
    fn encoded_subject_without_flags() {
        let raw = "From: hans@example.de\nSubject: =?utf-8?q?Abwesenheitsnotiz=3A_Hallo?=\n\nweg\n";
        let r = parse(raw.as_bytes()).unwrap();
        assert_eq!(r.format, "auto-reply");
        assert_eq!(r.recipients[0].address, "hans@example.de");
    }

    #[test]
    fn precedence_auto_reply() {
        let raw = "From: a@example.org\nPrecedence: auto_reply\nSubject: thanks\n\nok\n";
        assert_eq!(parse(raw.as_bytes()).unwrap().format, "auto-reply");
    }

    #[test]
    fn bounce_flagged_auto_replied_is_not_a_vacation() {
        let raw = "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\n\
Auto-Submitted: auto-replied\nSubject: Undelivered Mail\n\nsomething odd\n";
        assert!(parse(raw.as_bytes()).is_none());
    }

    #[test]
    fn plain_message_is_none() {
        let raw = "From: Bob <bob@example.org>\nTo: list@example.com\nSubject: Re: my vacation photos\n\
Message-ID: <x@y.z>\n\nHere they are: bob@example.org, alice@example.net\n";
        assert!(parse(raw.as_bytes()).is_none());
    }
}

//! From status code and server words to a [`Reason`].
//!
//! Specific enhanced codes are trusted first because they are machine-made; servers that
//! only know generic codes (`5.0.0`, `5.5.0`, `4.0.0`, or none) usually say what they mean in
//! words, so words override a generic code.

use crate::Reason;

/// Phrases, lower-case, in priority order: a quota message that also says "rejected" is about
/// the quota.
const WORDS: &[(Reason, &[&str])] = &[
    (
        Reason::MailboxFull,
        &[
            "over quota",
            "overquota",
            "quota exceeded",
            "exceeded quota",
            "exceeds quota",
            "quota exceed",
            "mailbox full",
            "mailbox is full",
            "mail box full",
            "mailbox size limit",
            "mailbox exceeds",
            "disk quota",
            "insufficient storage",
            "out of storage",
            "space not enough",
            "user is over",
            "account is full",
            "inbox is full",
            "mailfolder is full",
            "quota",
            "has too much mail",
        ],
    ),
    (
        Reason::MessageTooBig,
        &[
            "too large",
            "too big",
            "message size exceeds",
            "size limit",
            "exceeds the maximum size",
            "message length exceeds",
        ],
    ),
    (
        Reason::MailboxUnknown,
        &[
            "user unknown",
            "unknown user",
            "no such user",
            "no such mailbox",
            "no such recipient",
            "no such address",
            "unknown recipient",
            "unknown address",
            "recipient unknown",
            "address unknown",
            "mailbox unavailable",
            "mailbox not found",
            "mailbox does not exist",
            "does not exist",
            "doesn't exist",
            "not exist",
            "invalid recipient",
            "invalid mailbox",
            "invalid address",
            "user not found",
            "recipient not found",
            "address rejected",
            "no mailbox",
            "not a valid mailbox",
            "unrouteable address",
            "account disabled",
            "account has been disabled",
            "account is disabled",
            "no longer",
            "not our customer",
            "unknown or illegal alias",
            "undeliverable address",
            "bad destination mailbox",
            "not listed in",
            "doesn't have a",
            "does not have a",
            "name is not recognized",
            "no matches to nameserver",
            "unbekannt",
            "inconnu",
        ],
    ),
    (
        Reason::Policy,
        &[
            "spam",
            "blocked",
            "blacklist",
            "blocklist",
            "denylist",
            "listed at",
            "listed in",
            "policy",
            "rejected for policy",
            "reputation",
            "dmarc",
            "spf",
            "dkim",
            "not permitted",
            "access denied",
            "relay access denied",
            "relaying denied",
            "not authorized",
            "unauthorized",
            "virus",
            "content rejected",
        ],
    ),
    (
        Reason::DnsOrRouting,
        &[
            "host not found",
            "host unknown",
            "unknown host",
            "domain not found",
            "no such domain",
            "domain does not exist",
            "name or service not known",
            "nxdomain",
            "no mx",
            "mx record",
            "connection refused",
            "connection timed out",
            "no route to host",
            "network is unreachable",
            "unroutable",
            "loops back to myself",
            "mail loop",
            "routing loop",
            "dns",
        ],
    ),
];

/// The reason a status code alone gives; `None` for generic codes that say nothing specific.
fn from_status(status: &str) -> Option<Reason> {
    let mut it = status.split('.');
    let class = it.next()?.trim();
    let subject = it.next()?.trim();
    let detail = it.next()?.trim();
    if !matches!(class, "4" | "5") {
        return None;
    }
    match (subject, detail) {
        ("1", "1") | ("1", "10") | ("1", "0") | ("1", "6") => Some(Reason::MailboxUnknown),
        ("2", "1") if class == "5" => Some(Reason::MailboxUnknown),
        ("2", "2") => Some(Reason::MailboxFull),
        ("3", "4") | ("2", "3") => Some(Reason::MessageTooBig),
        ("7", _) => Some(Reason::Policy),
        ("4", _) | ("1", "2") | ("1", "8") => Some(Reason::DnsOrRouting),
        _ => None,
    }
}

/// Codes whose meaning words may refine: the generic ones, and 5.1.0/5.2.1 which servers use
/// loosely for everything from unknown users to spam blocks.
fn is_vague(status: &str) -> bool {
    let s = status.trim();
    s.is_empty()
        || s.ends_with(".0.0")
        || matches!(
            s,
            "5.1.0" | "5.2.0" | "5.5.0" | "4.5.0" | "5.3.0" | "4.3.0" | "5.2.1"
        )
}

fn from_words(diagnostic: &str) -> Option<Reason> {
    let lower = diagnostic.to_lowercase();
    WORDS
        .iter()
        .find(|(_, words)| words.iter().any(|w| contains_word(&lower, w)))
        .map(|(r, _)| *r)
}

/// `needle` in `haystack` starting at a word boundary, so that "spf" does not match "spfx"
/// style noise inside longer tokens at the start ("dns" in "dnsbl" is still wanted).
fn contains_word(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(i, _)| {
        haystack[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric())
    })
}

/// See [`crate::classify`].
pub fn classify(status: &str, diagnostic: &str, temporary: bool) -> Reason {
    let by_code = from_status(status);
    let by_words = from_words(diagnostic);
    let reason = match (by_code, by_words) {
        (Some(code), Some(words)) if is_vague(status) => {
            // "5.1.0 ... spam" is a block, "5.1.0 ... unknown" an unknown user.
            if code == Reason::MailboxUnknown && words != Reason::MailboxUnknown {
                words
            } else {
                code
            }
        }
        (Some(code), _) => code,
        (None, Some(words)) => words,
        (None, None) => Reason::Unknown,
    };
    if temporary {
        // Not final yet, whatever the cause: the host must not count it as a hard bounce.
        // The cause stays visible in `status` and `diagnostic`.
        return Reason::DelayNotice;
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(classify("5.1.1", "", false), Reason::MailboxUnknown);
        assert_eq!(classify("5.1.10", "", false), Reason::MailboxUnknown);
        assert_eq!(classify("5.2.2", "", false), Reason::MailboxFull);
        assert_eq!(classify("5.3.4", "", false), Reason::MessageTooBig);
        assert_eq!(classify("5.2.3", "", false), Reason::MessageTooBig);
        assert_eq!(classify("5.7.1", "", false), Reason::Policy);
        assert_eq!(classify("5.4.4", "", false), Reason::DnsOrRouting);
        assert_eq!(classify("5.1.2", "", false), Reason::DnsOrRouting);
        assert_eq!(
            classify("4.4.1", "no answer from host", true),
            Reason::DelayNotice
        );
        assert_eq!(classify("", "", false), Reason::Unknown);
    }

    #[test]
    fn words_beat_generic_codes() {
        assert_eq!(
            classify("5.0.0", "550 User unknown", false),
            Reason::MailboxUnknown
        );
        assert_eq!(classify("5.7.1", "rejected as spam", false), Reason::Policy);
        assert_eq!(classify("", "mailbox full", false), Reason::MailboxFull);
        assert_eq!(classify("5.0.0", "over quota", false), Reason::MailboxFull);
        assert_eq!(
            classify("5.5.0", "listed at zen.spamhaus.org", false),
            Reason::Policy
        );
        assert_eq!(classify("", "Host not found", false), Reason::DnsOrRouting);
        assert_eq!(classify("5.1.0", "blocked", false), Reason::Policy);
        assert_eq!(
            classify("", "message too large", false),
            Reason::MessageTooBig
        );
        assert_eq!(classify("4.2.2", "mailbox full", true), Reason::DelayNotice);
        assert_eq!(classify("5.1.1", "spam", false), Reason::MailboxUnknown);
    }
}

//! Detectors for the non-standard bounce formats, one module per family of MTAs.
//!
//! Every detector waits for its MTA's own wording before it reads an address, and reads
//! addresses only where that MTA puts failed recipients, so that the bounce's sender, the
//! postmaster contact and the returned message never come out as recipients. Returned
//! messages attached as `message/rfc822` are not even shown to the detectors.

mod block;
mod exchange;
mod exim;
mod isp;
mod netscape;
mod qsbmf;
mod sendmail;
mod simple;
mod smtp32;

use crate::dsn::MAX_DIAGNOSTIC;
use crate::fields::{find_status, floor_char_boundary, one_line};
use crate::mime::{Headers, Mime};
use crate::{Recipient, address, classify};

/// Lines past this are never part of an MTA's failure summary; the cap keeps hostile input
/// cheap (each detector is one pass over at most this many lines).
const MAX_LINES: usize = 5000;
/// Longer lines are cut for matching: no failure summary needs more.
const MAX_LINE: usize = 2000;

/// One line of the bounce's own text, with an ASCII-lower-cased copy at the same byte offsets.
pub struct Line {
    pub text: String,
    pub lower: String,
    /// Which text part the line comes from: a block never runs into the next part.
    pub part: usize,
}

/// What a detector sees.
pub struct Ctx<'m> {
    pub headers: &'m Headers,
    pub lines: Vec<Line>,
}

impl Ctx<'_> {
    /// The sender's address, lower-cased, for detectors keyed to one provider.
    pub fn from(&self) -> String {
        self.headers
            .get("from")
            .and_then(address::from_header)
            .unwrap_or_default()
            .to_ascii_lowercase()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).unwrap_or("")
    }

    /// Index of the first line containing a lower-case `phrase`.
    pub fn find(&self, phrase: &str) -> Option<usize> {
        self.lines.iter().position(|l| l.lower.contains(phrase))
    }
}

/// A failed address as a detector found it.
#[derive(Debug, Clone)]
pub struct Found {
    pub address: String,
    pub diagnostic: String,
    pub temporary: bool,
}

impl Found {
    pub fn new(address: String, diagnostic: &str, temporary: bool) -> Self {
        Found {
            address,
            diagnostic: one_line(diagnostic, MAX_DIAGNOSTIC),
            temporary,
        }
    }
}

/// A detector: the format name it recognised and what it found, or `None`.
type Detector = fn(&Ctx<'_>) -> Option<(&'static str, Vec<Found>)>;

/// Most specific first: the provider- and MTA-keyed detectors, then the phrase table.
const DETECTORS: &[Detector] = &[
    smtp32::detect,
    isp::yahoo,
    isp::sina,
    isp::aol,
    isp::yale,
    isp::llnl,
    qsbmf::postfix,
    qsbmf::qmail,
    exim::detect,
    sendmail::detect,
    exchange::detect,
    netscape::detect,
    simple::detect,
];

/// The first detector that recognises the message, with its name and the failed recipients.
pub fn detect(mime: &Mime<'_>) -> Option<(&'static str, Vec<Recipient>)> {
    let top = mime.top()?;
    let ctx = Ctx {
        headers: &top.headers,
        lines: collect_lines(mime),
    };
    for detector in DETECTORS {
        let Some((name, found)) = detector(&ctx) else {
            continue;
        };
        if found.is_empty() {
            continue;
        }
        let warning = is_warning(&ctx);
        let recipients = found
            .into_iter()
            .map(|f| to_recipient(f, warning))
            .collect();
        return Some((name, recipients));
    }
    None
}

fn to_recipient(f: Found, warning: bool) -> Recipient {
    let temporary = f.temporary || warning;
    let status = find_status(&f.diagnostic)
        .filter(|s| !s.starts_with('2'))
        .unwrap_or_default();
    Recipient {
        reason: classify(&status, &f.diagnostic, temporary),
        address: f.address,
        action: if temporary { "delayed" } else { "failed" }.to_string(),
        status,
        diagnostic: f.diagnostic,
        temporary,
        final_recipient: None,
    }
}

/// Wording of "not delivered yet, still trying", looked for near the top of the text only:
/// further down is the returned message, which may say anything.
const WARNINGS: &[&str] = &[
    "this is just a warning",
    "this is a warning message only",
    "delivery attempts will continue",
    "will continue to attempt delivery",
    "will continue to try to deliver",
    "message will be retried",
    "no action is required on your part",
    "has been postponed",
    "has not yet been delivered",
    "has been delayed",
];

fn is_warning(ctx: &Ctx<'_>) -> bool {
    ctx.lines
        .iter()
        .take(60)
        .any(|l| WARNINGS.iter().any(|w| l.lower.contains(w)))
}

/// The text the MTA wrote: every textual leaf outside returned messages, in order.
fn collect_lines(mime: &Mime<'_>) -> Vec<Line> {
    let mut out = Vec::new();
    for (part, p) in mime.report_texts().enumerate() {
        let text = p.text();
        for raw in text.lines() {
            if out.len() >= MAX_LINES {
                return out;
            }
            // Lines holding only quoted-printable whitespace from generators that forgot to
            // declare the encoding are blank.
            let blank = raw.split_whitespace().all(|w| w == "=09" || w == "=20");
            let mut text = if blank {
                String::new()
            } else {
                raw.trim_end().to_string()
            };
            text.truncate(floor_char_boundary(&text, MAX_LINE));
            let lower = text.to_ascii_lowercase();
            out.push(Line { text, lower, part });
        }
    }
    out
}

/// Every occurrence of the block, under the format name `name`; `None` when nothing was found.
pub fn block(
    ctx: &Ctx<'_>,
    name: &'static str,
    b: &block::Block,
) -> Option<(&'static str, Vec<Found>)> {
    let found = block::run(ctx, b);
    (!found.is_empty()).then_some((name, found))
}

/// The address in the first word after `phrase` (lower-case) on `line`.
pub fn word_after(line: &Line, phrase: &str) -> Option<String> {
    let at = line.lower.find(phrase)? + phrase.len();
    address::first_word(line.text.get(at..)?)
}

#[cfg(test)]
mod tests {
    use crate::parse;

    fn addresses(raw: &str) -> Vec<String> {
        parse(raw.as_bytes())
            .map(|r| r.recipients.into_iter().map(|r| r.address).collect())
            .unwrap_or_default()
    }

    #[test]
    fn postfix_text_only_takes_paragraph_addresses() {
        let raw = "From: MAILER-DAEMON@mx.example.org\nSubject: Undelivered Mail\n\n\
This is the Postfix program at host mx.example.org.\n\n\
For further assistance, please contact <postmaster@example.org>\n\n\
<gone@example.net>: host mx.example.net said: 550 5.1.1 no such user\n\n\
--- Undelivered message follows\n\n\
To: <someone@example.com>\n\
<quoted@example.com>: not a failure\n";
        assert_eq!(addresses(raw), ["gone@example.net"]);
        let r = parse(raw.as_bytes()).unwrap();
        assert_eq!(r.format, "postfix");
        assert_eq!(r.recipients[0].status, "5.1.1");
        assert_eq!(r.recipients[0].reason, crate::Reason::MailboxUnknown);
    }

    #[test]
    fn exim_header_is_authoritative() {
        // A literal with real line breaks: Exim's indentation is part of the format.
        let raw = "From: Mail Delivery System <Mailer-Daemon@mx.example.org>
X-Failed-Recipients: full@example.net
Subject: Mail delivery failed

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  full@example.net
    host mx.example.net [192.0.2.1]
    SMTP error from remote mail server after RCPT TO:<full@example.net>:
    552 5.2.2 mailbox full, contact admin@example.net
  other@example.org
    (generated from alias@example.com)

------ This is a copy of the message, including all the headers. ------
From: list@lists.example.com
To: full@example.net
";
        let r = parse(raw.as_bytes()).unwrap();
        assert_eq!(r.format, "exim");
        assert_eq!(addresses(raw), ["full@example.net"]);
        assert_eq!(r.recipients[0].status, "5.2.2");
        assert_eq!(r.recipients[0].reason, crate::Reason::MailboxFull);
        let without_header = raw.replace("X-Failed-Recipients: full@example.net\n", "");
        assert_eq!(
            addresses(&without_header),
            ["full@example.net", "other@example.org", "alias@example.com"]
        );
    }

    #[test]
    fn exim_delay_warning_is_temporary() {
        let raw = "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\n\
Subject: Warning: message delayed\n\n\
This message was created automatically by mail delivery software.\n\
A message that you sent has not yet been delivered to one or more of\n\
its recipients after more than 24 hours on the queue.\n\n\
The message has not yet been delivered to the following addresses:\n\n\
  <slow@example.net>\n    host mx.example.net: connection timed out\n\n\
No action is required on your part.\n";
        let r = parse(raw.as_bytes()).unwrap();
        assert_eq!(addresses(raw), ["slow@example.net"]);
        assert!(r.recipients[0].temporary);
        assert_eq!(r.recipients[0].action, "delayed");
        assert_eq!(r.recipients[0].reason, crate::Reason::DelayNotice);
    }
}

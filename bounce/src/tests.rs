//! Whole-parser tests: plain mail is not a bounce, and hostile input ends quickly and
//! without a panic. Format-specific tests live next to each format.

use std::time::{Duration, Instant};

use crate::{MAX_INPUT, parse};

/// Generous for a debug build on a slow machine; a quadratic path blows through it by orders
/// of magnitude.
const BUDGET: Duration = Duration::from_secs(10);

fn timed(name: &str, raw: &[u8]) -> Option<crate::Report> {
    let start = Instant::now();
    let report = parse(raw);
    let took = start.elapsed();
    assert!(took < BUDGET, "{name}: took {took:?}");
    if let Some(r) = &report {
        assert!(
            r.recipients.len() <= crate::MAX_RECIPIENTS,
            "{name}: too many recipients"
        );
    }
    report
}

#[test]
fn plain_message_is_not_a_report() {
    let raw = b"From: Alice <alice@example.org>\r\nTo: list@lists.example.com\r\n\
Subject: Meeting notes\r\nMessage-ID: <abc@example.org>\r\n\r\n\
Hi all, the notes are attached. Write to bob@example.net with questions.\r\n\
<carol@example.com>: she will chair.\r\n";
    assert!(parse(raw).is_none());
    assert!(parse(b"").is_none());
    assert!(parse(b"\r\n\r\n").is_none());
}

#[test]
fn one_mebibyte_single_line() {
    let mut raw = b"Subject: x\n\n".to_vec();
    raw.extend(std::iter::repeat_n(b'a', MAX_INPUT));
    assert!(timed("letters", &raw).is_none());
    let line: Vec<u8> = b"<a@b.example>: &&<<x "
        .iter()
        .copied()
        .cycle()
        .take(MAX_INPUT + 10)
        .collect();
    timed("punctuation", &line);
    let mut header = b"X-Failed-Recipients: ".to_vec();
    header.extend(b"u@example.com, ".iter().cycle().take(2 * MAX_INPUT));
    timed("long header", &header);
    let mut html = b"Content-Type: text/html\n\n".to_vec();
    html.extend(b"<&".iter().cycle().take(MAX_INPUT));
    timed("html", &html);
}

#[test]
fn many_lines_of_addresses() {
    let mut raw = b"From: MAILER-DAEMON@example.org\nSubject: failure\n\n\
Hi. This is the qmail-send program at example.org.\n\n"
        .to_vec();
    let mut i = 0;
    while raw.len() < MAX_INPUT {
        raw.extend(format!("<user{i}@example.com>:\nSorry.\n").bytes());
        i += 1;
    }
    let r = timed("qmail lines", &raw).unwrap();
    assert_eq!(r.recipients.len(), crate::MAX_RECIPIENTS);

    let mut dsn = b"Content-Type: multipart/report; boundary=b\n\n--b\n\
Content-Type: message/delivery-status\n\n"
        .to_vec();
    while dsn.len() < MAX_INPUT {
        dsn.extend(b"Final-Recipient: rfc822; x@example.com\nAction: failed\nX-A: 1\n");
    }
    timed("dsn fields", &dsn);
}

#[test]
fn deep_nesting() {
    let mut raw = Vec::new();
    for i in 0..5000 {
        raw.extend(format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n").bytes());
    }
    raw.extend(b"\nFinal-Recipient: rfc822; deep@example.com\nAction: failed\n");
    timed("nested multiparts", &raw);

    let mut raw = Vec::new();
    for _ in 0..5000 {
        raw.extend(b"Content-Type: message/rfc822\n\n");
    }
    timed("nested messages", &raw);
}

#[test]
fn many_parts() {
    let mut raw = b"Content-Type: multipart/report; boundary=b\n\n".to_vec();
    for _ in 0..10_000 {
        raw.extend(b"--b\nContent-Type: message/delivery-status\n\nAction: failed\n\n");
    }
    timed("10,000 parts", &raw);
}

#[test]
fn random_bytes_and_bad_charsets() {
    // xorshift: deterministic, no dependency.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..200 {
        let len = (next() % 65_536) as usize;
        let mut raw: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 {
            // Random bytes behind plausible structure reach the deeper code.
            let mut framed = b"Content-Type: multipart/report; boundary=z\n\n--z\n\
Content-Type: text/plain; charset=x-unknown-charset\nContent-Transfer-Encoding: base64\n\n"
                .to_vec();
            framed.append(&mut raw);
            framed.extend(b"\n--z\nContent-Type: message/delivery-status\n\n");
            framed.extend((0..512).map(|_| next() as u8));
            raw = framed;
        }
        timed("random", &raw);
    }
    let raw = b"Content-Type: text/plain; charset=\"iso-2022-jp\xff\xfe\"\n\
Content-Transfer-Encoding: quoted-printable\n\n\
Hi. This is the qmail-send program at x.\n\n<\xc3\x28@example.com>:\n=ZZ\n<ok@example.com>:\n";
    let r = timed("bad charset", raw).unwrap();
    assert_eq!(r.recipients.len(), 1);
    assert_eq!(r.recipients[0].address, "ok@example.com");
}

#[test]
fn input_is_truncated() {
    let mut raw = b"Subject: x\n\n".to_vec();
    raw.extend(std::iter::repeat_n(b'\n', MAX_INPUT));
    raw.extend(b"X-Failed-Recipients: late@example.com\n");
    assert!(parse(&raw).is_none());
}

#[test]
fn from_delivery_reports() {
    let r = crate::from_delivery("a@example.com", 550, "5.1.1", "No such user", false);
    assert_eq!(r.format, "smtp-reply");
    assert_eq!(r.recipients[0].reason, crate::Reason::MailboxUnknown);
    assert!(!r.recipients[0].temporary);
    let r = crate::from_delivery("a@example.com", 451, "", "try later", false);
    assert!(r.recipients[0].temporary);
    assert_eq!(r.recipients[0].reason, crate::Reason::DelayNotice);
    let r = crate::from_delivery("a@example.com", 451, "4.4.1", "timeout", true);
    assert_eq!(r.format, "expiry");
    assert!(!r.recipients[0].temporary);
    assert_eq!(r.recipients[0].reason, crate::Reason::DnsOrRouting);
}

/// A NUL or other control character in a DSN's words never reaches the report: a database
/// text column refuses NUL, and one such value used to fail a whole batch of decisions.
#[test]
fn control_characters_are_taken_out() {
    let raw = b"From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
Final-Recipient: rfc822; x@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 no\x00such\x01user\x7f here\r\n\r\n--B--\r\n";
    let report = timed("nul", raw).expect("a report");
    let diagnostic = &report.recipients[0].diagnostic;
    assert_eq!(diagnostic, "550 5.1.1 no such user here");
}

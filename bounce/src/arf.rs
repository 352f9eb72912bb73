//! ARF (RFC 5965) abuse reports: a recipient pressed "this is spam".
//!
//! The complaining recipient is named by `Original-Rcpt-To` when the provider includes it
//! (rarely: it is optional and often redacted), otherwise by the `To` header of the returned
//! message, which for list mail sent one-per-recipient is the subscriber. With neither, the
//! complaint is reported for an empty address.

use crate::fields::{one_line, records};
use crate::mime::Mime;
use crate::{Reason, Recipient, address};

/// Recipients of the first `message/feedback-report` part; `None` when there is none.
pub fn parse(mime: &Mime<'_>) -> Option<Vec<Recipient>> {
    let part = mime
        .parts
        .iter()
        .find(|p| !p.returned && p.content_type.is("message", "feedback-report"))?;
    let text = part.text();
    let fields = records(&text);
    let get = |name: &str| fields.iter().find_map(|r| r.get(name));
    let feedback_type = get("feedback-type")
        .map(|t| one_line(t, 64))
        .unwrap_or_default();
    let mut addresses: Vec<String> = fields
        .iter()
        .flat_map(|r| r.get_all("original-rcpt-to"))
        .filter_map(|v| address::clean(crate::fields::strip_type(v)))
        .take(crate::MAX_RECIPIENTS)
        .collect();
    if addresses.is_empty()
        && let Some(headers) = mime.returned_headers()
    {
        addresses = headers
            .get_all("to")
            .flat_map(address::list_from_header)
            .take(crate::MAX_RECIPIENTS)
            .collect();
    }
    let diagnostic = if feedback_type.is_empty() {
        "feedback-report".to_string()
    } else {
        format!("feedback-type: {feedback_type}")
    };
    // A provider that removed every address still reported a complaint: one recipient with
    // no address, which the host pins on the copy through the VERP token it came back to.
    if addresses.is_empty() {
        addresses.push(String::new());
    }
    let mut out: Vec<Recipient> = Vec::new();
    for a in addresses {
        if out.iter().any(|r| r.address.eq_ignore_ascii_case(&a)) {
            continue;
        }
        out.push(Recipient {
            address: a,
            action: "complained".to_string(),
            status: String::new(),
            diagnostic: diagnostic.clone(),
            temporary: false,
            reason: Reason::Complaint,
            final_recipient: None,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use crate::{Reason, parse};

    const ARF: &str = "From: feedback@isp.example\n\
To: abuse@lists.example.com\n\
Subject: complaint\n\
MIME-Version: 1.0\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"part\"\n\
\n\
--part\n\
Content-Type: text/plain\n\
\n\
This is an email abuse report.\n\
--part\n\
Content-Type: message/feedback-report\n\
\n\
Feedback-Type: abuse\n\
User-Agent: SomeGenerator/1.0\n\
Version: 1\n\
Original-Mail-From: <list-bounces@lists.example.com>\n\
Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT\n\
Reported-Domain: lists.example.com\n\
--part\n\
Content-Type: message/rfc822\n\
\n\
From: <list@lists.example.com>\n\
To: \"Jane\" <Jane.Doe@isp.example>\n\
Message-ID: <8787KJKJ3K4J3K4J3K4J3.mail@lists.example.com>\n\
Subject: news\n\
\n\
Hello.\n\
--part--\n";

    #[test]
    fn complaint() {
        let r = parse(ARF.as_bytes()).unwrap();
        assert_eq!(r.format, "arf");
        assert!(r.is_bounce());
        assert_eq!(r.recipients.len(), 1);
        let rcpt = &r.recipients[0];
        assert_eq!(rcpt.address, "Jane.Doe@isp.example");
        assert_eq!(rcpt.action, "complained");
        assert_eq!(rcpt.reason, Reason::Complaint);
        assert!(!rcpt.temporary);
        assert_eq!(
            r.original_message_id.as_deref(),
            Some("8787KJKJ3K4J3K4J3K4J3.mail@lists.example.com")
        );
    }

    #[test]
    fn a_redacted_complaint_names_nobody_but_is_one() {
        let raw = ARF.replace("To: \"Jane\" <Jane.Doe@isp.example>\n", "");
        let r = parse(raw.as_bytes()).unwrap();
        assert!(r.is_bounce());
        assert_eq!(r.recipients.len(), 1);
        assert_eq!(r.recipients[0].address, "");
        assert_eq!(r.recipients[0].reason, Reason::Complaint);
    }

    #[test]
    fn original_rcpt_to_wins() {
        let raw = ARF.replace(
            "Reported-Domain",
            "Original-Rcpt-To: <real@isp.example>\nReported-Domain",
        );
        let r = parse(raw.as_bytes()).unwrap();
        assert_eq!(r.recipients.len(), 1);
        assert_eq!(r.recipients[0].address, "real@isp.example");
    }
}

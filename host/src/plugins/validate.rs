//! The host's check of what a plugin answers. A plugin is untrusted: an answer that would
//! produce a broken or dangerous message (header injection, a "rejection" with code 250, a
//! gigabyte footer) fails the call instead of being acted on.

use super::bindings::roost::list::types::{
    CommandReply, Edit, Header, HttpResponse, Manifest, PostResult, Verdict,
};

const MAX_EDITS: usize = 1_000;
const MAX_TEXT: usize = 1_000;
const MAX_FOOTER: usize = 64 << 10;
const MAX_BODY: usize = 64 << 20;
const MAX_LINKS: usize = 10_000;
const MAX_REPLY: usize = 256 << 10;
const MAX_HTTP_BODY: usize = 16 << 20;

pub(super) fn manifest(m: &Manifest) -> Result<(), String> {
    let name_ok = !m.name.is_empty()
        && m.name.len() <= 64
        && m.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(format!(
            "name `{}` must be 1-64 letters, digits, `-` or `_`",
            m.name.escape_debug()
        ));
    }
    if m.version.is_empty() || m.version.len() > 64 || m.version.chars().any(char::is_control) {
        return Err("version must be 1-64 printable characters".into());
    }
    for (i, s) in m.schedules.iter().enumerate() {
        if s.name.is_empty() || s.name.len() > 64 || s.every_seconds == 0 {
            return Err(format!(
                "schedule {i} needs a name (1-64 chars) and every-seconds > 0"
            ));
        }
        if m.schedules[..i].iter().any(|o| o.name == s.name) {
            return Err(format!("schedule `{}` is declared twice", s.name));
        }
    }
    Ok(())
}

pub(super) fn post_result(r: &PostResult) -> Result<(), String> {
    match &r.verdict {
        Verdict::Continue | Verdict::Accept => {}
        Verdict::Hold(reason) | Verdict::Discard(reason) => line(reason, "reason")?,
        Verdict::Reject(j) => {
            if !(400..=599).contains(&j.code) {
                return Err(format!("reject code {} is not a 4xx or 5xx reply", j.code));
            }
            if !j.enhanced.is_empty() && !enhanced_status(&j.enhanced, j.code) {
                return Err(format!(
                    "enhanced status `{}` does not fit code {} (want e.g. {}.7.1)",
                    j.enhanced.escape_debug(),
                    j.code,
                    j.code / 100
                ));
            }
            line(&j.text, "reject text")?;
        }
    }
    edits(&r.edits)
}

pub(super) fn edits(edits: &[Edit]) -> Result<(), String> {
    if edits.len() > MAX_EDITS {
        return Err(format!("{} edits (at most {MAX_EDITS})", edits.len()));
    }
    let mut links = 0usize;
    for edit in edits {
        match edit {
            Edit::AddHeader(h) | Edit::SetHeader(h) => header(h)?,
            Edit::RemoveHeader(name) => header_name(name)?,
            Edit::SubjectPrefix(p) => line(p, "subject prefix")?,
            Edit::AppendFooter(f) => {
                let size = f.text.len() + f.html.as_ref().map_or(0, String::len);
                if size > MAX_FOOTER {
                    return Err(format!("footer of {size} bytes (at most {MAX_FOOTER})"));
                }
            }
            Edit::ReplaceBody(b) if b.len() > MAX_BODY => {
                return Err(format!(
                    "replacement body of {} bytes (at most {MAX_BODY})",
                    b.len()
                ));
            }
            Edit::ReplaceBody(_) => {}
            Edit::TrackLink(url) => {
                links += 1;
                let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
                if !scheme_ok || url.len() > 4096 || url.chars().any(|c| c.is_control() || c == ' ')
                {
                    return Err(format!(
                        "tracked link `{}` is not an http(s) URL",
                        url.escape_debug()
                    ));
                }
            }
        }
    }
    if links > MAX_LINKS {
        return Err(format!("{links} tracked links (at most {MAX_LINKS})"));
    }
    Ok(())
}

pub(super) fn command_reply(r: &CommandReply) -> Result<(), String> {
    match r {
        CommandReply::Reply(text) if text.len() > MAX_REPLY => Err(format!(
            "reply of {} bytes (at most {MAX_REPLY})",
            text.len()
        )),
        _ => Ok(()),
    }
}

pub(super) fn http_response(r: &HttpResponse) -> Result<(), String> {
    if !(100..=599).contains(&r.status) {
        return Err(format!("HTTP status {} is out of range", r.status));
    }
    for h in &r.headers {
        header(h)?;
    }
    if r.body.len() > MAX_HTTP_BODY {
        return Err(format!(
            "HTTP body of {} bytes (at most {MAX_HTTP_BODY})",
            r.body.len()
        ));
    }
    Ok(())
}

/// One line of human text: no CR/LF (which would inject SMTP or header lines), bounded.
fn line(text: &str, what: &str) -> Result<(), String> {
    if text.len() > MAX_TEXT {
        return Err(format!(
            "{what} of {} bytes (at most {MAX_TEXT})",
            text.len()
        ));
    }
    if text.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(format!(
            "{what} `{}` contains a line break or NUL",
            text.escape_debug()
        ));
    }
    Ok(())
}

/// RFC 5322 field name: printable US-ASCII except `:`.
fn header_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 76
        && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a header field name",
            name.escape_debug()
        ))
    }
}

fn header(h: &Header) -> Result<(), String> {
    header_name(&h.name)?;
    if h.value.len() > 998 || h.value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(format!(
            "value of header `{}` contains a line break or is longer than 998 bytes",
            h.name
        ));
    }
    Ok(())
}

/// `class.subject.detail` (RFC 3463) whose class matches the reply code's first digit.
fn enhanced_status(s: &str, code: u16) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[0] == (code / 100).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::bindings::roost::list::types::Rejection;

    fn reject(code: u16, enhanced: &str, text: &str) -> PostResult {
        PostResult {
            verdict: Verdict::Reject(Rejection {
                code,
                enhanced: enhanced.into(),
                text: text.into(),
            }),
            edits: vec![],
        }
    }

    #[test]
    fn rejections_must_be_real_smtp_failures() {
        assert!(post_result(&reject(550, "5.7.1", "no")).is_ok());
        assert!(post_result(&reject(451, "", "later")).is_ok());
        assert!(post_result(&reject(250, "2.0.0", "ok")).is_err());
        assert!(post_result(&reject(550, "4.7.1", "no")).is_err());
        assert!(post_result(&reject(550, "5.7.1", "no\r\nRCPT TO:<x>")).is_err());
    }

    #[test]
    fn headers_cannot_inject_lines() {
        let h = |n: &str, v: &str| {
            Edit::AddHeader(Header {
                name: n.into(),
                value: v.into(),
            })
        };
        assert!(edits(&[h("X-Ok", "fine")]).is_ok());
        assert!(edits(&[h("Bad Name", "v")]).is_err());
        assert!(edits(&[h("X-A", "v\r\nBcc: victim@example.org")]).is_err());
        assert!(edits(&[h("X:A", "v")]).is_err());
        assert!(edits(&[Edit::TrackLink("javascript:alert(1)".into())]).is_err());
    }
}

//! Conveniences over the generated types: builders for results, header lookup, config.

use serde::de::DeserializeOwned;

use crate::{
    Edit, Header, HttpResponse, Message, PostResult, Rejection, Verdict, bindings::roost::list,
};

/// Read this plugin's table from the list's TOML file into `T`.
///
/// The host passes the table without its `use` key. Use `#[serde(deny_unknown_fields)]` on
/// `T` so a misspelt key is an error the node reports at start, not a silent default.
pub fn config<T: DeserializeOwned>() -> Result<T, String> {
    parse_config(&list::config::get())
}

/// Parse a plugin table given as TOML text; the error is one line naming the key.
pub fn parse_config<T: DeserializeOwned>(raw: &str) -> Result<T, String> {
    toml::from_str(raw).map_err(|e| e.message().trim().to_string())
}

/// The config of a plugin that takes no keys: any key is an error.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

impl Message {
    /// The first header field of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The subject, or "" when the post has none.
    pub fn subject(&self) -> &str {
        self.header("subject").unwrap_or("")
    }

    /// The author's address from `From:` (the part in angle brackets when there is one).
    pub fn from_address(&self) -> Option<&str> {
        let from = self.header("from")?;
        let addr = match (from.rfind('<'), from.rfind('>')) {
            (Some(start), Some(end)) if start < end => &from[start + 1..end],
            _ => from,
        };
        Some(addr.trim())
    }
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl PostResult {
    fn with(verdict: Verdict) -> Self {
        PostResult {
            verdict,
            edits: Vec::new(),
        }
    }

    /// No decision: the next plugin runs.
    pub fn next() -> Self {
        Self::with(Verdict::Continue)
    }

    /// Accept now; later plugins do not run.
    pub fn accept() -> Self {
        Self::with(Verdict::Accept)
    }

    /// Hold for a moderator.
    pub fn hold(reason: impl Into<String>) -> Self {
        Self::with(Verdict::Hold(reason.into()))
    }

    /// Refuse with an SMTP code (4xx or 5xx), an enhanced status and text.
    pub fn reject(code: u16, enhanced: impl Into<String>, text: impl Into<String>) -> Self {
        Self::with(Verdict::Reject(Rejection {
            code,
            enhanced: enhanced.into(),
            text: text.into(),
        }))
    }

    /// Drop silently.
    pub fn discard(reason: impl Into<String>) -> Self {
        Self::with(Verdict::Discard(reason.into()))
    }

    /// Add an edit, applied by the host in order.
    pub fn edit(mut self, edit: Edit) -> Self {
        self.edits.push(edit);
        self
    }
}

impl HttpResponse {
    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        HttpResponse {
            status,
            headers: vec![Header::new("content-type", "text/plain; charset=utf-8")],
            body: body.into().into_bytes(),
        }
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters; case is
/// ignored (sender addresses, media types, links in plugin configs).
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    let pieces: Vec<&str> = p.split('*').collect();
    if pieces.len() == 1 {
        return p == t;
    }
    let mut rest = t.as_str();
    for (i, piece) in pieces.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(piece) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == pieces.len() - 1 {
            return rest.ends_with(piece);
        } else {
            match rest.find(piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Envelope;

    fn message(headers: &[(&str, &str)]) -> Message {
        Message {
            id: "1".into(),
            list_address: "l@example.org".into(),
            envelope: Envelope {
                mail_from: String::new(),
                rcpt_to: vec![],
                client_ip: String::new(),
                helo: String::new(),
            },
            headers: headers.iter().map(|(n, v)| Header::new(*n, *v)).collect(),
            body: Vec::new(),
            size: 0,
            received_at: 0,
        }
    }

    #[test]
    fn header_lookup_ignores_case() {
        let m = message(&[("Subject", "hi"), ("FROM", "Ann <ann@example.org>")]);
        assert_eq!(m.header("subject"), Some("hi"));
        assert_eq!(m.from_address(), Some("ann@example.org"));
        assert_eq!(message(&[]).subject(), "");
    }

    #[test]
    fn config_errors_name_the_key() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct C {
            tag: String,
        }
        let err = parse_config::<C>("tagg = \"x\"").unwrap_err();
        assert!(err.contains("tagg"), "{err}");
        assert_eq!(parse_config::<C>("tag = \"x\"").unwrap().tag, "x");
        assert!(parse_config::<NoConfig>("a = 1").is_err());
    }

    #[test]
    fn builders_set_verdicts() {
        let r = PostResult::reject(550, "5.7.1", "no").edit(Edit::RemoveHeader("x".into()));
        assert!(matches!(r.verdict, Verdict::Reject(ref j) if j.code == 550));
        assert_eq!(r.edits.len(), 1);
    }

    #[test]
    fn patterns() {
        use super::pattern_matches as m;
        assert!(m("*@example.org", "Ann@Example.org"));
        assert!(m("ann@*", "ann@x.y"));
        assert!(m("application/*exe*", "application/x-msexecutable"));
        assert!(!m("*@example.org", "ann@example.org.evil"));
        assert!(m("exact@x.y", "EXACT@x.y"));
        assert!(!m("a*b*c", "acb"));
    }
}

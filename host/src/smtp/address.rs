//! Which list address a recipient is (DESIGN §3). Anything else is refused at RCPT, so Roost
//! is never an open relay.

use std::collections::HashSet;

use crate::{config::ListConfig, store::MessageKind};

/// A recipient that belongs to a list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The list's posting address.
    pub list: String,
    pub kind: MessageKind,
    /// The `+TOKEN` part of `-bounces+TOKEN@` and `-confirm+TOKEN@`.
    pub token: Option<String>,
}

/// Every list's posting address (lower-cased `local@domain`).
#[derive(Debug, Default)]
pub struct Directory {
    lists: HashSet<String>,
}

impl Directory {
    pub fn new(lists: &[ListConfig]) -> Self {
        Directory {
            lists: lists.iter().map(|l| l.address.clone()).collect(),
        }
    }

    /// The list target of `address`, if it is one of a list's addresses.
    pub fn classify(&self, address: &str) -> Option<Target> {
        let address = address.trim().to_ascii_lowercase();
        let (local, domain) = address.rsplit_once('@')?;
        let (base, token) = match local.split_once('+') {
            Some((b, t)) if !t.is_empty() => (b, Some(t.to_string())),
            Some(_) => return None,
            None => (local, None),
        };
        let find = |name: &str| Some(format!("{name}@{domain}")).filter(|a| self.lists.contains(a));
        let suffixed = |suffix: &str| base.strip_suffix(suffix).and_then(find);
        let (list, kind) = match &token {
            // Tokens only ever follow the two addresses that carry them.
            Some(_) => suffixed("-bounces")
                .map(|l| (l, MessageKind::Bounce))
                .or_else(|| suffixed("-confirm").map(|l| (l, MessageKind::Confirm)))?,
            None => find(base)
                .map(|l| (l, MessageKind::Post))
                .or_else(|| suffixed("-request").map(|l| (l, MessageKind::Request)))
                .or_else(|| suffixed("-owner").map(|l| (l, MessageKind::Owner)))
                .or_else(|| suffixed("-bounces").map(|l| (l, MessageKind::Bounce)))?,
        };
        Some(Target { list, kind, token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Directory {
        Directory {
            lists: ["news@lists.example.org".to_string()].into(),
        }
    }

    #[test]
    fn list_addresses_are_recognised() {
        let d = dir();
        let t = |a: &str| d.classify(a).map(|t| (t.kind, t.token));
        assert_eq!(t("news@lists.example.org"), Some((MessageKind::Post, None)));
        assert_eq!(t("NEWS@Lists.Example.org"), Some((MessageKind::Post, None)));
        assert_eq!(
            t("news-request@lists.example.org"),
            Some((MessageKind::Request, None))
        );
        assert_eq!(
            t("news-owner@lists.example.org"),
            Some((MessageKind::Owner, None))
        );
        assert_eq!(
            t("news-bounces+abc@lists.example.org"),
            Some((MessageKind::Bounce, Some("abc".into())))
        );
        assert_eq!(
            t("news-confirm+x1@lists.example.org"),
            Some((MessageKind::Confirm, Some("x1".into())))
        );
    }

    #[test]
    fn everything_else_is_refused() {
        let d = dir();
        for a in [
            "news@example.org",
            "other@lists.example.org",
            "news+x@lists.example.org",
            "news-request+x@lists.example.org",
            "news-confirm@lists.example.org",
            "news-bounces+@lists.example.org",
            "postmaster@lists.example.org",
            "news",
            "",
        ] {
            assert_eq!(d.classify(a), None, "{a}");
        }
    }
}

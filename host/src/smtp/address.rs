//! Which list address a recipient is (README, "How mail is taken in"). Anything else is refused at RCPT, so Roost
//! is never an open relay.

use std::collections::HashSet;

use crate::{
    config::ListConfig,
    store::MessageKind,
    tokens::{Purpose, TokenKey},
};

/// A recipient that belongs to a list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The list's posting address.
    pub list: String,
    pub kind: MessageKind,
    /// The `+TOKEN` part of `-bounces+TOKEN@` and `-confirm+TOKEN@`.
    pub token: Option<String>,
}

/// Every list's posting address (lower-cased `local@domain`), and the key that signs the
/// tokens of its `-bounces+` and `-confirm+` addresses.
#[derive(Debug, Default)]
pub struct Directory {
    lists: HashSet<String>,
    keys: Option<TokenKey>,
}

impl Directory {
    pub fn new(lists: &[ListConfig], keys: Option<TokenKey>) -> Self {
        Directory {
            lists: lists.iter().map(|l| l.address.clone()).collect(),
            keys,
        }
    }

    /// Whether a target's token is one we signed (for its kind of address). Checked at
    /// RCPT, so mail to a made-up token is refused before its DATA is read or stored: any
    /// number of such addresses once cost a stored copy each.
    pub fn token_verifies(&self, target: &Target) -> bool {
        let (Some(keys), Some(token)) = (&self.keys, &target.token) else {
            return true;
        };
        let purpose = match target.kind {
            MessageKind::Bounce => Purpose::Verp,
            MessageKind::Confirm => Purpose::Confirm,
            _ => return false,
        };
        keys.verify(purpose, token).is_some()
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
            keys: None,
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

    #[test]
    fn tokens_must_verify_for_their_address() {
        let keys = TokenKey::new(b"0123456789abcdef0123456789abcdef");
        let d = Directory {
            keys: Some(keys.clone()),
            ..dir()
        };
        let verp = keys.sign(Purpose::Verp, &[7, 9]);
        let confirm = keys.sign(Purpose::Confirm, &[1, 2]);
        let ok = |a: &str| d.token_verifies(&d.classify(a).unwrap());
        assert!(ok("news@lists.example.org"));
        assert!(ok("news-bounces@lists.example.org"));
        assert!(ok(&format!("news-bounces+{verp}@lists.example.org")));
        assert!(ok(&format!("news-confirm+{confirm}@lists.example.org")));
        // Made up, altered, or signed for the other address.
        assert!(!ok("news-bounces+abcdefgh@lists.example.org"));
        assert!(!ok(&format!("news-bounces+{confirm}@lists.example.org")));
        assert!(!ok(&format!("news-confirm+{verp}@lists.example.org")));
        let mut altered = verp.clone();
        altered.replace_range(0..1, if verp.starts_with('a') { "b" } else { "a" });
        assert!(!ok(&format!("news-bounces+{altered}@lists.example.org")));
    }
}

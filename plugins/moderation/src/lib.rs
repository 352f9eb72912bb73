//! moderation: who may post, what a post may carry, and what happens to the rest.
//!
//! ```toml
//! [[plugin]]
//! use = "moderation"
//! members = "accept"        # accept | hold | reject | discard
//! nonmembers = "hold"
//! moderated = "hold"        # members whose moderated flag is set
//! allow = ["*@example.org"] # senders always let through (patterns: `*` is any run)
//! deny = ["*@spam.example"] # senders always refused
//! deny_action = "reject"    # reject | discard
//! hold_above_kb = 500       # hold posts larger than this
//! reject_types = ["application/x-msdownload"]  # refuse posts carrying these (patterns)
//! strip_types = ["application/*"]             # remove such parts, keep the rest
//! auth_failures = "hold"    # posts failing their author's DMARC quarantine/reject policy
//!                           # (checked by the host): accept | hold | reject | discard
//! auth_check = "dmarc"      # dmarc: the above; dkim: also any post whose DKIM signature
//!                           # fails to verify, whatever the domain's DMARC policy
//!                           # (unless auth_failures = "accept", a post whose checks could
//!                           # not be done, DNS not answering, is held, never passed)
//! verify_members = false    # true: a post is a member's only with an aligned DKIM or
//!                           # SPF pass for the From domain; else it counts as a
//!                           # non-member's (anyone can write a member's address in From:)
//! hold_days = 14            # held posts not decided by then are rejected (author told;
//!                           # checked every minute)
//! ```
//!
//! `accept` lets the post go on to the next plugin (tagging, tracking) rather than ending
//! the chain. Decisions on held posts (by moderators, or the expiry here) are made by the
//! host, once.

use roost_plugin_sdk::{
    Deserialize, Edit, HookResult, Message, Plugin, PostResult, Schedule, ScheduledTask, Verdict,
    host::{held, members},
    mime, pattern_matches,
};

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(crate = "roost_plugin_sdk::serde", rename_all = "lowercase")]
enum Action {
    Accept,
    Hold,
    Reject,
    Discard,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(crate = "roost_plugin_sdk::serde", rename_all = "lowercase")]
enum DenyAction {
    #[default]
    Reject,
    Discard,
}

/// Which failures `auth_failures` acts on.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Default, Debug)]
#[serde(crate = "roost_plugin_sdk::serde", rename_all = "lowercase")]
enum AuthCheck {
    /// DMARC fails for a domain whose policy is quarantine or reject.
    #[default]
    Dmarc,
    /// That, or a DKIM signature that does not verify (a post changed on the way, or a
    /// forged signature), even where the domain publishes no DMARC policy.
    Dkim,
}

#[derive(Deserialize)]
#[serde(crate = "roost_plugin_sdk::serde", deny_unknown_fields)]
struct Config {
    #[serde(default = "accept")]
    members: Action,
    #[serde(default = "hold")]
    nonmembers: Action,
    #[serde(default = "hold")]
    moderated: Action,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default)]
    deny_action: DenyAction,
    hold_above_kb: Option<u64>,
    #[serde(default)]
    reject_types: Vec<String>,
    #[serde(default)]
    strip_types: Vec<String>,
    #[serde(default = "accept")]
    auth_failures: Action,
    #[serde(default)]
    auth_check: AuthCheck,
    #[serde(default)]
    verify_members: bool,
    hold_days: Option<u32>,
}

fn accept() -> Action {
    Action::Accept
}

fn hold() -> Action {
    Action::Hold
}

impl Default for Config {
    fn default() -> Self {
        Config {
            members: Action::Accept,
            nonmembers: Action::Hold,
            moderated: Action::Hold,
            allow: Vec::new(),
            deny: Vec::new(),
            deny_action: DenyAction::Reject,
            hold_above_kb: None,
            reject_types: Vec::new(),
            strip_types: Vec::new(),
            auth_failures: Action::Accept,
            auth_check: AuthCheck::Dmarc,
            verify_members: false,
            hold_days: None,
        }
    }
}

fn any_match(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| pattern_matches(p, text))
}

fn act(action: Action, why: String, list: &str) -> PostResult {
    match action {
        Action::Accept => PostResult::next(),
        Action::Hold => PostResult::hold(why),
        Action::Reject => {
            PostResult::reject(550, "5.7.1", format!("Posting to {list} refused: {why}"))
        }
        Action::Discard => PostResult::discard(why),
    }
}

/// Whether the host's `Authentication-Results` (the first one, which is the host's own,
/// read as RFC 8601 words: see [`clauses`]) says the post fails DMARC for an author's domain that asks receivers to act on that
/// (`quarantine` or `reject`; failing under `p=none` is common and means little), or,
/// with [`AuthCheck::Dkim`], carries a DKIM signature that does not verify.
fn auth_failed(results: Option<&str>, check: AuthCheck) -> Option<&'static str> {
    let clauses = clauses(results?);
    let results: Vec<(String, String, &[String])> = clauses
        .iter()
        .skip(1)
        .filter_map(|c| method_result(c).map(|(m, r)| (m, r, &c[1..])))
        .collect();
    let strict = |props: &[String]| {
        props.iter().any(|p| {
            let p = p.to_ascii_lowercase();
            p == "policy.dmarc=quarantine" || p == "policy.dmarc=reject"
        })
    };
    if results
        .iter()
        .any(|(m, r, props)| m == "dmarc" && r == "fail" && strict(props))
    {
        return Some("the author's domain fails DMARC");
    }
    (check == AuthCheck::Dkim && results.iter().any(|(m, r, _)| m == "dkim" && r == "fail"))
        .then_some("the post's DKIM signature does not verify")
}

/// A clause's method and result, lower-cased: `dkim=pass` is ("dkim", "pass").
fn method_result(clause: &[String]) -> Option<(String, String)> {
    let (method, result) = clause.first()?.split_once('=')?;
    Some((method.to_ascii_lowercase(), result.to_ascii_lowercase()))
}

/// What the host's checks say of the author's domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proof {
    /// An aligned pass: DMARC passes, or DKIM passes for the From domain (or a parent or
    /// child of it), or SPF passes for a MAIL FROM in such a domain.
    Aligned,
    /// The checks could not be done (a lookup ran out of time): `temperror`.
    Unknown,
    None,
}

/// Whether `a` and `b` are one domain or one is a subdomain of the other (relaxed
/// alignment without the public suffix list: stricter where two siblings share a parent).
fn aligned(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    !a.is_empty()
        && !b.is_empty()
        && (a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}")))
}

/// The words of an `Authentication-Results` value, clause by clause (RFC 8601): `;` ends a
/// clause except inside a quoted string or a comment, comments are dropped, and a quoted
/// string is part of one word (unquoted). Splitting on `;` and spaces alone let a sender
/// whose quoted MAIL FROM held `; dkim=pass header.d=victim.example` forge a clause.
fn clauses(value: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    let mut word = String::new();
    let (mut quoted, mut depth, mut escaped) = (false, 0u32, false);
    let flush = |word: &mut String, out: &mut Vec<Vec<String>>| {
        if !word.is_empty()
            && let Some(last) = out.last_mut()
        {
            last.push(std::mem::take(word));
        }
    };
    for c in value.chars() {
        if escaped {
            if depth == 0 {
                word.push(c);
            }
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => escaped = true,
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            ';' if !quoted => {
                flush(&mut word, &mut out);
                out.push(Vec::new());
            }
            c if c.is_whitespace() && !quoted => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The domain of a plain address (one `@`, no spaces): a quoted local part such as
/// `"x@victim.example y"@evil.example` names no domain here.
fn plain_domain(address: &str) -> Option<&str> {
    let (local, domain) = address.split_once('@')?;
    (!local.is_empty() && !domain.contains('@') && !address.contains(char::is_whitespace))
        .then_some(domain)
}

/// Read the host's `Authentication-Results` for an aligned pass for `from_domain`.
fn proof(results: Option<&str>, from_domain: &str) -> Proof {
    let Some(results) = results else {
        return Proof::None;
    };
    let mut unknown = false;
    // After the authserv-id, one clause per method: `dkim=pass header.d=x.example ...`.
    for clause in clauses(results).iter().skip(1) {
        let Some((method, result)) = method_result(clause) else {
            continue;
        };
        if result == "temperror" {
            unknown = true;
            continue;
        }
        if result != "pass" {
            continue;
        }
        let property = |key: &str| {
            clause[1..]
                .iter()
                .find_map(|w| w.strip_prefix(key))
                .map(str::to_string)
        };
        let ok = match method.as_str() {
            // DMARC passes for the domain of the From the host read, which must be this one.
            "dmarc" => property("header.from=").is_some_and(|d| aligned(&d, from_domain)),
            // `header.i=` (the signer's identity) where a signature has `i=`.
            "dkim" => property("header.d=")
                .or_else(|| {
                    property("header.i=")
                        .and_then(|i| i.rsplit_once('@').map(|(_, d)| d.to_string()))
                })
                .is_some_and(|d| aligned(&d, from_domain)),
            "spf" => property("smtp.mailfrom=")
                .is_some_and(|m| plain_domain(&m).is_some_and(|d| aligned(d, from_domain))),
            _ => false,
        };
        if ok {
            return Proof::Aligned;
        }
    }
    if unknown { Proof::Unknown } else { Proof::None }
}

struct Moderation;

impl Plugin for Moderation {
    fn on_post(message: Message) -> HookResult<PostResult> {
        let c: Config = roost_plugin_sdk::config()?;
        let list = message.list_address.clone();
        let sender = message
            .from_address()
            .filter(|a| a.contains('@'))
            .unwrap_or(&message.envelope.mail_from)
            .to_string();

        if any_match(&c.deny, &sender) {
            let why = format!("{sender} may not post");
            return Ok(match c.deny_action {
                DenyAction::Reject => act(Action::Reject, why, &list),
                DenyAction::Discard => act(Action::Discard, why, &list),
            });
        }

        let top = message
            .header("content-type")
            .unwrap_or("text/plain")
            .to_string();
        let types = mime::media_types(&top, &message.body);
        if let Some(t) = types.iter().find(|t| any_match(&c.reject_types, t)) {
            return Ok(act(
                Action::Reject,
                format!("attachments of type {t} are not allowed"),
                &list,
            ));
        }
        let mut result = PostResult::next();
        if !c.strip_types.is_empty()
            && let Some(body) =
                mime::without(&top, &message.body, &|t| any_match(&c.strip_types, t))
        {
            result = result.edit(Edit::ReplaceBody(body));
        }

        let results = message.header("authentication-results");
        let from_domain = sender.rsplit_once('@').map_or("", |(_, d)| d).to_string();
        let proven = proof(results, &from_domain);
        if c.auth_failures != Action::Accept
            && let Some(failure) = auth_failed(results, c.auth_check)
        {
            let why = format!("{failure} for {sender}");
            return Ok(with_edits(act(c.auth_failures, why, &list), result));
        }
        if any_match(&c.allow, &sender) {
            return Ok(result);
        }
        if let Some(kb) = c.hold_above_kb
            && message.size > kb * 1024
        {
            let why = format!(
                "the post is {} KB, over the list's {kb} KB",
                message.size / 1024
            );
            return Ok(with_edits(PostResult::hold(why), result));
        }
        let decision = match members::get(&sender) {
            // Anyone can write a member's address in From:; with verify_members only a
            // post its domain vouches for is the member's.
            Some(_) if c.verify_members && proven == Proof::Unknown => PostResult::hold(format!(
                "{sender} is a member, but the sender checks could not be done"
            )),
            Some(_) if c.verify_members && proven != Proof::Aligned => act(
                c.nonmembers,
                format!("{sender} is a member, but neither DKIM nor SPF passes for {from_domain}"),
                &list,
            ),
            Some(m) if m.moderated => act(c.moderated, format!("{sender} is moderated"), &list),
            Some(_) => act(
                c.members,
                format!("member posts are set to {:?}", c.members).to_lowercase(),
                &list,
            ),
            None => act(c.nonmembers, format!("{sender} is not a member"), &list),
        };
        // Fail closed: a post that could not be checked is not let through as one that
        // passed (held instead). Only a post that would go through: holding one that would
        // be refused anyway would let a sender fill the hold queue with unanswerable DNS.
        if c.auth_failures != Action::Accept
            && proven == Proof::Unknown
            && matches!(decision.verdict, Verdict::Continue | Verdict::Accept)
        {
            let why = format!(
                "the sender checks for {sender} could not be done (DNS did not answer in time)"
            );
            return Ok(with_edits(PostResult::hold(why), result));
        }
        Ok(with_edits(decision, result))
    }

    fn on_schedule(task: ScheduledTask) -> HookResult<()> {
        if task.name != "expire-held" {
            return Ok(());
        }
        let c: Config = roost_plugin_sdk::config()?;
        let Some(days) = c.hold_days else {
            return Ok(());
        };
        let cutoff = task.due_at.saturating_sub(u64::from(days) * 86_400_000);
        for post in held::posts(1000) {
            if post.received_at < cutoff {
                let reason = format!("not approved within {days} days");
                held::decide(&post.id, false, &reason)?;
            }
        }
        Ok(())
    }

    fn schedules() -> Vec<Schedule> {
        vec![Schedule {
            name: "expire-held".into(),
            every_seconds: 60,
        }]
    }
}

/// A decision carrying the edits made so far (a stripped body is kept for a held post).
fn with_edits(mut decision: PostResult, edits: PostResult) -> PostResult {
    decision.edits.extend(edits.edits);
    decision
}

roost_plugin_sdk::export_plugin!(Moderation, config = Config, hooks = [on_post, on_schedule]);

#[cfg(test)]
mod tests {
    use super::{AuthCheck, Proof, auth_failed, proof};

    #[test]
    fn an_aligned_pass_is_read_from_the_hosts_results() {
        let r = |s: &str| format!("lists.example.org; {s}");
        let p = |s: &str| proof(Some(&r(s)), "example.org");
        assert_eq!(
            p("dkim=pass header.d=example.org header.s=s1; spf=none"),
            Proof::Aligned
        );
        assert_eq!(
            p("dkim=pass header.d=mail.example.org; spf=none"),
            Proof::Aligned
        );
        assert_eq!(p("dkim=pass header.d=other.example; spf=fail"), Proof::None);
        assert_eq!(
            p("dkim=none; spf=pass smtp.mailfrom=ann@example.org"),
            Proof::Aligned
        );
        assert_eq!(
            p("dkim=none; spf=pass smtp.mailfrom=ann@evil.example"),
            Proof::None
        );
        assert_eq!(
            p("dkim=none; spf=none;\r\n\tdmarc=pass header.from=example.org"),
            Proof::Aligned
        );
        assert_eq!(
            p("dkim=temperror; spf=temperror; dmarc=temperror"),
            Proof::Unknown
        );
        assert_eq!(proof(None, "example.org"), Proof::None);
        assert_eq!(
            p("dkim=pass (good) header.i=@example.org; spf=none"),
            Proof::Aligned
        );
        // DMARC passed for another From than the plugin read: not this member's.
        assert_eq!(p("dmarc=pass header.from=evil.example"), Proof::None);
        // A quoted MAIL FROM cannot name the member's domain, nor forge a clause.
        assert_eq!(
            p("spf=pass smtp.mailfrom=\"x@example.org y\"@evil.example"),
            Proof::None
        );
        assert_eq!(
            p("spf=pass smtp.mailfrom=\"x@example.org y@evil.example\""),
            Proof::None
        );
        assert_eq!(
            p(
                "dkim=none; spf=pass smtp.mailfrom=\"a; dkim=pass header.d=example.org b\"@evil.example"
            ),
            Proof::None
        );
        // Comments are not read.
        assert_eq!(
            p("dkim=fail (dkim=pass header.d=example.org) header.d=x.example"),
            Proof::None
        );
        // A forged clause in the authserv-id's place is not read.
        assert_eq!(
            proof(Some("dkim=pass header.d=example.org"), "example.org"),
            Proof::None
        );
    }

    #[test]
    fn auth_failures_follow_the_check() {
        let strict = "lists.example.org; dkim=none; spf=fail smtp.mailfrom=a@strict.example;\r\n\tdmarc=fail header.from=strict.example policy.dmarc=reject";
        let lax = "lists.example.org; dkim=none; spf=fail;\r\n\tdmarc=fail header.from=lax.example policy.dmarc=none";
        let broken = "lists.example.org; dkim=fail (bad signature) header.d=lax.example; spf=pass;\r\n\tdmarc=none header.from=lax.example policy.dmarc=none";
        let good = "lists.example.org; dkim=pass header.d=ok.example; spf=pass;\r\n\tdmarc=pass header.from=ok.example policy.dmarc=reject";
        for check in [AuthCheck::Dmarc, AuthCheck::Dkim] {
            assert!(auth_failed(Some(strict), check).unwrap().contains("DMARC"));
            assert_eq!(auth_failed(Some(lax), check), None);
            assert_eq!(auth_failed(Some(good), check), None);
            assert_eq!(auth_failed(None, check), None);
            // Words in a comment or a quoted string are not results.
            let hidden = "lists.example.org; dkim=none (dmarc=fail policy.dmarc=reject) \
                          header.d=x.example; spf=pass smtp.mailfrom=\"a;dkim=fail\"@x.example";
            assert_eq!(auth_failed(Some(hidden), check), None);
        }
        assert_eq!(auth_failed(Some(broken), AuthCheck::Dmarc), None);
        assert!(
            auth_failed(Some(broken), AuthCheck::Dkim)
                .unwrap()
                .contains("DKIM")
        );
    }
}

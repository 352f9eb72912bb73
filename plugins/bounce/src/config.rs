//! The plugin's settings from the list's TOML file.

use roost_plugin_sdk::{
    BounceReason, Deserialize,
    serde::{Deserializer, de::Error},
};

#[derive(Deserialize)]
#[serde(crate = "roost_plugin_sdk::serde", deny_unknown_fields)]
pub struct Config {
    /// Delivery to a member stops when the score reaches this.
    #[serde(default = "threshold")]
    pub threshold: f64,
    /// What one bounce of each reason class adds to the score.
    #[serde(default)]
    pub scores: Scores,
    /// A score is forgotten after this long without a counted bounce.
    #[serde(default = "decay", deserialize_with = "duration")]
    pub decay: u64,
    /// Tell the member when delivery to them is disabled.
    #[serde(default = "yes")]
    pub warn: bool,
    /// Before disabling, send a probe: only its own bounce disables the member.
    #[serde(default)]
    pub probe: bool,
    /// A probe that has not bounced after this long went through: the score is cleared.
    #[serde(default = "probe_wait", deserialize_with = "duration")]
    pub probe_wait: u64,
    /// Members disabled by bounces get a new probe this long after (none: never); one that
    /// goes through re-enables them.
    #[serde(default, deserialize_with = "maybe_duration")]
    pub reprobe: Option<u64>,
    /// How often the owners get a summary of what bounced and what was decided (none:
    /// never).
    #[serde(default = "summary", deserialize_with = "maybe_duration")]
    pub summary: Option<u64>,
}

#[derive(Deserialize)]
#[serde(
    crate = "roost_plugin_sdk::serde",
    deny_unknown_fields,
    rename_all = "kebab-case"
)]
pub struct Scores {
    #[serde(default = "one")]
    pub mailbox_unknown: f64,
    #[serde(default = "half")]
    pub mailbox_full: f64,
    #[serde(default)]
    pub policy: f64,
    #[serde(default = "one")]
    pub dns_or_routing: f64,
    #[serde(default)]
    pub message_too_big: f64,
    #[serde(default)]
    pub auto_reply: f64,
    #[serde(default)]
    pub delay_notice: f64,
    #[serde(default = "half")]
    pub unknown: f64,
}

impl Default for Scores {
    fn default() -> Self {
        Scores {
            mailbox_unknown: 1.0,
            mailbox_full: 0.5,
            policy: 0.0,
            dns_or_routing: 1.0,
            message_too_big: 0.0,
            auto_reply: 0.0,
            delay_notice: 0.0,
            unknown: 0.5,
        }
    }
}

impl Scores {
    /// Complaints are not scored: they unsubscribe at once.
    pub fn of(&self, reason: BounceReason) -> f64 {
        match reason {
            BounceReason::MailboxUnknown => self.mailbox_unknown,
            BounceReason::MailboxFull => self.mailbox_full,
            BounceReason::Policy => self.policy,
            BounceReason::DnsOrRouting => self.dns_or_routing,
            BounceReason::MessageTooBig => self.message_too_big,
            BounceReason::AutoReply => self.auto_reply,
            BounceReason::DelayNotice => self.delay_notice,
            BounceReason::Complaint => 0.0,
            BounceReason::Unknown => self.unknown,
        }
    }
}

fn threshold() -> f64 {
    3.0
}
fn one() -> f64 {
    1.0
}
fn half() -> f64 {
    0.5
}
fn yes() -> bool {
    true
}
const DAY: u64 = 86_400_000;
fn decay() -> u64 {
    7 * DAY
}
fn probe_wait() -> u64 {
    3 * DAY
}
fn summary() -> Option<u64> {
    Some(DAY)
}

/// `"90s"`, `"15m"`, `"12h"`, `"7d"` in milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as \"90s\", \"12h\" or \"7d\""))?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => DAY,
        _ => return Err(format!("`{text}`: the unit must be s, m, h or d")),
    };
    n.checked_mul(ms)
        .ok_or_else(|| format!("`{text}` is too long"))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(D::Error::custom)
}

fn maybe_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "never" {
        return Ok(None);
    }
    parse_duration(&text).map(Some).map_err(D::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("7d"), Ok(7 * DAY));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("3w").is_err());
    }

    #[test]
    fn defaults_and_overrides() {
        let c: Config = roost_plugin_sdk::parse_config("").unwrap();
        assert_eq!(c.threshold, 3.0);
        assert_eq!(c.scores.of(BounceReason::MailboxUnknown), 1.0);
        assert_eq!(c.scores.of(BounceReason::DelayNotice), 0.0);
        assert_eq!(c.summary, Some(DAY));
        let c: Config = roost_plugin_sdk::parse_config(
            "threshold = 2.0\nsummary = \"never\"\nprobe = true\n[scores]\npolicy = 0.25\n",
        )
        .unwrap();
        assert_eq!(c.scores.of(BounceReason::Policy), 0.25);
        assert_eq!(c.summary, None);
        assert!(c.probe);
        let bad = roost_plugin_sdk::parse_config::<Config>("[scores]\nmailbox = 1.0\n");
        assert!(bad.is_err());
        match roost_plugin_sdk::parse_config::<Config>("decay = \"week\"\n") {
            Err(e) => assert!(e.contains("week"), "{e}"),
            Ok(_) => panic!("a bad duration was accepted"),
        }
    }
}

//! bounce: score the bounces the host parsed, stop mailing dead addresses, never drop live
//! ones by mistake.
//!
//! ```toml
//! [[plugin]]
//! use = "bounce"
//! threshold = 3.0        # delivery stops at this score
//! decay = "7d"           # a score is forgotten after this long without a counted bounce
//! warn = true            # tell the member when delivery to them stops
//! probe = false          # before disabling, send a probe; only its bounce disables
//! probe_wait = "3d"      # a probe not bounced by then went through: score cleared
//! reprobe = "never"      # probe members disabled by bounces again after this long
//! summary = "1d"         # owners' summary of bounces and decisions ("never": none)
//! [plugin.scores]        # what one bounce of each reason class adds
//! mailbox-unknown = 1.0
//! mailbox-full = 0.5
//! policy = 0.0           # spam and policy rejections say nothing about the address
//! dns-or-routing = 1.0
//! message-too-big = 0.0
//! auto-reply = 0.0
//! delay-notice = 0.0     # "still trying" is not a bounce
//! unknown = 0.5
//! ```
//!
//! Complaints (ARF feedback reports) unsubscribe the member at once. Each decision is
//! written to the member (`roost members list`, the REST API) and the node's log, and
//! gathered for the owners' summary.

mod config;
mod state;

use config::Config;
use roost_plugin_sdk::{
    BounceAction, BounceReason, BounceReport, BouncedRecipient, DeliveryStatus, HookResult, Plugin,
    Schedule, ScheduledTask,
    host::{self, events, log, members, notify},
};
use state::{DISABLED, PROBING, Record};

struct Bounce;

impl Plugin for Bounce {
    fn on_bounce(report: BounceReport) -> HookResult<BounceAction> {
        let c: Config = roost_plugin_sdk::config()?;
        for r in &report.recipients {
            handle(&c, &report, r)?;
        }
        Ok(BounceAction::Handled)
    }

    fn on_schedule(task: ScheduledTask) -> HookResult<()> {
        if task.name != "tick" {
            return Ok(());
        }
        let c: Config = roost_plugin_sdk::config()?;
        let now = host::now();
        settle_probes(&c, now)?;
        if let Some(after) = c.reprobe {
            reprobe(after, now)?;
        }
        if let Some(every) = c.summary
            && let Some(lines) = state::take_summary(now, every)
        {
            let n = lines.lines().count();
            notify::send(&notify::Notice {
                to: notify::Target::Owners,
                subject: format!("Bounces: {n} decision(s)"),
                body: format!(
                    "What the bounce handling saw and decided since the last summary:\n\n{lines}"
                ),
                reply_to: None,
            })?;
        }
        Ok(())
    }

    fn schedules() -> Vec<Schedule> {
        // Cheap when nothing waits (a few key lookups); probes and summaries are timed by
        // the config, not by this interval.
        vec![Schedule {
            name: "tick".into(),
            every_seconds: 10,
        }]
    }
}

/// What one bounce means for its member.
fn handle(c: &Config, report: &BounceReport, r: &BouncedRecipient) -> HookResult<()> {
    let Some(member) = &r.member else {
        log::write(
            log::Level::Info,
            &format!(
                "bounce {} for {}, not a member: ignored",
                report.id, r.address
            ),
        );
        return Ok(());
    };
    let address = member.address.clone();
    let what = format!(
        "{} {} ({}){}",
        r.action,
        if r.status.is_empty() { "-" } else { &r.status },
        reason_name(r.reason),
        report
            .post_id
            .as_deref()
            .map(|p| format!(" on {p}"))
            .unwrap_or_default()
    );
    event("bounce", &address, &what, report.post_id.clone());
    if r.reason == BounceReason::Complaint {
        if members::remove(&address) {
            state::forget(&address);
            decided(
                &address,
                &format!("unsubscribed: complaint ({})", report.format),
            );
        }
        return Ok(());
    }
    let now = host::now();
    // A probe's own bounce decides.
    let probe = state::get(&address).probe;
    let probe_bounced = probe.is_some() && probe == report.post_id;
    if probe_bounced {
        let done = state::update(&address, |rec| {
            (rec.last_id < report.id && rec.probe == report.post_id).then(|| {
                rec.last_id = report.id;
                rec.probe = None;
                rec.disabled_at = now;
            })
        })?;
        if done.is_some() {
            state::mark(PROBING, &address, false);
            disable(c, &address, &format!("disabled: the probe bounced, {what}"));
        }
        return Ok(());
    }
    if member.status != DeliveryStatus::Enabled {
        // Its posts stop anyway; what still bounces (a warning, a notice) says nothing new.
        log::write(
            log::Level::Info,
            &format!("{address}: {what}; delivery is already off, nothing changes"),
        );
        return Ok(());
    }
    let weight = c.scores.of(r.reason);
    if weight <= 0.0 {
        log::write(
            log::Level::Info,
            &format!("{address}: {what} scores 0; nothing changes"),
        );
        return Ok(());
    }
    let change = state::update(&address, |rec| {
        if rec.last_id >= report.id {
            return None;
        }
        rec.last_id = report.id;
        // An owner may have lowered the member's score (re-enabling them): that counts.
        let before = if now.saturating_sub(rec.last) > c.decay {
            0.0
        } else {
            rec.score.min(member.bounce_score)
        };
        rec.score = before + weight;
        rec.last = now;
        let over = rec.score >= c.threshold;
        let next = if !over || rec.probe.is_some() {
            Next::Score
        } else if c.probe {
            Next::Probe
        } else {
            rec.disabled_at = now;
            Next::Disable
        };
        Some((before, rec.score, next))
    })?;
    let Some((before, score, next)) = change else {
        return Ok(());
    };
    members::set_bounce_score(&address, score);
    let note = format!("score {before} -> {score} of {}: {what}", c.threshold);
    match next {
        Next::Score => decided(&address, &note),
        Next::Disable => disable(c, &address, &format!("disabled: {note}")),
        Next::Probe => send_probe(&address, now, &note)?,
    }
    Ok(())
}

enum Next {
    Score,
    Probe,
    Disable,
}

fn send_probe(address: &str, now: u64, why: &str) -> HookResult<()> {
    let id = notify::send(&notify::Notice {
        to: notify::Target::Address(address.to_string()),
        subject: "Checking your address for this list".into(),
        body: "Mail from this list to you has been bouncing. This message checks whether \
               your address still works; there is nothing you need to do. If it arrives, \
               you stay subscribed.\n"
            .into(),
        reply_to: None,
    })?;
    state::update(address, |rec| {
        rec.probe = Some(id.clone());
        rec.probe_at = now;
        Some(())
    })?;
    state::mark(PROBING, address, true);
    decided(address, &format!("probe {id} sent: {why}"));
    Ok(())
}

fn disable(c: &Config, address: &str, note: &str) {
    members::set_status(address, DeliveryStatus::DisabledBounces);
    state::mark(DISABLED, address, true);
    decided(address, note);
    if c.warn {
        let sent = notify::send(&notify::Notice {
            to: notify::Target::Address(address.to_string()),
            subject: "Delivery from this list to you has stopped".into(),
            body: format!(
                "Mail from this list to your address kept bouncing, so the list has stopped \
                 sending to you. You are still a member. To get the list's mail again, ask \
                 its owners to re-enable your delivery.\n\nThe last bounce: {note}\n"
            ),
            reply_to: None,
        });
        if let Err(e) = sent {
            log::write(
                log::Level::Warn,
                &format!("{address}: no warning sent: {e}"),
            );
        }
    }
}

/// Probes that have not bounced within `probe_wait` went through: clear the score and,
/// for a member disabled by bounces, deliver again.
fn settle_probes(c: &Config, now: u64) -> HookResult<()> {
    for address in state::members_in(PROBING, 1000) {
        let rec = state::get(&address);
        if rec.probe.is_none() {
            state::mark(PROBING, &address, false);
            continue;
        }
        if now.saturating_sub(rec.probe_at) < c.probe_wait {
            continue;
        }
        let probe = rec.probe.clone().unwrap_or_default();
        let cleared = state::update(&address, |rec| {
            (rec.probe.as_deref() == Some(probe.as_str())).then(|| {
                *rec = Record {
                    last_id: rec.last_id,
                    ..Record::default()
                };
            })
        })?;
        state::mark(PROBING, &address, false);
        if cleared.is_none() {
            continue;
        }
        members::set_bounce_score(&address, 0.0);
        let reenabled = members::get(&address)
            .is_some_and(|m| m.status == DeliveryStatus::DisabledBounces)
            && members::set_status(&address, DeliveryStatus::Enabled);
        state::mark(DISABLED, &address, false);
        let note = if reenabled {
            format!("re-enabled: probe {probe} went through")
        } else {
            format!("score cleared: probe {probe} went through")
        };
        decided(&address, &note);
    }
    Ok(())
}

/// Members disabled by bounces for `after` get a probe; one that goes through
/// re-enables them (see `settle_probes`).
fn reprobe(after: u64, now: u64) -> HookResult<()> {
    for address in state::members_in(DISABLED, 1000) {
        let rec = state::get(&address);
        if rec.probe.is_some() || now.saturating_sub(rec.disabled_at) < after {
            continue;
        }
        match members::get(&address) {
            Some(m) if m.status == DeliveryStatus::DisabledBounces => {
                send_probe(&address, now, "disabled long enough to try again")?;
            }
            _ => state::mark(DISABLED, &address, false),
        }
    }
    Ok(())
}

/// Record a decision on the member, in the log, in the events and for the summary.
fn decided(address: &str, note: &str) {
    members::note_bounce(address, note);
    log::write(log::Level::Info, &format!("{address}: {note}"));
    event("bounce-decision", address, note, None);
    state::note_for_summary(&format!("{address}: {note}"));
}

fn event(kind: &str, address: &str, key: &str, post_id: Option<String>) {
    events::emit(&events::Event {
        kind: kind.into(),
        post_id,
        member: Some(address.to_string()),
        key: Some(key.chars().take(200).collect()),
    });
}

fn reason_name(r: BounceReason) -> &'static str {
    match r {
        BounceReason::MailboxUnknown => "mailbox-unknown",
        BounceReason::MailboxFull => "mailbox-full",
        BounceReason::Policy => "policy",
        BounceReason::DnsOrRouting => "dns-or-routing",
        BounceReason::MessageTooBig => "message-too-big",
        BounceReason::AutoReply => "auto-reply",
        BounceReason::DelayNotice => "delay-notice",
        BounceReason::Complaint => "complaint",
        BounceReason::Unknown => "unknown",
    }
}

roost_plugin_sdk::export_plugin!(Bounce, config = Config, hooks = [on_bounce, on_schedule]);

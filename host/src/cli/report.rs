//! `roost report speed|post`: the reports as tables in the terminal.

use std::path::Path;

use super::{UsageError, load_config, open_store};
use crate::{message::rfc3339, store::now_ms};

const HOUR_MS: i64 = 3_600_000;

/// Server Sending Speed: attempted, succeeded and failed copies per hour, per node (or
/// one node), and for the cluster.
pub async fn speed(config_path: &Path, node: Option<&str>, hours: u32) -> anyhow::Result<()> {
    if !(1..=24 * 90).contains(&hours) {
        return Err(UsageError("--hours must be between 1 and 2160".into()).into());
    }
    let config = load_config(config_path)?;
    let store = open_store(&config).await?;
    let now = now_ms();
    let start = now - now.rem_euclid(HOUR_MS) - i64::from(hours - 1) * HOUR_MS;
    let rows = store.hourly_stats(start, now + 1, node).await?;
    println!("HOUR\tNODE\tATTEMPTED\tSUCCEEDED\tFAILED");
    let mut cluster: std::collections::BTreeMap<i64, (u64, u64, u64)> = Default::default();
    for r in &rows {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            rfc3339(r.hour),
            r.node,
            r.attempted,
            r.succeeded,
            r.failed
        );
        let c = cluster.entry(r.hour).or_default();
        c.0 += r.attempted;
        c.1 += r.succeeded;
        c.2 += r.failed;
    }
    if node.is_none() {
        for (hour, (a, s, f)) in cluster {
            println!("{}\t(cluster)\t{a}\t{s}\t{f}", rfc3339(hour));
        }
    }
    if rows.is_empty() {
        eprintln!("nothing was sent in the last {hours} hour(s)");
    }
    Ok(())
}

/// One post: recipients, delivered, deferred, bounced, unsubscribed, opens and clicks.
pub async fn post(config_path: &Path, id: &str) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let store = open_store(&config).await?;
    let Some(r) = store.post_report(id).await? else {
        return Err(UsageError(format!("no post {id}")).into());
    };
    println!("post\t{}\nlist\t{}", r.id, r.list);
    println!(
        "recipients\t{}\ndelivered\t{}\ndeferred\t{}\nwaiting\t{}\nbounced\t{}\nunsubscribed\t{}",
        r.recipients, r.delivered, r.deferred, r.waiting, r.bounced, r.unsubscribed
    );
    println!(
        "opens\t{} ({} unique)\nclicks\t{} ({} unique)\nprefetches\t{}",
        r.opens.total, r.opens.unique, r.clicks.total, r.clicks.unique, r.prefetches
    );
    for (n, c) in &r.links {
        println!("link {n}\t{} ({} unique)", c.total, c.unique);
    }
    Ok(())
}

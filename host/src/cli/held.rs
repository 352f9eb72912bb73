//! `roost held list|approve|reject`: the hold queue of a list.

use std::path::Path;

use super::{list_address, load_config, open_store};
use crate::message;

/// One held post per line: id, received, sender, subject, reason.
pub async fn list(config_path: &Path, list: &str) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let address = list_address(&config, list)?;
    let store = open_store(&config).await?;
    let held = store.messages_in_state(&address, "held", 10_000).await?;
    if held.is_empty() {
        eprintln!("no held posts for {address}");
    }
    for m in held {
        let subject = message::header(&m.raw, "subject").unwrap_or_default();
        println!(
            "{}\t{}\t{}\t{}\t{}",
            m.id,
            message::rfc3339(m.received_at),
            if m.mail_from.is_empty() {
                "<>"
            } else {
                &m.mail_from
            },
            subject,
            m.reason.unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn approve(config_path: &Path, list: &str, id: &str) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let address = list_address(&config, list)?;
    let store = open_store(&config).await?;
    if store.approve_held(&address, id).await? {
        println!("approved {id}: queued for delivery");
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{id} is not held on {address} (already decided, or no such post)"
        ))
    }
}

pub async fn reject(config_path: &Path, list: &str, id: &str, reason: &str) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let address = list_address(&config, list)?;
    let store = open_store(&config).await?;
    if store.reject_held(&address, id, reason).await? {
        println!("rejected {id}: the author will be told");
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{id} is not held on {address} (already decided, or no such post)"
        ))
    }
}

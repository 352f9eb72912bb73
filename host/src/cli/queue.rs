//! `roost queue`: messages processing could not decide (retrying or set aside), then what
//! waits to be delivered, per destination domain.

use std::path::Path;

use super::{load_config, open_store};
use crate::{message::rfc3339, store::now_ms};

/// Messages in trouble shown at most (newest first).
const TROUBLE_LINES: u32 = 50;

pub async fn show(config_path: &Path) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let store = open_store(&config).await?;
    let trouble = store.processing_trouble(TROUBLE_LINES).await?;
    if !trouble.is_empty() {
        // Messages processing could not decide come first: they need an operator's eye.
        println!("MESSAGE	LIST	KIND	STATE	TRIES	ERROR");
        for t in &trouble {
            let state = if t.state == "failed" {
                "set-aside"
            } else {
                "retrying"
            };
            println!(
                "{}\t{}\t{}\t{state}\t{}\t{}",
                t.id, t.list, t.kind, t.attempts, t.error
            );
        }
        println!();
    }
    let lines = store.queue().await?;
    if lines.is_empty() {
        println!("nothing waits: every recipient has been delivered, bounced or expired");
        return Ok(());
    }
    println!("DOMAIN\tRECIPIENTS\tBATCHES\tSENDING\tNEXT ATTEMPT\tLAST REPLY");
    let now = now_ms();
    for l in lines {
        let next = if l.next_attempt <= now {
            "now".to_string()
        } else {
            format!(
                "{} (in {}s)",
                rfc3339(l.next_attempt),
                (l.next_attempt - now + 999) / 1000
            )
        };
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            l.domain,
            l.recipients,
            l.batches,
            l.leased,
            next,
            l.last_reply.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

//! `roost queue`: what waits to be delivered, per destination domain.

use std::path::Path;

use super::{load_config, open_store};
use crate::{message::rfc3339, store::now_ms};

pub async fn show(config_path: &Path) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let store = open_store(&config).await?;
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

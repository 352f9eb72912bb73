//! `roost bounce parse FILE` and `roost bounce list LIST`.

use std::{io::Read, path::Path};

use super::{UsageError, list_address, load_config, open_store};

/// The parser reads at most 1 MiB of a message; a little more is read so a file that is
/// cut there is still seen as the large file it is.
const READ_AT_MOST: u64 = 2 << 20;

/// A file that is not a bounce: exit code 1, after the report (if any) was printed.
#[derive(Debug, thiserror::Error)]
#[error("{0} is not a bounce")]
pub struct NotABounce(pub String);

/// Print the structured report of a bounce as JSON: exit 0 when it reports a failure, 1
/// when it does not (an auto-reply, a delivery notice, any other mail).
pub fn parse(file: &Path) -> anyhow::Result<()> {
    let mut raw = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(READ_AT_MOST).read_to_end(&mut raw))
        .map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?;
    let report = roost_bounce::parse(&raw);
    let is_bounce = report.as_ref().is_some_and(|r| r.is_bounce());
    let json = match &report {
        Some(r) => serde_json::to_value(r)?,
        None => serde_json::json!({ "recipients": [], "format": null }),
    };
    println!("{}", serde_json::to_string_pretty(&json)?);
    if is_bounce {
        Ok(())
    } else {
        Err(NotABounce(file.display().to_string()).into())
    }
}

/// The list's latest bounces, newest first (tab-separated).
pub async fn list(config_path: &Path, list: &str, limit: u32) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let list = list_address(&config, list)?;
    let store = open_store(&config).await?;
    let rows = store.bounces(&list, limit).await?;
    println!("WHEN\tADDRESS\tSOURCE\tFORMAT\tACTION\tSTATUS\tREASON\tHANDLED\tDIAGNOSTIC");
    for b in &rows {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            crate::message::rfc3339(b.at),
            b.address,
            b.source,
            b.format,
            b.action,
            b.status,
            b.reason,
            b.state,
            b.diagnostic
        );
    }
    eprintln!("{} bounce(s) of {list}", rows.len());
    Ok(())
}

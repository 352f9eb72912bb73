//! `roost members add|remove|list|import`.

use std::{path::Path, time::Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::{UsageError, list_address, load_config, open_store};
use crate::store::check_address;

pub async fn add(config_path: &Path, list: &str, addresses: &[String]) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let list = list_address(&config, list)?;
    let store = open_store(&config).await?;
    let mut bad = 0;
    for a in addresses {
        if let Err(why) = check_address(a.trim()) {
            eprintln!("{why}");
            bad += 1;
            continue;
        }
        if store.add_member(&list, a, None).await? {
            println!("added {a}");
        } else {
            println!("{a} is already a member");
        }
    }
    if bad > 0 {
        return Err(UsageError(format!("{bad} address(es) refused")).into());
    }
    Ok(())
}

pub async fn remove(config_path: &Path, list: &str, addresses: &[String]) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let list = list_address(&config, list)?;
    let store = open_store(&config).await?;
    let mut missing = 0;
    for a in addresses {
        if store.remove_member(&list, a).await? {
            println!("removed {a}");
        } else {
            eprintln!("{a} is not a member of {list}");
            missing += 1;
        }
    }
    if missing > 0 {
        return Err(anyhow::anyhow!("{missing} address(es) were not members"));
    }
    Ok(())
}

/// One member per line: address, name, delivery status, moderated, bounce score (tabs).
pub async fn list(config_path: &Path, list: &str) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let list = list_address(&config, list)?;
    let store = open_store(&config).await?;
    let mut after: Option<String> = None;
    let mut count = 0u64;
    loop {
        let page = store.members_page(&list, after.as_deref(), 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.address.clone());
        for m in &page {
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                m.address,
                m.name.as_deref().unwrap_or(""),
                m.status.as_str(),
                if m.moderated { "moderated" } else { "-" },
                m.bounce_score,
                m.bounce_note.as_deref().unwrap_or("-")
            );
        }
        count += page.len() as u64;
    }
    eprintln!("{count} member(s) of {list}");
    Ok(())
}

/// Import `address[,name]` rows. Bad rows are reported by line and skipped; the good ones
/// go in one transaction, so a failure part-way imports nothing and a re-run is safe.
pub async fn import(config_path: &Path, list: &str, file: &Path) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let list = list_address(&config, list)?;
    let text = std::fs::read(file)
        .map_err(|e| UsageError(format!("{}: cannot read: {e}", file.display())))?;
    let text = String::from_utf8_lossy(&text);
    let started = Instant::now();
    let (rows, bad) = parse_rows(&text);
    for (line, why) in &bad {
        eprintln!("{}:{line}: skipped: {why}", file.display());
    }
    let store = open_store(&config).await?;
    let bar = ProgressBar::new(rows.len() as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} importing [{bar:40}] {pos}/{len} rows ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let added = store
        .add_members_bulk(&list, &rows, |done| bar.set_position(done as u64))
        .await?;
    bar.finish_and_clear();
    println!(
        "{}: {added} new member(s), {} already members, {} bad row(s) skipped, in {:.1} s",
        list,
        rows.len() as u64 - added,
        bad.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// An address and its optional name.
type Row = (String, Option<String>);
/// A line number and why it was skipped.
type BadRow = (usize, String);

/// `address[,name]` per line; a name may be quoted (`"Doe, Jane"`). Blank lines and lines
/// starting with `#` are ignored; a header line `address,name` is allowed.
fn parse_rows(text: &str) -> (Vec<Row>, Vec<BadRow>) {
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty()
            || line.starts_with('#')
            || (i == 0 && line.eq_ignore_ascii_case("address,name"))
        {
            continue;
        }
        let (address, name) = match line.split_once(',') {
            Some((a, n)) => (
                a.trim(),
                Some(n.trim().trim_matches('"').trim().to_string()).filter(|n| !n.is_empty()),
            ),
            None => (line, None),
        };
        let address = address.trim_matches('"');
        match check_address(address) {
            Ok(()) => rows.push((address.to_string(), name)),
            Err(why) => bad.push((i + 1, why)),
        }
    }
    (rows, bad)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rows_are_parsed_and_bad_ones_located() {
        let (rows, bad) = super::parse_rows(
            "address,name\na@example.org\n\"b@example.org\",\"Doe, Jane\"\n# note\n\nnot an address\nc@example.org , Cee\n",
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[1],
            ("b@example.org".to_string(), Some("Doe, Jane".to_string()))
        );
        assert_eq!(rows[2].1.as_deref(), Some("Cee"));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 6);
    }
}

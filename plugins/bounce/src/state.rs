//! What the plugin remembers, in the list's shared key-value store: one record per member
//! with a bouncing address, an index of the members waiting on a probe or disabled, and
//! the decisions since the owners' last summary. Every change is a compare-and-swap, so two
//! nodes handling bounces of one member at once never lose a count.

use roost_plugin_sdk::host::kv;

/// One member's bounce record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub score: f64,
    /// When a bounce last added to the score (ms); decay counts from here.
    pub last: u64,
    /// The highest bounce id counted: a bounce handed again after a crash is not counted
    /// twice.
    pub last_id: u64,
    /// The probe sent and when, while one is out.
    pub probe: Option<String>,
    pub probe_at: u64,
    /// When delivery was disabled (0: it is not).
    pub disabled_at: u64,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        format!(
            "score={}\nlast={}\nlast_id={}\nprobe={}\nprobe_at={}\ndisabled_at={}\n",
            self.score,
            self.last,
            self.last_id,
            self.probe.as_deref().unwrap_or(""),
            self.probe_at,
            self.disabled_at
        )
        .into_bytes()
    }

    fn decode(bytes: &[u8]) -> Record {
        let mut r = Record::default();
        for line in String::from_utf8_lossy(bytes).lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k {
                "score" => r.score = v.parse().unwrap_or(0.0),
                "last" => r.last = v.parse().unwrap_or(0),
                "last_id" => r.last_id = v.parse().unwrap_or(0),
                "probe" if !v.is_empty() => r.probe = Some(v.to_string()),
                "probe_at" => r.probe_at = v.parse().unwrap_or(0),
                "disabled_at" => r.disabled_at = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        r
    }
}

pub fn record_key(address: &str) -> String {
    format!("member:{}", address.to_lowercase())
}

/// Members with a probe out, and members disabled by bounces (for re-probing).
pub const PROBING: &str = "probing:";
pub const DISABLED: &str = "disabled:";

/// Change a member's record with `change`, which returns `None` to leave it as it is.
/// Retried on a concurrent change; returns what `change` returned on the write that won.
pub fn update<T>(
    address: &str,
    mut change: impl FnMut(&mut Record) -> Option<T>,
) -> Result<Option<T>, String> {
    let key = record_key(address);
    for _ in 0..16 {
        let current = kv::get(&key);
        let mut record = current
            .as_ref()
            .map(|e| Record::decode(&e.value))
            .unwrap_or_default();
        let Some(out) = change(&mut record) else {
            return Ok(None);
        };
        let expected = current.map(|e| e.version);
        if kv::compare_and_swap(&key, expected, &record.encode()).is_ok() {
            return Ok(Some(out));
        }
    }
    Err(format!(
        "the bounce record of {address} keeps changing under us"
    ))
}

/// The member's record as stored (default when none).
pub fn get(address: &str) -> Record {
    kv::get(&record_key(address))
        .map(|e| Record::decode(&e.value))
        .unwrap_or_default()
}

pub fn forget(address: &str) {
    kv::delete(&record_key(address));
    kv::delete(&format!("{PROBING}{}", address.to_lowercase()));
    kv::delete(&format!("{DISABLED}{}", address.to_lowercase()));
}

pub fn mark(index: &str, address: &str, on: bool) {
    let key = format!("{index}{}", address.to_lowercase());
    if on {
        kv::set(&key, address.as_bytes());
    } else {
        kv::delete(&key);
    }
}

/// Addresses in an index (`PROBING`, `DISABLED`), at most `limit`.
pub fn members_in(index: &str, limit: u32) -> Vec<String> {
    kv::list_keys(index, None, limit)
        .into_iter()
        .filter_map(|k| kv::get(&k).map(|e| String::from_utf8_lossy(&e.value).into_owned()))
        .collect()
}

const SUMMARY: &str = "summary";
/// Lines kept for one summary; beyond, only the count grows.
const SUMMARY_LINES: usize = 500;

/// Add one line to the owners' next summary.
pub fn note_for_summary(line: &str) {
    for _ in 0..16 {
        let current = kv::get(SUMMARY);
        let mut text = current
            .as_ref()
            .map(|e| String::from_utf8_lossy(&e.value).into_owned())
            .unwrap_or_default();
        if text.lines().count() >= SUMMARY_LINES {
            return;
        }
        text.push_str(line);
        text.push('\n');
        if kv::compare_and_swap(SUMMARY, current.map(|e| e.version), text.as_bytes()).is_ok() {
            return;
        }
    }
}

/// Take the summary lines gathered so far (empty: nothing happened), and when the last
/// summary went out.
pub fn take_summary(now: u64, every: u64) -> Option<String> {
    let sent_key = "summary-sent";
    let sent: u64 = kv::get(sent_key)
        .and_then(|e| String::from_utf8_lossy(&e.value).parse().ok())
        .unwrap_or(0);
    if now < sent.saturating_add(every) {
        return None;
    }
    let current = kv::get(SUMMARY)?;
    // Whoever swaps the lines out sends them: two nodes never send the same summary.
    kv::compare_and_swap(SUMMARY, Some(current.version), b"").ok()?;
    kv::set(sent_key, now.to_string().as_bytes());
    let text = String::from_utf8_lossy(&current.value).into_owned();
    (!text.trim().is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::Record;

    #[test]
    fn records_round_trip() {
        let r = Record {
            score: 2.5,
            last: 10,
            last_id: 7,
            probe: Some("notice-3".into()),
            probe_at: 11,
            disabled_at: 0,
        };
        assert_eq!(Record::decode(&r.encode()), r);
        assert_eq!(Record::decode(b"garbage"), Record::default());
    }
}

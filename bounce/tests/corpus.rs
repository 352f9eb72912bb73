//! The parser against real-world bounces: the 117 samples of flufl.bounce 6.0.0, with the
//! addresses and temporary/permanent verdicts its own tests expect. `make test` (or
//! `scripts/fetch-bounce-corpus.sh`) downloads them; without them this test fails rather
//! than pass vacuously.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Samples allowed to be wrong, each with the reason. Anything else that is wrong fails the
/// test, so an improvement elsewhere can never hide a regression here.
const ALLOWED_WRONG: &[(&str, &str)] = &[];

fn corpus_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("ROOST_BOUNCE_CORPUS")
        && !dir.is_empty()
    {
        return PathBuf::from(dir);
    }
    let env_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bounce-corpus.env");
    let Ok(text) = std::fs::read_to_string(&env_file) else {
        panic!(
            "bounce corpus not found ({} is missing): run scripts/fetch-bounce-corpus.sh \
             (make test runs it) or set ROOST_BOUNCE_CORPUS",
            env_file.display()
        );
    };
    let dir = text
        .lines()
        .find_map(|l| l.strip_prefix("ROOST_BOUNCE_CORPUS="))
        .unwrap_or_else(|| panic!("no ROOST_BOUNCE_CORPUS= line in {}", env_file.display()));
    PathBuf::from(dir.trim())
}

struct Expected {
    addresses: BTreeSet<String>,
    temporary: bool,
}

fn expectations(dir: &Path) -> BTreeMap<String, Expected> {
    let path = dir.join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run scripts/fetch-bounce-corpus.sh (make test runs it)",
            path.display()
        )
    });
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out: BTreeMap<String, Expected> = BTreeMap::new();
    for row in rows.as_array().unwrap() {
        let file = row["file"].as_str().unwrap().to_string();
        let e = out.entry(file).or_insert(Expected {
            addresses: BTreeSet::new(),
            temporary: false,
        });
        for a in row["addresses"].as_array().unwrap() {
            e.addresses.insert(a.as_str().unwrap().to_lowercase());
        }
        e.temporary |= row["temporary"].as_bool().unwrap();
    }
    // Samples that no flufl test lists: nothing detectable in them (e.g. dumbass_01.txt, and
    // bounce_01.txt whose only "address" is a bare user name).
    let data = dir.join("data");
    for entry in std::fs::read_dir(&data).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".txt") {
            out.entry(name).or_insert(Expected {
                addresses: BTreeSet::new(),
                temporary: false,
            });
        }
    }
    out
}

#[test]
fn flufl_corpus() {
    let dir = corpus_dir();
    let expected = expectations(&dir);
    assert!(
        expected.len() >= 117,
        "only {} samples in {}: rerun scripts/fetch-bounce-corpus.sh",
        expected.len(),
        dir.display()
    );
    let (mut right, mut found, mut wanted, mut spurious) = (0, 0, 0, 0);
    let (mut temp_right, mut temp_total) = (0, 0);
    let mut regressions = Vec::new();
    let mut fixed = Vec::new();
    println!("{:<20} {:<45} {:<45} verdict", "file", "expected", "got");
    for (file, exp) in &expected {
        let raw = std::fs::read(dir.join("data").join(file)).unwrap();
        let report = roost_bounce::parse(&raw);
        let recipients: Vec<_> = report
            .iter()
            .flat_map(|r| r.recipients.iter())
            // What flufl reports: failures. Delivery confirmations and auto-replies are
            // reports too, but name no failed address.
            .filter(|r| matches!(r.action.as_str(), "failed" | "delayed" | "complained"))
            .collect();
        let got: BTreeSet<String> = recipients
            .iter()
            .map(|r| r.address.to_lowercase())
            .collect();
        let temps_ok = recipients
            .iter()
            .filter(|r| r.temporary == exp.temporary)
            .count();
        temp_right += temps_ok;
        temp_total += recipients.len();
        wanted += exp.addresses.len();
        found += got.intersection(&exp.addresses).count();
        spurious += got.difference(&exp.addresses).count();
        let ok = got == exp.addresses && temps_ok == recipients.len();
        let allowed = ALLOWED_WRONG.iter().any(|(f, _)| f == file);
        let verdict = match (ok, allowed) {
            (true, false) => "ok",
            (true, true) => "ok (listed as allowed-wrong)",
            (false, true) => "WRONG (allowed)",
            (false, false) => "WRONG",
        };
        if ok {
            right += 1;
            if allowed {
                fixed.push(file.clone());
            }
        } else if !allowed {
            regressions.push(file.clone());
        }
        let show = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        let format = report.as_ref().map_or("-", |r| r.format.as_str());
        println!(
            "{file:<20} {:<45} {:<45} {verdict} [{format}{}]",
            show(&exp.addresses),
            show(&got),
            if exp.temporary { ", temporary" } else { "" }
        );
    }
    let total = expected.len();
    println!(
        "exactly right: {right}/{total}; addresses found: {found}/{wanted}; spurious: {spurious}; \
         temporary flags right: {temp_right}/{temp_total}"
    );
    if !fixed.is_empty() {
        println!("now right, remove from ALLOWED_WRONG: {fixed:?}");
    }
    assert_eq!(spurious, 0, "spurious addresses reported");
    assert!(
        right * 100 >= total * 95,
        "only {right}/{total} samples exactly right"
    );
    assert!(
        regressions.is_empty(),
        "wrong and not allowed: {regressions:?}"
    );
}

//! Any bytes into the bounce parser: it must return (in bounded time) without panicking, and
//! whatever report it returns must serialise, since the host stores and logs it as JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(report) = roost_bounce::parse(data) {
        let json = serde_json::to_string(&report).expect("a report always serialises");
        assert!(!json.is_empty());
        assert!(report.recipients.len() <= roost_bounce::MAX_RECIPIENTS);
        for r in &report.recipients {
            assert!(!r.address.is_empty());
        }
    }
});

//! Any bytes from an SMTP client: a real intake (sessions on a loopback socket, storage in
//! a SQLite file) takes them as one session. The node must never panic, must end every
//! session (the client closes its side after the input; the session must then close its),
//! and must go on serving: each input is followed by a well-formed session that must be
//! answered. Half the inputs start inside a transaction's DATA, so the fuzzer spends its time
//! on the data reader as well as on the command parser.

#![no_main]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{Arc, OnceLock},
    time::Duration,
};

use libfuzzer_sys::fuzz_target;
use roost::{
    config::{FailurePolicy, ListConfig, PluginLimits, SmtpConfig},
    smtp::{Directory, Intake},
    store::{Spool, Store},
    tokens::TokenKey,
};

/// A node's intake on a loopback port, started once for the whole run.
fn node() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let file = std::env::temp_dir().join(format!("roost-fuzz-{}.db", std::process::id()));
                let _ = std::fs::remove_file(&file);
                let store = Store::connect(&format!("sqlite://{}", file.display()))
                    .await
                    .expect("database");
                store.migrate().await.expect("schema");
                let list = ListConfig {
                    file: "lists/news.toml".into(),
                    address: "news@lists.example.org".into(),
                    name: "News".into(),
                    owners: vec![],
                    on_plugin_error: FailurePolicy::Hold,
                    limits: PluginLimits::default(),
                    plugins: vec![],
                    archive: None,
                    dkim: None,
                };
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("listen");
                tx.send(listener.local_addr().expect("address")).expect("started");
                let config = SmtpConfig {
                    listen: vec![],
                    max_message_size: 64 * 1024,
                    max_recipients: 20,
                    max_sessions: 64,
                    max_errors: 50,
                    max_line_length: 2000,
                    idle_timeout: Duration::from_secs(5),
                    max_session_time: Duration::from_secs(10),
                    max_sessions_per_ip: 64,
                    max_data_memory: 1 << 20,
                    tls: None,
                };
                let keys = TokenKey::new(&[7u8; 32]);
                let intake = Arc::new(Intake::new(
                    config,
                    Directory::new(&[list], Some(keys)),
                    Spool::start(store, 1, Duration::ZERO),
                    "fuzz".into(),
                    "lists.example.org".into(),
                    None,
                    None,
                ));
                let (_stop, stopped) = tokio::sync::watch::channel(false);
                intake.serve(listener, stopped).await;
            });
        });
        rx.recv().expect("node address")
    })
}

/// Send `input`, close our side, and read until the node closes its side.
fn session(input: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(node()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    // The node may close first (too many errors): what it did not read is not an error.
    let _ = s.write_all(input);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the session did not end: {e} after {out:?}"),
    }
    out
}

const INTO_DATA: &[u8] = b"EHLO client.example.org\r\nMAIL FROM:<ann@example.org>\r\n\
RCPT TO:<news@lists.example.org>\r\nDATA\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut input = Vec::with_capacity(data.len() + INTO_DATA.len());
    if mode % 2 == 0 {
        input.extend_from_slice(INTO_DATA);
    }
    input.extend_from_slice(rest);
    let said = session(&input);
    assert!(said.starts_with(b"220 "), "no greeting: {said:?}");
    // Every reply line is a code and text, CRLF-ended.
    for line in said.split_inclusive(|&b| b == b'\n') {
        assert!(line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit), "{line:?}");
        assert!(line.ends_with(b"\r\n"), "{line:?}");
    }
    // The node still serves an honest client.
    let honest = session(b"EHLO c.example.org\r\nQUIT\r\n");
    assert!(honest.ends_with(b"221 2.0.0 Bye\r\n"), "{honest:?}");
});

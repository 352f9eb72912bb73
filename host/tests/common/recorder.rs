//! A real receiving MTA on loopback (aiosmtpd, `tests/peers/recorder.py`) that records
//! every message it acknowledges, for the delivery tests.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{node::free_port, node::peer, root};

pub struct Recorder {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

/// One acknowledged message.
#[derive(Debug, Clone)]
pub struct Received {
    pub file: PathBuf,
    pub from: String,
    pub to: Vec<String>,
    pub tls: bool,
    /// When the receiver acknowledged it (seconds since the epoch).
    pub at: f64,
    /// The client's port: copies with the same port came over one connection.
    pub port: u64,
    /// Its RCPT had arrived together with its MAIL (the receiver announced PIPELINING).
    pub pipelined: bool,
}

impl Received {
    pub fn data(&self) -> Vec<u8> {
        std::fs::read(&self.file).expect("recorded message")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data()).into_owned()
    }
}

impl Recorder {
    /// Start the recorder; `args` are its rules (`--reject`, `--defer`, `--delay-ms`,
    /// `--pipelining`, `--tls-cert`/`--tls-key`).
    pub fn start(args: &[&str]) -> Recorder {
        Recorder::start_on(free_port(), args)
    }

    /// [`Recorder::start`] on a given port (one a node already tried and found closed).
    pub fn start_on(port: u16, args: &[&str]) -> Recorder {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(peer("PEER_PYTHON"))
            .arg(root().join("host/tests/peers/recorder.py"))
            .args(["--port", &port.to_string(), "--dir"])
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the recorder");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(first, "ready", "recorder did not start");
        std::thread::spawn(move || for _ in lines {});
        Recorder { port, dir, child }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Everything acknowledged so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let log =
            std::fs::read_to_string(self.dir.path().join("envelopes.jsonl")).unwrap_or_default();
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| Received {
                file: self.dir.path().join(v["file"].as_str().unwrap_or_default()),
                from: v["from"].as_str().unwrap_or_default().to_string(),
                to: v["to"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                tls: v["tls"].as_bool().unwrap_or(false),
                at: v["at"].as_f64().unwrap_or(0.0),
                port: v["port"].as_u64().unwrap_or(0),
                pipelined: v["pipelined"].as_bool().unwrap_or(false),
            })
            .collect()
    }

    /// Wait until at least `n` messages were acknowledged.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < timeout,
                "timed out: {} of {n} copies received",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

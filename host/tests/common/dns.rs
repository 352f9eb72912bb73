//! A real DNS server for the tests: dnsmasq on a free loopback port.
#![allow(dead_code)]

use std::{process::Command, time::Duration};

use super::node::{free_port, peer};

/// dnsmasq answering for `*.example` from its own records only.
pub struct Dns {
    child: std::process::Child,
    pub port: u16,
}

impl Dns {
    pub fn start(args: &[String]) -> Dns {
        let port = free_port();
        let child = Command::new(peer("DNSMASQ"))
            .args([
                "--no-resolv",
                "--no-hosts",
                "--no-daemon",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--local=/example/",
                "--pid-file=",
                "--user=root",
            ])
            .arg(format!("--port={port}"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq");
        std::thread::sleep(Duration::from_millis(300));
        Dns { child, port }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

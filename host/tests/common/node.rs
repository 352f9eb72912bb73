//! A real `roost serve` process on a free loopback port, with a node directory of its own.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::root;

/// The REST API token of test nodes.
pub const API_TOKEN: &str = "test-token-0123456789";

pub struct Node {
    pub dir: tempfile::TempDir,
    pub smtp: String,
    /// `127.0.0.1:PORT` of the HTTP server.
    pub http: String,
    pub db_url: String,
    /// The node's name (`ROOST_NODE_NAME`); nodes of one cluster share a database.
    pub name: String,
    /// `ROOST_LOG` filter for a node whose log a test reads ([`Node::log`]); none: `warn`
    /// to the test's own stderr.
    pub log_filter: Option<&'static str>,
    child: Option<Child>,
}

/// A free TCP port on 127.0.0.1 (bound, then released for the node to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub struct NodeSpec<'a> {
    pub db_url: &'a str,
    /// Extra lines for roost.toml's [smtp] section.
    pub smtp_extra: &'a str,
    /// (file name, contents) of list files.
    pub lists: Vec<(&'a str, String)>,
}

impl Node {
    /// Write the node's files; `start` runs it.
    pub fn new(spec: NodeSpec<'_>) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let smtp = format!("127.0.0.1:{port}");
        let http = format!("127.0.0.1:{}", free_port());
        let config = format!(
            "[node]\nname = \"test-node\"\nhostname = \"lists.example.org\"\n\n\
             [database]\nurl = \"{db}\"\n\n\
             [plugins]\ndir = \"{plugins}\"\ncache_dir = \"{cache}\"\n\n\
             [cluster]\nlease = \"2s\"\n\n\
             [http]\nlisten = \"{http}\"\npublic_url = \"https://lists.example.org\"\n\
             api_token = \"{API_TOKEN}\"\n\n\
             [smtp]\nlisten = [\"{smtp}\"]\n{extra}\n",
            db = spec.db_url,
            plugins = root().join("target/plugins").display(),
            cache = root().join("target/plugin-cache-tests").display(),
            extra = spec.smtp_extra,
        );
        std::fs::write(dir.path().join("roost.toml"), config).unwrap();
        std::fs::create_dir(dir.path().join("lists")).unwrap();
        for (name, text) in spec.lists {
            std::fs::write(dir.path().join("lists").join(name), text).unwrap();
        }
        Node {
            dir,
            smtp,
            http,
            db_url: spec.db_url.to_string(),
            name: "test-node".to_string(),
            log_filter: None,
            child: None,
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("roost.toml")
    }

    /// A node (not started yet) on a SQLite file of its own with one list, `news@lists.example.org`
    /// (`list_rest`: the lines of its file after the address, name and owner), delivering
    /// to `smarthost`; `smtp_extra` goes at the end of `[smtp]` (it may open sections).
    pub fn news(smarthost: &str, smtp_extra: &str, list_rest: &str) -> (Node, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("roost.db").display());
        let extra = format!("{smtp_extra}\n[delivery]\nsmarthost = \"{smarthost}\"\n");
        let node = Node::new(NodeSpec {
            db_url: &url,
            smtp_extra: &extra,
            lists: vec![(
                "news.toml",
                format!(
                    "address = \"news@lists.example.org\"\nname = \"News\"\n\
                     owners = [\"boss@example.org\"]\n\n{list_rest}"
                ),
            )],
        });
        (node, dir)
    }

    /// Add lines to the `[http]` section of roost.toml (before `start`).
    pub fn add_http(&self, lines: &str) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        let changed = text.replacen("[http]\n", &format!("[http]\n{lines}\n"), 1);
        std::fs::write(self.config(), changed).unwrap();
    }

    /// Give the node a lease other than the tests' 2 s (before `start`).
    pub fn set_lease(&self, lease: &str) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        let changed = text.replace("lease = \"2s\"", &format!("lease = \"{lease}\""));
        assert_ne!(text, changed, "no lease in the config");
        std::fs::write(self.config(), changed).unwrap();
    }

    /// Start `roost serve` and wait until it says it is ready.
    pub fn start(&mut self) {
        let stderr = match self.log_filter {
            Some(_) => Stdio::from(std::fs::File::create(self.log_path()).expect("log file")),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
            .args(["serve", "--config"])
            .arg(self.config())
            .env("ROOST_LOG", self.log_filter.unwrap_or("warn"))
            .env("ROOST_NODE_NAME", &self.name)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start roost");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(
            first.contains("ready"),
            "node did not start: {first:?} {}",
            self.log()
        );
        // Keep reading so the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }

    /// What the node logged, when started with a [`Node::log_filter`].
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s;
            }
            if started.elapsed() > Duration::from_secs(15) {
                let _ = c.kill();
                panic!("node did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run `roost ARGS --config <this node>`; (exit code, stdout, stderr).
    pub fn roost(&self, args: &[&str]) -> (i32, String, String) {
        let o = Command::new(env!("CARGO_BIN_EXE_roost"))
            .args(args)
            .arg("--config")
            .arg(self.config())
            .env("ROOST_LOG", "error")
            .env("ROOST_NODE_NAME", &self.name)
            .output()
            .expect("run roost");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tool from target/test-peers.env (written by scripts/ensure-test-peers.sh).
pub fn peer(name: &str) -> String {
    let env = root().join("target/test-peers.env");
    let text = std::fs::read_to_string(&env).unwrap_or_else(|_| {
        panic!(
            "{} missing: run `make test` (it installs the SMTP peers)",
            env.display()
        )
    });
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("{name} not in {}", env.display()))
}

/// Run a Python program (smtplib is the client); returns stdout, panics with stderr.
pub fn python(program: &str, args: &[&str]) -> String {
    let o = Command::new("python3")
        .arg("-c")
        .arg(program)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Wait until `f` holds (polling), or panic with `what`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < timeout {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Send one message with smtplib; returns the message id from "250 2.0.0 OK: queued as ID".
pub fn send(smtp: &str, from: &str, to: &str, subject: &str, body: &str) -> String {
    let program = r#"
import smtplib, sys
host, port = sys.argv[1].split(":")
s = smtplib.SMTP(host, int(port), timeout=30)
s.ehlo("client.example.org")
s.mail(sys.argv[2])
code, msg = s.rcpt(sys.argv[3])
assert code == 250, (code, msg)
msg = ("From: Ann <%s>\r\nTo: %s\r\nSubject: %s\r\n\r\n%s\r\n" % (sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])).encode()
code, resp = s.data(msg)
assert code == 250, (code, resp)
print(resp.decode().split()[-1])
s.quit()
"#;
    python(program, &[smtp, from, to, subject, body])
        .trim()
        .to_string()
}

/// Send `raw` as it is from `from` (`<>` for the null sender) to `to` with smtplib.
pub fn send_raw(smtp: &str, from: &str, to: &str, raw: &str) {
    let program = r#"
import smtplib, sys
host, port = sys.argv[1].split(":")
s = smtplib.SMTP(host, int(port), timeout=30)
s.sendmail(sys.argv[2], [sys.argv[3]], open(sys.argv[4], "rb").read())
s.quit()
"#;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), raw).unwrap();
    python(program, &[smtp, from, to, &file.path().to_string_lossy()]);
}

/// `curl` with `args`; (status, body).
pub fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

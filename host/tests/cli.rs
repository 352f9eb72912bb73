//! The `roost` binary as a user runs it: exit codes 0/1/2, errors that name file, line and
//! key, a node that starts, says it is ready, and stops on SIGTERM.

mod common;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

fn roost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(args)
        .env_remove("ROOST_CONFIG")
        .output()
        .expect("run roost")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A node directory like examples/demo, with the bundled plugins of this checkout.
fn node_dir(list: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let plugins = common::root().join("target/plugins");
    let config = format!(
        "[node]\nname = \"cli-test\"\nhostname = \"lists.example.org\"\n\n\
         [database]\nurl = \"sqlite://roost.db\"\n\n\
         [plugins]\ndir = \"{}\"\ncache_dir = \"cache\"\n",
        plugins.display()
    );
    std::fs::write(dir.path().join("roost.toml"), config).unwrap();
    std::fs::create_dir(dir.path().join("lists")).unwrap();
    std::fs::write(dir.path().join("lists/announce.toml"), list).unwrap();
    let path = dir.path().join("roost.toml");
    (dir, path)
}

const GOOD_LIST: &str = "address = \"announce@lists.example.org\"\n\
                         owners = [\"owner@example.org\"]\n\n\
                         [[plugin]]\nuse = \"subject-tag\"\ntag = \"[announce]\"\n";

#[test]
fn plugin_check_reports_name_version_and_hooks() {
    let o = roost(&[
        "plugin",
        "check",
        common::component("subject-tag").to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("name:    subject-tag"), "{out}");
    assert!(out.contains("version: 0.1.0"), "{out}");
    assert!(out.contains("hooks:   on-post\n"), "{out}");
}

#[test]
fn plugin_check_refuses_what_is_not_a_plugin_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, wat::parse_str("(module)").unwrap()).unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"hello").unwrap();
    for (file, reason) in [
        (core.as_path(), "a core WebAssembly module, not a component"),
        (junk.as_path(), "not a WebAssembly file"),
        (Path::new("/nonexistent/x.wasm"), "cannot read"),
    ] {
        let o = roost(&["plugin", "check", file.to_str().unwrap()]);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(reason), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn serve_refuses_bad_config_naming_file_line_and_key() {
    let cases = [
        (
            format!("{GOOD_LIST}tagg = \"x\"\n"),
            ":7: key `plugin[0].tagg`: plugin `subject-tag`: unknown field `tagg`",
        ),
        (
            format!("{GOOD_LIST}\n[[plugin]]\nuse = \"nope\"\n"),
            ":9: key `plugin[1].use`: plugin `nope` not found",
        ),
        (
            "address = \"announce\"\n".to_string(),
            "announce.toml:1: key `address`",
        ),
        (
            format!("{GOOD_LIST}\n[limits]\nplugin_timeout = \"fast\"\n"),
            "announce.toml:9:18: key `limits.plugin_timeout`: invalid duration",
        ),
        (
            "adress = \"a@b.org\"\n".to_string(),
            "announce.toml:1:1: key `adress`: unknown field `adress`",
        ),
    ];
    for (list, want) in cases {
        let (_dir, config) = node_dir(&list);
        let o = roost(&["serve", "--config", config.to_str().unwrap()]);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    }
    let (dir, config) = node_dir(GOOD_LIST);
    std::fs::write(
        dir.path().join("roost.toml"),
        "[node]\nname = \"a\"\nspeed = 3\n",
    )
    .unwrap();
    let o = roost(&["serve", "--config", config.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("roost.toml:3:1: key `node.speed`: unknown field `speed`"),
        "{err}"
    );
    let o = roost(&["serve", "--config", "/nonexistent/roost.toml"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn serve_starts_reports_ready_and_stops_on_sigterm() {
    let (dir, config) = node_dir(GOOD_LIST);
    let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    assert!(
        ready.starts_with("roost node cli-test ready: 1 list(s), 1 plugin(s)"),
        "{ready}"
    );
    let chain = lines.next().unwrap().unwrap();
    assert_eq!(chain.trim(), "announce@lists.example.org: subject-tag");
    assert!(
        dir.path().join("roost.db").exists(),
        "the SQLite file is created next to the config"
    );
    assert!(
        std::fs::read_dir(dir.path().join("cache")).unwrap().count() >= 1,
        "compiled plugin cached"
    );

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lists_shows_each_chain() {
    let (_dir, config) = node_dir(GOOD_LIST);
    let o = roost(&["lists", "--config", config.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("announce@lists.example.org (announce)"),
        "{out}"
    );
    assert!(out.contains("1. subject-tag  [tag]"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_schema_on_postgres() {
    let url = common::postgres_empty().await;
    let (_dir, config) = node_dir(GOOD_LIST);
    let o = Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["migrate", "--config", config.to_str().unwrap()])
        .env("ROOST_DATABASE_URL", &url)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("is up to date"), "{out}");
    let store = roost::store::Store::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, 0);
    // Running it again (as every node does at start) changes nothing.
    let again = Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["migrate", "--config", config.to_str().unwrap()])
        .env("ROOST_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(again.status.success());
}

/// A token key that could be guessed stops the node before it listens: exit 2, and why.
#[test]
fn a_short_token_key_is_refused() {
    let (_dir, config) = node_dir(GOOD_LIST);
    let o = Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("ROOST_TOKEN_KEY", "short-secret")
        .env("ROOST_LOG", "warn")
        .output()
        .expect("run roost");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ROOST_TOKEN_KEY must be at least 32 bytes (it is 12)"),
        "{err}"
    );
}

//! Node registration: a name is held by one running node; `roost nodes` shows who is there.

mod common;

use std::process::Command;

use common::node::{Node, NodeSpec};

fn node(db_url: &str) -> Node {
    Node::new(NodeSpec {
        db_url,
        smtp_extra: "",
        lists: vec![(
            "announce.toml",
            "address = \"announce@lists.example.org\"\n".to_string(),
        )],
    })
}

with_database_urls!(
    a_node_name_is_held_by_one_running_node,
    |url: String| async move {
        let mut first = node(&url);
        first.start();
        let (code, out, err) = first.roost(&["nodes"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.lines().any(|l| l.starts_with("test-node\talive\t")),
            "{out}"
        );

        // A second process with the same name against the same database is refused.
        let second = node(&url);
        let o = Command::new(env!("CARGO_BIN_EXE_roost"))
            .args(["serve", "--config"])
            .arg(second.config())
            .env("ROOST_LOG", "error")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains("node name `test-node` is in use by a running node"),
            "{err}"
        );

        // Once the first stops cleanly, the name is free at once.
        assert!(first.stop().success());
        let (_, out, _) = first.roost(&["nodes"]);
        assert!(
            out.lines().any(|l| l.starts_with("test-node\tstopped\t")),
            "{out}"
        );
        let mut second = second;
        second.start();
        let (_, out, _) = second.roost(&["nodes"]);
        assert!(
            out.lines().any(|l| l.starts_with("test-node\talive\t")),
            "{out}"
        );
    }
);

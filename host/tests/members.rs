//! `roost members`: add, remove, list, and a 100,000-row CSV import with bad rows, on SQLite
//! and PostgreSQL.

mod common;

use common::node::{Node, NodeSpec};
use roost::store::Store;

const LIST: &str = "announce@lists.example.org";

fn node(db_url: &str) -> Node {
    Node::new(NodeSpec {
        db_url,
        smtp_extra: "",
        lists: vec![("announce.toml", format!("address = \"{LIST}\"\n"))],
    })
}

async fn store_of(node: &Node) -> Store {
    Store::connect(&node.db_url).await.unwrap()
}

with_database_urls!(add_remove_and_list, |url: String| async move {
    let node = node(&url);
    let (code, out, err) = node.roost(&[
        "members",
        "add",
        "announce",
        "Ann@Example.org",
        "bob@example.org",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "added Ann@Example.org\nadded bob@example.org\n");
    let (code, out, _) = node.roost(&["members", "add", "announce", "ann@example.org"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "ann@example.org is already a member\n")
    );
    let (code, _, err) = node.roost(&["members", "add", "announce", "not an address"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a mail address"), "{err}");
    let (code, out, _) = node.roost(&["members", "list", LIST]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "Ann@Example.org\t\tenabled\t-\t0\t-\nbob@example.org\t\tenabled\t-\t0\t-\n"
    );
    let (code, _, _) = node.roost(&["members", "remove", "announce", "ANN@example.org"]);
    assert_eq!(code, 0);
    let (code, _, err) = node.roost(&["members", "remove", "announce", "ann@example.org"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = node.roost(&["members", "list", "nosuchlist"]);
    assert_eq!(code, 2, "{err}");
});

with_database_urls!(
    a_100k_row_import_skips_bad_rows_by_line,
    |url: String| async move {
        let node = node(&url);
        let csv = node.dir.path().join("members.csv");
        let mut text = String::from("address,name\n");
        for i in 0..100_000 {
            text.push_str(&format!(
                "member{i}@example{}.org,\"Member, {i}\"\n",
                i % 100
            ));
            match i {
                10 => text.push_str("this is not an address\n"),
                500 => text.push_str("two@@example.org\n"),
                _ => {}
            }
        }
        std::fs::write(&csv, text).unwrap();
        let (code, out, err) =
            node.roost(&["members", "import", "announce", csv.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("100000 new member(s), 0 already members, 2 bad row(s) skipped"),
            "{out}"
        );
        let csv_name = csv.display().to_string();
        assert!(err.contains(&format!("{csv_name}:13: skipped:")), "{err}");
        assert!(err.contains(&format!("{csv_name}:504: skipped:")), "{err}");
        eprintln!("import: {}", out.trim());

        let store = store_of(&node).await;
        assert_eq!(store.member_count(LIST).await.unwrap(), 100_000);
        let m = store
            .member(LIST, "member77@example77.org")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.name.as_deref(), Some("Member, 77"));

        // Importing again adds nothing and changes nothing.
        let (code, out, _) = node.roost(&["members", "import", "announce", csv.to_str().unwrap()]);
        assert_eq!(code, 0);
        assert!(
            out.contains("0 new member(s), 100000 already members"),
            "{out}"
        );
        assert_eq!(store.member_count(LIST).await.unwrap(), 100_000);
    }
);

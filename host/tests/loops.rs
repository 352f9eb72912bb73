//! Mail loops and automatic mail, end to end: two lists subscribed to each other on a node
//! that delivers to itself (its smarthost is its own SMTP port), so every copy one list
//! sends comes back to the node as a post to the other, as it would between two servers.

mod common;

use std::time::Duration;

use common::node::{Node, NodeSpec, eventually, send, send_raw};
use roost::store::Store;

fn list(name: &str) -> (String, String) {
    (
        format!("{name}.toml"),
        format!("address = \"{name}@lists.example.org\"\nname = \"{name}\"\n"),
    )
}

/// (list, state, reason) of every post, oldest first.
async fn posts(store: &Store) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as("SELECT list, state, reason FROM messages WHERE kind = 'post' ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap()
}

with_database_urls!(
    two_lists_subscribed_to_each_other_pass_a_post_on_once,
    |url: String| async move {
        let (a, b) = (list("alpha"), list("beta"));
        let mut node = Node::new(NodeSpec {
            db_url: &url,
            smtp_extra: "",
            lists: vec![(&a.0, a.1.clone()), (&b.0, b.1.clone())],
        });
        // Delivery goes back into this node's own intake.
        let config = std::fs::read_to_string(node.config()).unwrap();
        let config = format!("{config}\n[delivery]\nsmarthost = \"{}\"\n", node.smtp);
        std::fs::write(node.config(), config).unwrap();
        node.start();
        for (list, member) in [
            ("alpha", "beta@lists.example.org"),
            ("beta", "alpha@lists.example.org"),
        ] {
            let (code, _, err) = node.roost(&["members", "add", list, member]);
            assert_eq!(code, 0, "{err}");
        }
        let store = Store::connect(&node.db_url).await.unwrap();
        send(
            &node.smtp,
            "ann@example.org",
            "alpha@lists.example.org",
            "Round and round",
            "body",
        );
        // alpha sends it to beta, beta back to alpha, where it carries alpha's X-Loop.
        eventually("the loop held", Duration::from_secs(30), || async {
            posts(&store).await.iter().any(|p| p.1 == "held")
        })
        .await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let seen = posts(&store).await;
        let states: Vec<(&str, &str)> = seen
            .iter()
            .map(|(l, s, _)| (l.as_str(), s.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                ("alpha@lists.example.org", "accepted"),
                ("beta@lists.example.org", "accepted"),
                ("alpha@lists.example.org", "held"),
            ],
            "{seen:#?}"
        );
        assert_eq!(
            seen[2].2.as_deref(),
            Some("mail loop: X-Loop names this list")
        );

        // A post that says a program sent it, and one that crossed too many hops.
        let auto = "From: robot@example.org\r\nTo: alpha@lists.example.org\r\n\
                    Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nAway.\r\n";
        send_raw(
            &node.smtp,
            "robot@example.org",
            "alpha@lists.example.org",
            auto,
        );
        let hops = format!(
            "{}From: far@example.org\r\nSubject: Far\r\n\r\nbody\r\n",
            "Received: from a.example by b.example; Thu, 1 Jan 2026 00:00:00 +0000\r\n".repeat(26)
        );
        send_raw(
            &node.smtp,
            "far@example.org",
            "beta@lists.example.org",
            &hops,
        );
        eventually("both held", Duration::from_secs(30), || async {
            posts(&store).await.len() == 5 && posts(&store).await[3..].iter().all(|p| p.1 == "held")
        })
        .await;
        let seen = posts(&store).await;
        assert_eq!(
            seen[3].2.as_deref(),
            Some("sent automatically (Auto-Submitted: auto-replied)")
        );
        // Ours is one more hop: the 26 written plus the node's own.
        assert_eq!(
            seen[4].2.as_deref(),
            Some("mail loop: 27 Received: hops (at most 25)")
        );
        assert!(node.stop().success());
    }
);

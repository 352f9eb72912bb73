//! Whole messages shaped to make work quadratic, through a real node: stored, processed and
//! delivered in seconds, while the node goes on answering everyone else.

mod common;

use std::time::{Duration, Instant};

use common::{
    node::{Node, curl, send, send_raw},
    recorder::Recorder,
};

const LIST: &str = "news@lists.example.org";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_hostile_messages_go_through_in_seconds_and_block_nobody() {
    let sink = Recorder::start(&[]);
    // (A 10 MB post takes the debug build's subject-tag more than the default 100 ms: the
    // list gives its plugins time, as a list that takes such posts would.)
    let (mut node, _dir) = Node::news(
        &sink.addr(),
        "max_message_size = \"30MB\"\n",
        "[limits]\nplugin_timeout = \"10s\"\nplugin_memory = \"256MiB\"\n\n\
         [[plugin]]\nuse = \"subject-tag\"\ntag = \"[news]\"\n",
    );
    node.log_filter = Some("info");
    node.start();
    let (code, _, err) =
        node.roost(&["members", "add", "news", "ann@example.org", "m@example.net"]);
    assert_eq!(code, 0, "{err}");

    // 19 MB of placeholder openings (in lines of 120) to the owners, and a post whose
    // header has 100,000 fields of one name (the list removes and replaces them) and a body
    // of 7.7 MB of openings.
    let openings = format!(
        "From: x@example.org\r\nSubject: openings\r\n\r\n{}\r\n",
        format!("{}\r\n", "{{roost:".repeat(120)).repeat(20_000)
    );
    let fields = format!(
        "From: ann@example.org\r\nSubject: fields\r\n{}\r\n{}\r\n",
        "List-Id: <forged.example>\r\n".repeat(100_000),
        format!("{}\r\n", "{{roost:".repeat(120)).repeat(8_000)
    );
    let started = Instant::now();
    let smtp = node.smtp.clone();
    let senders = std::thread::spawn(move || {
        send_raw(
            &smtp,
            "x@example.org",
            "news-owner@lists.example.org",
            &openings,
        );
        send_raw(&smtp, "ann@example.org", LIST, &fields);
    });
    // Meanwhile everyone else is served at once.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let asked = Instant::now();
        let (code, _) = curl(&[&format!("http://{}/healthz", node.http)]);
        assert_eq!(code, 200);
        send(&node.smtp, "ann@example.org", LIST, "small", "body");
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "answered after {:?}",
            asked.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    senders.join().unwrap();
    // The owners' copy and both members' copies of the big post, and the small posts.
    for _ in 0..240 {
        if sink.received().len() >= 13 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let got = sink.received();
    if got.len() < 13 {
        let log = node.log();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        panic!(
            "{:?}\n{}",
            got.iter()
                .map(|r| (r.to.clone(), r.data().len()))
                .collect::<Vec<_>>(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let took = started.elapsed();
    let big: Vec<_> = got.iter().filter(|r| r.data().len() > 5_000_000).collect();
    assert_eq!(
        big.len(),
        3,
        "{:?}",
        got.iter().map(|r| r.to.clone()).collect::<Vec<_>>()
    );
    let post = big
        .iter()
        .find(|r| r.to == ["m@example.net"])
        .unwrap()
        .text();
    assert_eq!(
        post.matches("List-Id:").count(),
        1,
        "forged List-Ids removed"
    );
    assert!(post.contains("Subject: [news] fields"));
    assert!(took < Duration::from_secs(90), "took {took:?}");
    eprintln!("20 MB hostile messages delivered in {took:?}");
    assert!(node.stop().success());
}

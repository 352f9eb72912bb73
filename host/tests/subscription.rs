//! Mail commands, confirmations and moderation by mail, end to end: real SMTP clients send
//! commands and answers, a real receiving MTA (aiosmtpd) catches the replies, notices and
//! copies, curl opens the links, and the database is checked.

mod common;

use std::time::Duration;

use common::{
    node::{Node, NodeSpec, curl, send},
    recorder::{Received, Recorder},
};
use roost::store::Store;

const LIST: &str = "news@lists.example.org";
const REQUEST: &str = "news-request@lists.example.org";

fn start(sink: &Recorder, plugins: &str) -> (Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("roost.db").display());
    let extra = format!("\n[delivery]\nsmarthost = \"{}\"\n", sink.addr());
    let mut node = Node::new(NodeSpec {
        db_url: &url,
        smtp_extra: &extra,
        lists: vec![(
            "news.toml",
            format!(
                "address = \"{LIST}\"\nname = \"News\"\nowners = [\"boss@example.org\"]\n{plugins}"
            ),
        )],
    });
    node.start();
    (node, dir)
}

fn subscription(policy: &str) -> String {
    format!(
        "\n[[plugin]]\nuse = \"subscription\"\npolicy = \"{policy}\"\nwho = \"members\"\n\
         welcome = \"Hello {{name}}, welcome to {{list}}.\"\n\
         goodbye = \"Farewell {{address}}; write to {{request}} to come back.\"\n"
    )
}

/// The next message the sink got for `to` after the first `skip` of them.
async fn mail_for(sink: &Recorder, to: &str, nth: usize) -> Received {
    for _ in 0..300 {
        let mine: Vec<Received> = sink
            .received()
            .into_iter()
            .filter(|r| r.to.iter().any(|t| t == to))
            .collect();
        if mine.len() > nth {
            return mine[nth].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no mail #{nth} for {to}");
}

/// The first line in `text` that starts (after spaces) with `prefix`, trimmed.
fn line_with(text: &str, prefix: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` in\n{text}"))
        .to_string()
}

/// Where a reply to `mail` goes: its `Reply-To:` (what a mail client's Reply uses).
fn reply_address(mail: &str) -> String {
    roost::message::header(mail.as_bytes(), "reply-to")
        .unwrap_or_else(|| panic!("no Reply-To in\n{mail}"))
        .trim()
        .to_string()
}

fn local_url(node: &Node, url: &str) -> String {
    url.replace(
        "https://lists.example.org",
        &format!("http://{}", node.http),
    )
}

async fn member_name(store: &Store, address: &str) -> Option<Option<String>> {
    store.member(LIST, address).await.unwrap().map(|m| m.name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_opt_in_by_link_and_by_reply_and_confirmed_unsubscribe() {
    let sink = Recorder::start(&[]);
    let (mut node, _dir) = start(&sink, &subscription("confirm"));
    let store = Store::connect(&node.db_url).await.unwrap();

    // Ann asks; the answer carries a confirmation address and link.
    send(
        &node.smtp,
        "ann@example.org",
        REQUEST,
        "subscribe Ann Example",
        "",
    );
    let ask = mail_for(&sink, "ann@example.org", 0).await.text();
    assert!(ask.contains("To confirm"), "{ask}");
    let url = local_url(&node, &line_with(&ask, "https://lists.example.org/c/"));
    let (code, page) = curl(&[&url]);
    assert_eq!(code, 200);
    assert!(
        page.contains("Subscribe ann@example.org to news@lists.example.org"),
        "{page}"
    );
    assert_eq!(
        member_name(&store, "ann@example.org").await,
        None,
        "opening the page is not confirming"
    );
    let mut forged = url.clone();
    forged.insert(forged.len() - 2, 'q');
    assert_eq!(curl(&["-X", "POST", &forged]).0, 404);
    let (code, page) = curl(&["-X", "POST", &url]);
    assert_eq!(code, 200, "{page}");
    assert_eq!(
        member_name(&store, "ann@example.org").await,
        Some(Some("Ann Example".into()))
    );
    let welcome = mail_for(&sink, "ann@example.org", 1).await.text();
    assert!(
        welcome.contains("Hello Ann Example, welcome to news@lists.example.org."),
        "{welcome}"
    );
    let (code, _) = curl(&["-X", "POST", &url]);
    assert_eq!(code, 409, "confirming twice changes nothing");

    // Bob confirms by answering the mail instead: Reply goes to the confirmation address.
    send(&node.smtp, "bob@example.org", REQUEST, "join", "");
    let ask = mail_for(&sink, "bob@example.org", 0).await.text();
    let confirm_address = reply_address(&ask);
    assert_eq!(confirm_address, line_with(&ask, "news-confirm+"));
    send(
        &node.smtp,
        "bob@example.org",
        &confirm_address,
        "Re: Re: your request to news@lists.example.org",
        "yes",
    );
    mail_for(&sink, "bob@example.org", 1).await;
    assert!(member_name(&store, "bob@example.org").await.is_some());

    // `who` for members; `help`; an unknown command.
    send(&node.smtp, "bob@example.org", REQUEST, "who", "");
    let who = mail_for(&sink, "bob@example.org", 2).await.text();
    assert!(
        who.contains("ann@example.org") && who.contains("bob@example.org"),
        "{who}"
    );
    send(&node.smtp, "eve@example.org", REQUEST, "who", "");
    let no = mail_for(&sink, "eve@example.org", 0).await.text();
    assert!(no.contains("not available"), "{no}");
    send(&node.smtp, "eve@example.org", REQUEST, "", "help\r\n");
    let help = mail_for(&sink, "eve@example.org", 1).await.text();
    assert!(help.contains("subscribe [your name]"), "{help}");
    send(&node.smtp, "eve@example.org", REQUEST, "dance", "");
    let unknown = mail_for(&sink, "eve@example.org", 2).await.text();
    assert!(unknown.contains("`dance` is not a command"), "{unknown}");

    // Ann leaves: confirmed, then a goodbye.
    send(&node.smtp, "ann@example.org", REQUEST, "unsubscribe", "");
    let ask = mail_for(&sink, "ann@example.org", 2).await.text();
    let url = local_url(&node, &line_with(&ask, "https://lists.example.org/c/"));
    assert!(member_name(&store, "ann@example.org").await.is_some());
    assert_eq!(curl(&["-X", "POST", &url]).0, 200);
    assert_eq!(member_name(&store, "ann@example.org").await, None);
    let bye = mail_for(&sink, "ann@example.org", 3).await.text();
    assert!(
        bye.contains("Subject: You have left news@lists.example.org"),
        "{bye}"
    );
    assert!(
        bye.contains(
            "Farewell ann@example.org; write to news-request@lists.example.org to come back."
        ),
        "the list's own goodbye: {bye}"
    );
    assert!(node.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_approval_open_and_closed_policies() {
    let sink = Recorder::start(&[]);
    let (mut node, _dir) = start(&sink, &subscription("approval"));
    let store = Store::connect(&node.db_url).await.unwrap();
    send(&node.smtp, "carl@example.org", REQUEST, "subscribe", "");
    let waits = mail_for(&sink, "carl@example.org", 0).await.text();
    assert!(waits.contains("waits for the owners' approval"), "{waits}");
    let ask = mail_for(&sink, "boss@example.org", 0).await.text();
    assert!(ask.contains("carl@example.org asks to join"), "{ask}");
    let url = local_url(
        &node,
        line_with(&ask, "or open https://lists.example.org/c/").trim_start_matches("or open "),
    );
    assert!(member_name(&store, "carl@example.org").await.is_none());
    assert_eq!(curl(&["-X", "POST", &url]).0, 200);
    assert!(member_name(&store, "carl@example.org").await.is_some());
    let welcome = mail_for(&sink, "carl@example.org", 1).await.text();
    assert!(
        welcome.contains("welcome to news@lists.example.org"),
        "{welcome}"
    );
    assert!(node.stop().success());
    drop(node);

    for (policy, expect) in [
        ("open", "welcome to"),
        ("closed", "does not take new subscriptions"),
    ] {
        let sink = Recorder::start(&[]);
        let (mut node, _dir) = start(&sink, &subscription(policy));
        let store = Store::connect(&node.db_url).await.unwrap();
        send(&node.smtp, "dora@example.org", REQUEST, "subscribe", "");
        let answer = mail_for(&sink, "dora@example.org", 0).await.text();
        assert!(answer.contains(expect), "{policy}: {answer}");
        assert_eq!(
            member_name(&store, "dora@example.org").await.is_some(),
            policy == "open"
        );
        assert!(node.stop().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderators_decide_by_reply_once_and_owner_mail_is_forwarded() {
    let sink = Recorder::start(&[]);
    let hostile = format!(
        "\n[[plugin]]\nuse = \"{}\"\n",
        common::component("hostile").display()
    );
    let (mut node, _dir) = start(&sink, &hostile);
    let (code, _, err) =
        node.roost(&["members", "add", "news", "m1@example.net", "m2@example.net"]);
    assert_eq!(code, 0, "{err}");
    let store = Store::connect(&node.db_url).await.unwrap();

    let id = send(
        &node.smtp,
        "ann@example.org",
        LIST,
        "hold",
        "please approve",
    );
    let notice = mail_for(&sink, "boss@example.org", 0).await.text();
    assert!(notice.contains("is held for moderation"), "{notice}");
    assert!(notice.contains(&id), "{notice}");
    let answer = reply_address(&notice);
    assert!(answer.starts_with("news-confirm+"), "{answer}");
    let approve = line_with(&notice, "Or, to approve it, write to ")
        .trim_start_matches("Or, to approve it, write to ")
        .to_string();
    let opens: Vec<&str> = notice
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("or open "))
        .collect();
    assert_eq!(opens.len(), 2, "{notice}");
    let reject_url = local_url(&node, opens[1]);
    // A reply that says neither approve nor reject decides nothing, and says so.
    send(
        &node.smtp,
        "boss@example.org",
        &answer,
        "Re: held",
        "ok, looks fine?",
    );
    let unclear = mail_for(&sink, "boss@example.org", 1).await.text();
    assert!(unclear.contains("did not say"), "{unclear}");
    assert_eq!(
        reply_address(&unclear),
        answer,
        "replying again goes to the same place"
    );
    assert_eq!(store.message(&id).await.unwrap().state, "held");
    // The moderator's Reply, top-posted above the quoted notice.
    let quoted: String = notice.lines().map(|l| format!("> {l}\r\n")).collect();
    send(
        &node.smtp,
        "boss@example.org",
        &answer,
        "Re: held",
        &format!("Approve\r\n\r\n{quoted}"),
    );
    mail_for(&sink, "m1@example.net", 0).await;
    mail_for(&sink, "m2@example.net", 0).await;
    let ack = mail_for(&sink, "boss@example.org", 2).await.text();
    assert!(ack.contains("is approved"), "{ack}");
    // A second answer, by mail or by the other link: nothing changes, and it says so.
    send(
        &node.smtp,
        "boss@example.org",
        &approve,
        "Re: held",
        "ok again",
    );
    let again = mail_for(&sink, "boss@example.org", 3).await.text();
    assert!(again.contains("already decided"), "{again}");
    let (code, page) = curl(&["-X", "POST", &reject_url]);
    assert_eq!(
        code, 409,
        "the reject link after the approval changes nothing: {page}"
    );
    assert_eq!(store.message(&id).await.unwrap().state, "approved");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let copies = sink
        .received()
        .iter()
        .filter(|r| r.to[0].ends_with("@example.net"))
        .count();
    assert_eq!(copies, 2, "approved once, delivered once");

    // A second held post, rejected by a bottom-posted Reply: the author is told, nobody
    // gets a copy.
    let second = send(&node.smtp, "ann@example.org", LIST, "hold", "again");
    let notice = mail_for(&sink, "boss@example.org", 4).await.text();
    assert!(notice.contains(&second), "{notice}");
    let quoted: String = notice.lines().map(|l| format!("> {l}\r\n")).collect();
    send(
        &node.smtp,
        "boss@example.org",
        &reply_address(&notice),
        "Re: held",
        &format!("On Tue, the list wrote:\r\n{quoted}\r\nreject, off topic\r\n"),
    );
    let told = mail_for(&sink, "ann@example.org", 0).await.text();
    assert!(told.contains("was not accepted"), "{told}");
    assert_eq!(store.message(&second).await.unwrap().state, "rejected");
    let ack = mail_for(&sink, "boss@example.org", 5).await.text();
    assert!(ack.contains("is rejected"), "{ack}");

    // Mail to the owner address reaches the owners as it came.
    send(
        &node.smtp,
        "ann@example.org",
        "news-owner@lists.example.org",
        "A question",
        "hi owners",
    );
    let fwd = mail_for(&sink, "boss@example.org", 6).await.text();
    assert!(
        fwd.contains("Subject: A question") && fwd.contains("hi owners"),
        "{fwd}"
    );
    assert!(fwd.contains("From: Ann <ann@example.org>"), "{fwd}");
    assert!(node.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unsubscribe_mailto_works_without_a_subscription_plugin() {
    let sink = Recorder::start(&[]);
    let (mut node, _dir) = start(&sink, "");
    let (code, _, err) = node.roost(&["members", "add", "news", "ann@example.org"]);
    assert_eq!(code, 0, "{err}");
    let store = Store::connect(&node.db_url).await.unwrap();
    // What a mail client does with `<mailto:news-request@...?subject=unsubscribe>`.
    send(&node.smtp, "ann@example.org", REQUEST, "unsubscribe", "");
    let ask = mail_for(&sink, "ann@example.org", 0).await.text();
    let url = local_url(&node, &line_with(&ask, "https://lists.example.org/c/"));
    assert_eq!(curl(&["-X", "POST", &url]).0, 200);
    assert_eq!(member_name(&store, "ann@example.org").await, None);
    mail_for(&sink, "ann@example.org", 1).await;
    send(&node.smtp, "bob@example.org", REQUEST, "subscribe", "");
    let no = mail_for(&sink, "bob@example.org", 0).await.text();
    assert!(no.contains("takes no commands by mail"), "{no}");
    assert!(node.stop().success());
}

//! The HTTP surface end to end with curl against a real `roost serve`: health, metrics, the
//! REST API (bearer token, JSON errors, paging, held posts), one-click unsubscribe from the
//! link in a delivered copy, and the plugin route.

mod common;

use std::time::Duration;

use common::{
    node::{API_TOKEN, Node, NodeSpec, curl, send},
    recorder::Recorder,
};
use roost::store::Store;
use serde_json::Value;

const LIST: &str = "news@lists.example.org";

fn api(node: &Node, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let url = format!("http://{}/api/v1{path}", node.http);
    let auth = format!("Authorization: Bearer {API_TOKEN}");
    let mut args = vec!["-X", method, "-H", &auth, &url];
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "--data", b]);
    }
    let (code, text) = curl(&args);
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn start(db_url: &str, delivery: &str, list_extra: &str) -> Node {
    let extra = format!("\n[delivery]\n{delivery}\n");
    let mut node = Node::new(NodeSpec {
        db_url,
        smtp_extra: &extra,
        lists: vec![(
            "news.toml",
            format!(
                "address = \"{LIST}\"\nname = \"News\"\nowners = [\"boss@example.org\"]\n{list_extra}"
            ),
        )],
    });
    node.start();
    node
}

with_database_urls!(
    rest_api_needs_its_token_and_answers_json,
    |url: String| async move {
        let mut node = start(&url, "", "");
        let store = Store::connect(&node.db_url).await.unwrap();
        let members_url = format!("http://{}/api/v1/lists/news/members", node.http);

        // No token, a wrong token: 401 with a JSON error, and nothing changes.
        let (code, body) = curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"address":"eve@example.org"}"#,
            &members_url,
        ]);
        assert_eq!(code, 401, "{body}");
        assert!(body.contains("\"error\""), "{body}");
        let (code, _) = curl(&[
            "-H",
            "Authorization: Bearer wrong-token-0123456789",
            &members_url,
        ]);
        assert_eq!(code, 401);
        assert!(
            store
                .member(LIST, "eve@example.org")
                .await
                .unwrap()
                .is_none()
        );

        let (code, lists) = api(&node, "GET", "/lists", None);
        assert_eq!(code, 200);
        assert_eq!(lists["lists"][0]["address"], LIST);
        assert_eq!(lists["lists"][0]["members"], 0);

        for (i, a) in ["c@example.org", "a@example.org", "b@example.org"]
            .iter()
            .enumerate()
        {
            let (code, v) = api(
                &node,
                "POST",
                "/lists/news/members",
                Some(&format!(r#"{{"address":"{a}","name":"N{i}"}}"#)),
            );
            assert_eq!((code, v["added"].clone()), (201, Value::Bool(true)), "{v}");
        }
        let (code, v) = api(
            &node,
            "POST",
            "/lists/news/members",
            Some(r#"{"address":"A@example.org"}"#),
        );
        assert_eq!((code, v["added"].clone()), (200, Value::Bool(false)));
        let (code, v) = api(
            &node,
            "POST",
            "/lists/news/members",
            Some(r#"{"address":"not an address"}"#),
        );
        assert_eq!(code, 400, "{v}");
        assert!(
            v["error"].as_str().unwrap().contains("not a mail address"),
            "{v}"
        );
        let (code, v) = api(&node, "POST", "/lists/news/members", Some("{broken"));
        assert_eq!(code, 400);
        assert!(v["error"].is_string(), "{v}");
        let (code, v) = api(
            &node,
            "POST",
            "/lists/news/members",
            Some(r#"{"adress":"x@example.org"}"#),
        );
        assert_eq!(code, 400, "unknown fields are refused: {v}");

        // Paging: two, then the rest.
        let (code, page) = api(&node, "GET", "/lists/news/members?limit=2", None);
        assert_eq!(code, 200);
        let first: Vec<&str> = page["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["address"].as_str().unwrap())
            .collect();
        assert_eq!(first, ["a@example.org", "b@example.org"]);
        assert_eq!(page["next"], "b@example.org");
        let (_, page) = api(
            &node,
            "GET",
            "/lists/news/members?limit=2&after=b@example.org",
            None,
        );
        assert_eq!(page["members"][0]["address"], "c@example.org");
        assert_eq!(page["members"][0]["name"], "N0");
        assert_eq!(page["next"], Value::Null);
        let (code, _) = api(&node, "GET", "/lists/news/members?limit=0", None);
        assert_eq!(code, 400);

        let (code, _) = api(&node, "DELETE", "/lists/news/members/B@example.org", None);
        assert_eq!(code, 204);
        let (code, v) = api(&node, "DELETE", "/lists/news/members/b@example.org", None);
        assert_eq!(code, 404, "{v}");
        let (code, v) = api(&node, "GET", "/lists/nosuch/members", None);
        assert_eq!(code, 404);
        assert!(v["error"].as_str().unwrap().contains("nosuch"), "{v}");
        let (code, _) = api(&node, "GET", "/nothing/here", None);
        assert_eq!(code, 404);
        assert_eq!(store.member_count(LIST).await.unwrap(), 2);

        let (code, text) = curl(&[&format!("http://{}/healthz", node.http)]);
        assert_eq!((code, text.as_str()), (200, "ok\n"));
        assert!(node.stop().success());
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_posts_are_decided_once_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("roost.db").display());
    let hostile = format!(
        "\n[[plugin]]\nuse = \"{}\"\n",
        common::component("hostile").display()
    );
    let mut node = start(&url, "", &hostile);
    let store = Store::connect(&node.db_url).await.unwrap();
    let a = send(&node.smtp, "ann@example.org", LIST, "hold", "one");
    let b = send(&node.smtp, "ann@example.org", LIST, "hold", "two");
    let mut held = Value::Null;
    for _ in 0..100 {
        held = api(&node, "GET", "/lists/news/held", None).1;
        if held["held"].as_array().is_some_and(|h| h.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(held["held"][0]["id"], a.as_str(), "{held}");
    assert_eq!(held["held"][0]["subject"], "hold");
    let (code, v) = api(
        &node,
        "POST",
        &format!("/lists/news/held/{a}/approve"),
        None,
    );
    assert_eq!((code, v["state"].clone()), (200, "approved".into()), "{v}");
    let (code, v) = api(
        &node,
        "POST",
        &format!("/lists/news/held/{a}/approve"),
        None,
    );
    assert_eq!(code, 409, "{v}");
    let (code, v) = api(
        &node,
        "POST",
        &format!("/lists/news/held/{b}/reject"),
        Some(r#"{"reason":"off topic"}"#),
    );
    assert_eq!((code, v["state"].clone()), (200, "rejected".into()), "{v}");
    assert_eq!(
        store.message(&b).await.unwrap().reason.as_deref(),
        Some("off topic")
    );
    let (code, v) = api(&node, "POST", "/lists/news/held/nonexistent/approve", None);
    assert_eq!(code, 404, "{v}");
    let (code, v) = api(&node, "POST", &format!("/lists/news/held/{a}/reject"), None);
    assert_eq!(code, 409, "a decided post: {v}");

    // A plugin that fails holds the post (the list's default policy); the metrics count
    // posts held, approved and rejected, and the plugin's calls, failures and time.
    let c = send(&node.smtp, "ann@example.org", LIST, "error", "three");
    for _ in 0..100 {
        if store.message(&c).await.unwrap().state == "held" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, metrics) = curl(&[&format!("http://{}/metrics", node.http)]);
    assert_eq!(code, 200);
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    let node_label = "{node=\"test-node\"}";
    assert_eq!(value(&format!("roost_posts_held_total{node_label}")), 3.0);
    assert_eq!(
        value(&format!("roost_posts_accepted_total{node_label}")),
        1.0
    );
    assert_eq!(
        value(&format!("roost_posts_rejected_total{node_label}")),
        1.0
    );
    let hook = "{node=\"test-node\",plugin=\"hostile\",hook=\"on-post\"}";
    assert_eq!(value(&format!("roost_plugin_calls_total{hook}")), 3.0);
    assert_eq!(value(&format!("roost_plugin_failures_total{hook}")), 1.0);
    assert!(value(&format!("roost_plugin_seconds_total{hook}")) > 0.0);
    assert!(node.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_unsubscribe_from_a_delivered_copy() {
    let sink = Recorder::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("roost.db").display());
    let probe = format!(
        "\n[[plugin]]\nuse = \"{}\"\n",
        common::component("probe").display()
    );
    let mut node = start(&url, &format!("smarthost = \"{}\"", sink.addr()), &probe);
    let (code, _, err) = node.roost(&[
        "members",
        "add",
        "news",
        "bob@example.net",
        "carl@example.net",
    ]);
    assert_eq!(code, 0, "{err}");
    let store = Store::connect(&node.db_url).await.unwrap();
    send(&node.smtp, "ann@example.org", LIST, "Hi", "hello");
    let copies = sink.wait_for(2, Duration::from_secs(30)).await;
    let bob = copies
        .iter()
        .find(|c| c.to == ["bob@example.net"])
        .unwrap()
        .text();
    let link = bob
        .split("List-Unsubscribe: <")
        .nth(1)
        .and_then(|s| s.split('>').next())
        .unwrap()
        .replace(
            "https://lists.example.org",
            &format!("http://{}", node.http),
        );

    // Looking at the link changes nothing.
    let (code, page) = curl(&[&link]);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("bob@example.net") && page.contains("<form method=\"post\""),
        "{page}"
    );
    assert!(
        store
            .member(LIST, "bob@example.net")
            .await
            .unwrap()
            .is_some()
    );

    // A forged or altered token: 404, nothing changes.
    let mut forged = link.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    let (code, _) = curl(&[
        "-X",
        "POST",
        "--data",
        "List-Unsubscribe=One-Click",
        &forged,
    ]);
    assert_eq!(code, 404);
    let (code, _) = curl(&[
        "-X",
        "POST",
        &format!("http://{}/u/aaaaaaaaaaaaaaaaaaaa", node.http),
    ]);
    assert_eq!(code, 404);
    assert_eq!(store.member_count(LIST).await.unwrap(), 2);

    // RFC 8058 one-click.
    let (code, page) = curl(&["-X", "POST", "--data", "List-Unsubscribe=One-Click", &link]);
    assert_eq!(code, 200, "{page}");
    assert!(
        store
            .member(LIST, "bob@example.net")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .member(LIST, "carl@example.net")
            .await
            .unwrap()
            .is_some()
    );
    let (code, page) = curl(&["-X", "POST", &link]);
    assert_eq!(code, 200, "a second click changes nothing: {page}");

    // The plugin route reaches the probe's on-http; unknown plugins are 404.
    let (code, now) = curl(&[&format!("http://{}/p/news/probe/now", node.http)]);
    assert_eq!(code, 200);
    assert!(now.trim().parse::<u64>().is_ok(), "{now}");
    let (code, _) = curl(&[&format!("http://{}/p/news/nosuch/now", node.http)]);
    assert_eq!(code, 404);

    // Metrics count what happened.
    let (code, metrics) = curl(&[&format!("http://{}/metrics", node.http)]);
    assert_eq!(code, 200);
    assert!(
        metrics.contains("roost_posts_accepted_total{node=\"test-node\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("roost_copies_delivered_total{node=\"test-node\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "roost_plugin_calls_total{node=\"test-node\",plugin=\"probe\",hook=\"on-deliver\"} 2\n"
        ),
        "{metrics}"
    );
    assert!(node.stop().success());
}

/// Clients that hold connections without finishing them: 300 that never end their request
/// header, one that stops sending its body, one that sends more body than allowed. The node
/// refuses what is over its cap at once, drops the slow ones after their deadlines, and
/// answers everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_greedy_clients_are_refused_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("roost.db").display());
    let mut node = Node::new(NodeSpec {
        db_url: &url,
        smtp_extra: "",
        lists: vec![(
            "news.toml",
            format!("address = \"{LIST}\"\nname = \"News\"\n"),
        )],
    });
    let metrics = format!("127.0.0.1:{}", common::node::free_port());
    node.add_http(&format!(
        "max_connections = 100\nheader_timeout = \"3s\"\nidle_timeout = \"10s\"\n\
         request_timeout = \"1s\"\nmax_body = \"4KiB\"\nmetrics_listen = \"{metrics}\""
    ));
    node.start();
    let program = r#"
import socket, sys, time
host, port = sys.argv[1].split(":")
port = int(port)
def connect():
    s = socket.create_connection((host, port), timeout=10)
    return s
# 300 connections that never finish their header.
import selectors
held = []
# The header deadline counts from each connection's start: from before the first, the last
# one cannot be closed by it sooner than the deadline itself.
opened = time.time()
for _ in range(300):
    s = connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    held.append(s)
# Over the cap: 503 and closed at once. The rest: closed by the node after the header
# deadline. Every one of them ends, and none is answered otherwise.
sel = selectors.DefaultSelector()
for s in held:
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
got = {}
closed = 0
while closed < 300 and time.time() < opened + 15:
    for key, _ in sel.select(timeout=0.5):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except BlockingIOError:
            continue
        except ConnectionResetError:
            data = b""
        if data:
            got[s] = got.get(s, b"") + data
        else:
            closed += 1
            sel.unregister(s)
print("refused", sum(1 for d in got.values() if d.startswith(b"HTTP/1.1 503")))
print("answered", sum(1 for d in got.values() if not d.startswith(b"HTTP/1.1 503")))
print("closed", closed)
print("took", int(time.time() - opened))
for s in held:
    s.close()
# A body that stops coming: 408 after the request deadline.
s = connect()
s.sendall(b"POST /api/v1/lists/news/members HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-token-0123456789\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"addr")
start = time.time()
s.settimeout(10)
data = s.recv(4096)
print("slow-body", data.split(b"\r\n")[0].decode(), round(time.time() - start))
s.close()
# A body over the limit: 413.
s = connect()
body = b"x" * 8192
s.sendall(b"POST /api/v1/lists/news/members HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-token-0123456789\r\nContent-Type: application/json\r\nContent-Length: 8192\r\n\r\n" + body)
s.settimeout(10)
print("big-body", s.recv(4096).split(b"\r\n")[0].decode())
s.close()
# Everyone else is served.
s = connect()
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
s.settimeout(5)
print("healthz", s.recv(4096).split(b"\r\n")[0].decode())
"#;
    let out = common::node::python(program, &[&node.http]);
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{key}: {out}"))
            .to_string()
    };
    assert_eq!(line("refused"), "refused 200", "{out}");
    assert_eq!(line("answered"), "answered 0", "{out}");
    assert_eq!(line("closed"), "closed 300", "{out}");
    // The held ones after the 3 s header deadline (and well before the idle timeout's 10 s).
    let took: u64 = line("took")[5..].parse().unwrap();
    assert!((3..=7).contains(&took), "{out}");
    assert!(
        line("slow-body").starts_with("slow-body HTTP/1.1 408"),
        "{out}"
    );
    assert_eq!(
        line("big-body"),
        "big-body HTTP/1.1 413 Payload Too Large",
        "{out}"
    );
    assert_eq!(line("healthz"), "healthz HTTP/1.1 200 OK", "{out}");
    // /metrics is served on its own address only.
    assert_eq!(curl(&[&format!("http://{}/metrics", node.http)]).0, 404);
    let (code, metrics) = curl(&[&format!("http://{metrics}/metrics")]);
    assert_eq!(code, 200);
    assert!(
        metrics.contains("roost_http_connections_refused_total{node=\"test-node\"} 200"),
        "{metrics}"
    );
    assert!(node.stop().success());
}

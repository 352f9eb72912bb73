//! Click and open tracking end to end: the bundled `tracking` plugin rewrites a post's links
//! once, copies caught by a real MTA carry per-recipient signed links, and curl follows them
//! on two nodes of one PostgreSQL database.

mod common;

use std::{process::Command, time::Duration};

use common::{
    node::{Node, NodeSpec, python},
    recorder::Recorder,
};
use roost::store::Store;

const LIST: &str = "news@lists.example.org";

fn curl(args: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url} %{content_type}",
            "--max-time",
            "20",
        ])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut parts = text.splitn(3, ' ');
    (
        parts.next().unwrap_or("0").parse().unwrap_or(0),
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    )
}

/// Every `https://lists.example.org/t/{c,o}/TOKEN` in a copy, pointed at `http`.
fn tracking_links(text: &str, kind: &str, http: &str) -> Vec<String> {
    let prefix = format!("https://lists.example.org/t/{kind}/");
    text.match_indices(&prefix)
        .map(|(at, _)| {
            let token: String = text[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            format!("http://{http}/t/{kind}/{token}")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_links_redirect_count_and_refuse_forgeries_on_any_node() {
    let url = common::postgres_empty().await;
    let sink = Recorder::start(&[]);
    let extra = format!(
        "\n[delivery]\nsmarthost = \"{}\"\n\n[[plugin]]\nuse = \"reports\"\n",
        sink.addr()
    );
    let list = format!(
        "address = \"{LIST}\"\nname = \"News\"\n\n[[plugin]]\nuse = \"tracking\"\nignore = [\"*unsubscribe*\"]\n\n[[plugin]]\nuse = \"reports\"\n"
    );
    let mut nodes: Vec<Node> = (0..2)
        .map(|i| {
            let mut n = Node::new(NodeSpec {
                db_url: &url,
                smtp_extra: &extra,
                lists: vec![("news.toml", list.clone())],
            });
            n.name = format!("node-{i}");
            n.start();
            n
        })
        .collect();
    let (code, _, err) = nodes[0].roost(&[
        "members",
        "add",
        "news",
        "bob@example.net",
        "carl@example.net",
    ]);
    assert_eq!(code, 0, "{err}");
    let program = r#"
import smtplib, sys
from email.message import EmailMessage
host, port = sys.argv[1].split(":")
m = EmailMessage()
m["From"] = "ann@example.org"
m["To"] = "news@lists.example.org"
m["Subject"] = "Links"
m.set_content("Read https://example.org/page?a=1&b=2 now.\nLeave: https://example.org/unsubscribe\n")
m.add_alternative('<html><body><p><a href="https://example.org/page?a=1&amp;b=2">page</a></p></body></html>', subtype="html")
s = smtplib.SMTP(host, int(port), timeout=30)
s.send_message(m)
s.quit()
"#;
    python(program, &[&nodes[0].smtp]);
    let copies = sink.wait_for(2, Duration::from_secs(30)).await;
    let bob = copies
        .iter()
        .find(|c| c.to == ["bob@example.net"])
        .unwrap()
        .text();
    assert!(
        !bob.contains("https://example.org/page"),
        "links rewritten:\n{bob}"
    );
    assert!(
        bob.contains("https://example.org/unsubscribe"),
        "ignored link kept:\n{bob}"
    );
    let clicks = tracking_links(&bob, "c", &nodes[1].http);
    assert_eq!(clicks.len(), 2, "one link in each part:\n{bob}");
    assert_eq!(
        clicks[0], clicks[1],
        "the same link has one token per recipient"
    );
    let opens = tracking_links(&bob, "o", &nodes[0].http);
    assert_eq!(opens.len(), 1, "one pixel in the HTML part");
    let carl = copies
        .iter()
        .find(|c| c.to == ["carl@example.net"])
        .unwrap()
        .text();
    assert_ne!(
        tracking_links(&carl, "c", &nodes[1].http)[0],
        clicks[0],
        "per recipient"
    );

    // A person clicks on node 1, a scanner on node 0; the pixel loads on node 0.
    let (code, location, _) = curl(&[&clicks[0]]);
    assert_eq!(
        (code, location.as_str()),
        (302, "https://example.org/page?a=1&b=2")
    );
    let on_other = clicks[0].replace(&nodes[1].http, &nodes[0].http);
    let (code, _, _) = curl(&[
        "-A",
        "Mozilla/5.0 (compatible; GoogleImageProxy)",
        &on_other,
    ]);
    assert_eq!(code, 302);
    let (code, _, kind) = curl(&[&opens[0]]);
    assert_eq!((code, kind.as_str()), (200, "image/gif"));
    // Forged or altered tokens: 404, nothing counted.
    let mut forged = clicks[0].clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    assert_eq!(curl(&[&forged]).0, 404);
    assert_eq!(
        curl(&[&format!(
            "http://{}/t/c/aaaaaaaaaaaaaaaaaaaaa",
            nodes[0].http
        )])
        .0,
        404
    );

    // A flood on one link: every request is redirected, one click is counted.
    for _ in 0..30 {
        assert_eq!(curl(&[&clicks[0]]).0, 302);
    }

    let store = Store::connect(&url).await.unwrap();
    let events: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT kind, member, key FROM events WHERE plugin = 'tracking' ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        events,
        vec![
            ("click".into(), "bob@example.net".into(), Some("0".into())),
            (
                "click-prefetch".into(),
                "bob@example.net".into(),
                Some("0".into())
            ),
            ("open".into(), "bob@example.net".into(), None),
        ]
    );

    // The reports see the same: in the terminal and as JSON/CSV.
    let post: String = sqlx::query_scalar("SELECT id FROM messages WHERE kind = 'post'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    // The counts follow the events within about a second and a half; each kind of event
    // is counted on its own, so wait for all of them (make test once saw the clicks
    // counted before the open).
    let expected = [
        "recipients\t2\n",
        "delivered\t2\n",
        "opens\t1 (1 unique)\n",
        "clicks\t1 (1 unique)\n",
        "prefetches\t1\n",
        "link 0\t1 (1 unique)\n",
    ];
    let mut out = String::new();
    for _ in 0..100 {
        let (code, o, err) = nodes[0].roost(&["report", "post", &post]);
        assert_eq!(code, 0, "{err}");
        out = o;
        if expected.iter().all(|line| out.contains(line)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for line in expected {
        assert!(out.contains(line), "{line:?} missing in\n{out}");
    }
    let (code, out, err) = nodes[1].roost(&["report", "speed", "--hours", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().any(|l| l.ends_with("\t(cluster)\t2\t2\t0")),
        "{out}"
    );
    let api = |path: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-H",
                &format!("Authorization: Bearer {}", common::node::API_TOKEN),
            ])
            .arg(format!("http://{}/api/v1/reports/{path}", nodes[1].http))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let json: serde_json::Value = serde_json::from_str(&api(&format!("posts/{post}"))).unwrap();
    assert_eq!(json["delivered"], 2);
    assert_eq!(json["clicks"]["unique"], 1);
    assert_eq!(json["links"]["0"]["total"], 1, "{json}");
    let csv = api("speed?hours=2&format=csv");
    assert!(
        csv.starts_with("hour,node,attempted,succeeded,failed\n"),
        "{csv}"
    );
    assert_eq!(
        csv.lines()
            .map(|l| l
                .split(',')
                .nth(3)
                .unwrap_or("0")
                .parse::<u64>()
                .unwrap_or(0))
            .sum::<u64>(),
        2,
        "{csv}"
    );
    // The Server Sending Speed page, rendered by headless Chromium.
    let shots = common::root().join("target/test-artifacts");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let chromium = |page: &str, extra: &[&str]| {
        Command::new(common::node::peer("CHROMIUM"))
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--window-size=900,700",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(page)
            .output()
            .expect("chromium")
    };
    // The reports need the API token; a browser gives it as the password.
    let token = common::node::API_TOKEN;
    let page = format!("http://x:{token}@{}/reports/speed?hours=6", nodes[0].http);
    let dom = String::from_utf8_lossy(&chromium(&page, &["--dump-dom"]).stdout).into_owned();
    assert!(dom.contains("<h1>Server Sending Speed</h1>"), "{dom}");
    for series in ["attempted", "succeeded", "failed"] {
        assert!(
            dom.contains(&format!("data-series=\"{series}\"")),
            "{series} missing: {dom}"
        );
    }
    assert!(
        dom.contains("<td>node-0</td><td>2</td><td>2</td><td>0</td>"),
        "{dom}"
    );
    // Both nodes alive; nothing waits.
    assert_eq!(
        dom.matches("<span class=\"state-alive\">alive</span>")
            .count(),
        2,
        "{dom}"
    );
    assert!(dom.contains("Nothing waits."), "{dom}");
    let shot = |page: &str, name: &str| {
        let png = shots.join(name);
        let _ = std::fs::remove_file(&png);
        chromium(page, &[&format!("--screenshot={}", png.display())]);
        let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(size > 5_000, "screenshot {} is {size} bytes", png.display());
    };
    shot(&page, "reports-speed.png");
    // The post's page, on the other node: delivery bars and clicks per link.
    let page = format!("http://x:{token}@{}/reports/posts/{post}", nodes[1].http);
    let dom = String::from_utf8_lossy(&chromium(&page, &["--dump-dom"]).stdout).into_owned();
    for bar in [
        "data-series=\"delivered\" data-value=\"2\"",
        "data-series=\"bounced\" data-value=\"0\"",
        "data-series=\"link 0\" data-value=\"1\"",
        "<td>clicks</td><td>1</td><td>1</td>",
        "<td>opens</td><td>1</td><td>1</td>",
        "<td>0: https://example.org/page?a=1&amp;b=2</td><td>1</td><td>1</td>",
    ] {
        assert!(dom.contains(bar), "{bar} missing: {dom}");
    }
    shot(&page, "reports-post.png");
    let (code, to, _) = curl(&[&format!("http://{}/reports", nodes[0].http)]);
    assert_eq!(
        (code, to),
        (308, format!("http://{}/reports/", nodes[0].http))
    );
    // The index links to it; the list's own reports show the same post.
    let auth = format!("x:{token}");
    let (code, index) =
        common::node::curl(&["-u", &auth, &format!("http://{}/reports/", nodes[0].http)]);
    assert_eq!(code, 200);
    assert!(index.contains(&format!("href=\"posts/{post}\"")), "{index}");
    let (code, mine) = common::node::curl(&[
        "-u",
        &auth,
        &format!("http://{}/p/news/reports/posts/{post}", nodes[0].http),
    ]);
    assert_eq!(code, 200, "{mine}");
    assert!(
        mine.contains("data-series=\"delivered\" data-value=\"2\""),
        "{mine}"
    );
    let (code, _, _) = curl(&[
        "-u",
        &auth,
        &format!("http://{}/reports/nosuch", nodes[0].http),
    ]);
    assert_eq!(code, 404);
    // Without the token, or with a wrong one: 401, and nothing is shown.
    for path in [
        "reports/".to_string(),
        format!("reports/posts/{post}"),
        format!("p/news/reports/posts/{post}"),
    ] {
        let url = format!("http://{}/{path}", nodes[0].http);
        let (code, body) = common::node::curl(&[&url]);
        assert_eq!(code, 401, "{path}: {body}");
        let (code, _) = common::node::curl(&["-u", "x:wrong-token-0123456789", &url]);
        assert_eq!(code, 401, "{path}");
        let (code, _) =
            common::node::curl(&["-H", &format!("Authorization: Bearer {token}"), &url]);
        assert_eq!(code, 200, "{path}");
    }

    for n in &mut nodes {
        assert!(n.stop().success());
    }
}

//! A plugin that exposes every host import over `on_http`, so tests can drive the imports
//! through a real component and check the database afterwards. Its `on_post` does nothing
//! (the "empty hook" of the benchmark) and its `on_deliver` adds one header.

use roost_plugin_sdk::{
    DeliveryStatus, Edit, Header, HookResult, HttpRequest, HttpResponse, Message, Plugin,
    PostResult, Recipient, Schedule, ScheduledTask,
    host::{clock, config, events, kv, log, members, notify, stats},
};

struct Probe;

#[derive(roost_plugin_sdk::Deserialize)]
#[serde(crate = "roost_plugin_sdk::serde", deny_unknown_fields)]
struct ProbeConfig {
    slow_tick_ms: Option<u64>,
}

impl Plugin for Probe {
    fn on_post(_message: Message) -> HookResult<PostResult> {
        Ok(PostResult::next())
    }

    fn on_deliver(_message: Message, recipient: Recipient) -> HookResult<Vec<Edit>> {
        Ok(vec![Edit::AddHeader(Header::new(
            "X-Probe-To",
            recipient.address,
        ))])
    }

    /// Every second: one `tick` event keyed by the occurrence, so tests can count how often
    /// each occurrence ran in the cluster. With `slow_tick_ms = N` in its config, each run
    /// first takes N ms, so a test can kill a node in the middle of one.
    fn on_schedule(task: ScheduledTask) -> HookResult<()> {
        if let Ok(ProbeConfig {
            slow_tick_ms: Some(ms),
        }) = roost_plugin_sdk::config::<ProbeConfig>()
        {
            let until = clock::now().saturating_add(ms);
            while clock::now() < until {}
        }
        events::emit(&events::Event {
            kind: "tick".into(),
            post_id: None,
            member: None,
            key: Some(task.occurrence),
        });
        Ok(())
    }

    fn schedules() -> Vec<Schedule> {
        vec![Schedule {
            name: "tick".into(),
            every_seconds: 1,
        }]
    }

    fn on_http(req: HttpRequest) -> HookResult<HttpResponse> {
        let q = Query(parse_query(&req.query));
        let body = String::from_utf8_lossy(&req.body).into_owned();
        let ok = |s: String| Ok(HttpResponse::text(200, s));
        match req.path.as_str() {
            "/config" => ok(config::get()),
            "/now" => ok(clock::now().to_string()),
            "/log" => {
                log::write(log::Level::Warn, &body);
                ok("logged".into())
            }
            "/kv/get" => match kv::get(q.req("key")?) {
                Some(e) => ok(format!(
                    "{} {}",
                    e.version,
                    String::from_utf8_lossy(&e.value)
                )),
                None => Ok(HttpResponse::text(404, "absent")),
            },
            "/kv/set" => ok(kv::set(q.req("key")?, body.as_bytes()).to_string()),
            "/kv/cas" => {
                let expected = match q.get("expected") {
                    None | Some("none") => None,
                    Some(v) => Some(v.parse::<u64>().map_err(|e| e.to_string())?),
                };
                match kv::compare_and_swap(q.req("key")?, expected, body.as_bytes()) {
                    Ok(v) => ok(v.to_string()),
                    Err(c) => Ok(HttpResponse::text(
                        409,
                        c.current.map_or("absent".into(), |e| e.version.to_string()),
                    )),
                }
            }
            "/kv/delete" => ok(kv::delete(q.req("key")?).to_string()),
            "/kv/keys" => {
                let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
                ok(kv::list_keys(q.get("prefix").unwrap_or(""), q.get("after"), limit).join("\n"))
            }
            "/members/add" => match members::add(q.req("address")?, q.get("name")) {
                Ok(added) => ok(added.to_string()),
                Err(why) => Ok(HttpResponse::text(400, why)),
            },
            "/members/remove" => ok(members::remove(q.req("address")?).to_string()),
            "/members/get" => match members::get(q.req("address")?) {
                Some(m) => ok(format!(
                    "{} {:?} moderated={} score={}",
                    m.address, m.status, m.moderated, m.bounce_score
                )),
                None => Ok(HttpResponse::text(404, "not a member")),
            },
            "/members/page" => {
                let page = members::page(
                    q.get("after"),
                    q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10),
                );
                ok(page
                    .into_iter()
                    .map(|m| m.address)
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
            "/members/count" => ok(members::count().to_string()),
            "/members/status" => {
                let status = match q.req("status")? {
                    "enabled" => DeliveryStatus::Enabled,
                    "bounces" => DeliveryStatus::DisabledBounces,
                    "member" => DeliveryStatus::DisabledMember,
                    _ => DeliveryStatus::DisabledOwner,
                };
                ok(members::set_status(q.req("address")?, status).to_string())
            }
            "/members/score" => {
                let score: f64 = q
                    .req("score")?
                    .parse()
                    .map_err(|_| "bad score".to_string())?;
                ok(members::set_bounce_score(q.req("address")?, score).to_string())
            }
            "/members/moderated" => ok(members::set_moderated(
                q.req("address")?,
                q.get("value") == Some("true"),
            )
            .to_string()),
            "/events/emit" => {
                events::emit(&events::Event {
                    kind: q.req("kind")?.to_string(),
                    post_id: q.get("post").map(str::to_string),
                    member: q.get("member").map(str::to_string),
                    key: q.get("key").map(str::to_string),
                });
                ok("emitted".into())
            }
            // One call that emits `n` events, or makes `n` database imports, or sends `n`
            // notices to the owners: the per-call limits' test.
            "/events/flood" => {
                let n: u32 = q.req("n")?.parse().map_err(|_| "n: a number".to_string())?;
                for i in 0..n {
                    events::emit(&events::Event {
                        kind: "flood".into(),
                        post_id: None,
                        member: None,
                        key: Some(i.to_string()),
                    });
                }
                ok(format!("emitted {n}"))
            }
            "/kv/flood" => {
                let n: u32 = q.req("n")?.parse().map_err(|_| "n: a number".to_string())?;
                for _ in 0..n {
                    kv::get("flood");
                }
                ok(format!("read {n}"))
            }
            "/notify/flood" => {
                let n: u32 = q.req("n")?.parse().map_err(|_| "n: a number".to_string())?;
                let mut sent = 0;
                for _ in 0..n {
                    let notice = notify::Notice {
                        to: notify::Target::Owners,
                        subject: "flood".into(),
                        body: String::new(),
                        reply_to: None,
                    };
                    match notify::send(&notice) {
                        Ok(_) => sent += 1,
                        Err(why) => {
                            return Ok(HttpResponse::text(429, format!("{sent} sent; {why}")));
                        }
                    }
                }
                ok(format!("sent {sent}"))
            }
            "/events/count" => {
                let c = events::count(&events::Query {
                    kind: q.req("kind")?.to_string(),
                    post_id: q.get("post").map(str::to_string),
                    key: q.get("key").map(str::to_string),
                    since: None,
                });
                ok(format!("{} {}", c.total, c.unique_members))
            }
            "/notify" => {
                let to = match q.req("to")? {
                    "owners" => notify::Target::Owners,
                    a => notify::Target::Address(a.to_string()),
                };
                let subject = q.get("subject").unwrap_or("notice").to_string();
                match notify::send(&notify::Notice {
                    to,
                    subject,
                    body,
                    reply_to: None,
                }) {
                    Ok(id) => ok(id),
                    Err(why) => Ok(HttpResponse::text(400, why)),
                }
            }
            "/stats" => {
                let n = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                let rows = stats::hourly(n("start"), n("end"), q.get("node"));
                ok(rows
                    .iter()
                    .map(|h| {
                        format!(
                            "{} {} {} {} {}",
                            h.hour, h.node, h.attempted, h.succeeded, h.failed
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
            _ => Ok(HttpResponse::text(404, "no such probe")),
        }
    }
}

struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn req(&self, key: &str) -> Result<&str, String> {
        self.get(key)
            .ok_or_else(|| format!("missing query parameter `{key}`"))
    }
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

roost_plugin_sdk::export_plugin!(
    Probe,
    config = ProbeConfig,
    hooks = [on_post, on_deliver, on_http, on_schedule]
);

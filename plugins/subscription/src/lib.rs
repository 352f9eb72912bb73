//! subscription: joining and leaving a list by mail to `NAME-request@`.
//!
//! ```toml
//! [[plugin]]
//! use = "subscription"
//! policy = "confirm"      # open | confirm (double opt-in, default) | approval | closed
//! who = "nobody"          # who may get the member list with `who`: nobody | members | anyone
//! confirm_days = 7        # how long a confirmation stays valid
//! welcome = "Welcome to {list}, {name}!"   # templates: {list} {address} {name} {request}
//! goodbye = "You have left {list}."
//! ```
//!
//! Commands: `subscribe [name]` (`join`), `unsubscribe` (`leave`), `help`, `who`. The host
//! keeps the confirmations and carries each out once; the welcome and goodbye notices are
//! queued with them and sent only when confirmed.

use roost_plugin_sdk::{
    Command, CommandReply, Deserialize, HookResult, Plugin,
    host::{
        confirm::{self, Action, Subscriber},
        members,
        notify::{Notice, Target, send},
    },
};

#[derive(Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(crate = "roost_plugin_sdk::serde", rename_all = "lowercase")]
enum Policy {
    /// Anyone who asks is subscribed at once.
    Open,
    /// The subscriber confirms by answering a mail or opening a link (double opt-in).
    #[default]
    Confirm,
    /// An owner approves each request.
    Approval,
    Closed,
}

#[derive(Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(crate = "roost_plugin_sdk::serde", rename_all = "lowercase")]
enum Who {
    #[default]
    Nobody,
    Members,
    Anyone,
}

#[derive(Deserialize, Default)]
#[serde(crate = "roost_plugin_sdk::serde", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    policy: Policy,
    #[serde(default)]
    who: Who,
    confirm_days: Option<u32>,
    welcome: Option<String>,
    goodbye: Option<String>,
}

const WELCOME: &str = "Welcome to {list}!\n\nTo post, write to {list}.\n\
To leave, send \"unsubscribe\" to {request}, or use the unsubscribe link of any post.\n";
const GOODBYE: &str = "You have left {list}; {address} gets no more of its posts.\n\
To come back, send \"subscribe\" to {request}.\n";

struct Subscription;

/// What a command needs to know about its list and sender.
struct Ctx {
    config: Config,
    list: String,
    request: String,
    sender: String,
    name: Option<String>,
}

impl Ctx {
    fn fill(&self, template: &str) -> String {
        template
            .replace("{list}", &self.list)
            .replace("{request}", &self.request)
            .replace("{address}", &self.sender)
            .replace("{name}", self.name.as_deref().unwrap_or(&self.sender))
    }

    fn valid_for(&self) -> u64 {
        u64::from(self.config.confirm_days.unwrap_or(7).clamp(1, 30)) * 86_400
    }

    fn welcome(&self) -> Notice {
        Notice {
            to: Target::Address(self.sender.clone()),
            subject: format!("Welcome to {}", self.list),
            body: self.fill(self.config.welcome.as_deref().unwrap_or(WELCOME)),
            reply_to: None,
        }
    }

    fn goodbye(&self) -> Notice {
        Notice {
            to: Target::Address(self.sender.clone()),
            subject: format!("You have left {}", self.list),
            body: self.fill(self.config.goodbye.as_deref().unwrap_or(GOODBYE)),
            reply_to: None,
        }
    }
}

impl Plugin for Subscription {
    fn on_command(command: Command) -> HookResult<CommandReply> {
        let config: Config = roost_plugin_sdk::config()?;
        let list = command.message.list_address.clone();
        let (local, domain) = list.split_once('@').unwrap_or((&list, ""));
        let name = Some(command.args.join(" ")).filter(|n| !n.trim().is_empty());
        let ctx = Ctx {
            config,
            request: format!("{local}-request@{domain}"),
            list: list.clone(),
            sender: command.sender.clone(),
            name,
        };
        let reply = match command.verb.as_str() {
            "subscribe" | "join" => subscribe(&ctx)?,
            "unsubscribe" | "leave" | "signoff" => unsubscribe(&ctx)?,
            "help" | "info" => help(&ctx),
            "who" | "members" => who(&ctx),
            _ => return Ok(CommandReply::Continue),
        };
        Ok(CommandReply::Reply(reply))
    }
}

fn subscribe(ctx: &Ctx) -> Result<String, String> {
    if members::get(&ctx.sender).is_some() {
        return Ok(format!(
            "{} is already subscribed to {}.",
            ctx.sender, ctx.list
        ));
    }
    let subscriber = Subscriber {
        address: ctx.sender.clone(),
        name: ctx.name.clone(),
    };
    match ctx.config.policy {
        Policy::Closed => Ok(format!("{} does not take new subscriptions.", ctx.list)),
        Policy::Open => {
            members::add(&ctx.sender, ctx.name.as_deref())?;
            send(&ctx.welcome())?;
            // The welcome is the answer.
            Ok(String::new())
        }
        Policy::Confirm => {
            let pending = confirm::create(
                &Action::Subscribe(subscriber),
                Some(&ctx.welcome()),
                ctx.valid_for(),
            )?;
            Ok(format!(
                "Someone (hopefully you) asked to subscribe {} to {}.\n\n\
                 To confirm, reply to this mail, or write to:\n  {}\nor open:\n  {}\n\n\
                 If you did not ask, ignore this mail: nothing happens.\n",
                ctx.sender, ctx.list, pending.address, pending.url
            ))
        }
        Policy::Approval => {
            let pending = confirm::create(
                &Action::Subscribe(subscriber),
                Some(&ctx.welcome()),
                ctx.valid_for(),
            )?;
            send(&Notice {
                to: Target::Owners,
                subject: format!("Subscription request for {}", ctx.list),
                body: format!(
                    "{} asks to join {}.\n\nTo approve, write to {}\n  or open {}\n\n\
                     To refuse, do nothing.\n",
                    ctx.sender, ctx.list, pending.address, pending.url
                ),
                // No Reply-To: any answer to that address approves, and an owner's
                // "no" must not.
                reply_to: None,
            })?;
            Ok(format!(
                "Your request to join {} waits for the owners' approval.",
                ctx.list
            ))
        }
    }
}

fn unsubscribe(ctx: &Ctx) -> Result<String, String> {
    if members::get(&ctx.sender).is_none() {
        return Ok(format!("{} is not subscribed to {}.", ctx.sender, ctx.list));
    }
    // Confirmed even on an open list: a forged sender must not unsubscribe anyone.
    let pending = confirm::create(
        &Action::Unsubscribe(ctx.sender.clone()),
        Some(&ctx.goodbye()),
        ctx.valid_for(),
    )?;
    Ok(format!(
        "To confirm that {} leaves {}, reply to this mail, or write to:\n  {}\nor open:\n  {}\n",
        ctx.sender, ctx.list, pending.address, pending.url
    ))
}

fn help(ctx: &Ctx) -> String {
    let mut text = format!(
        "Commands for {list}, sent in the subject or the first line of a mail to {request}:\n\n\
         subscribe [your name]   join the list\n\
         unsubscribe             leave the list\n\
         help                    this text\n",
        list = ctx.list,
        request = ctx.request
    );
    if ctx.config.who != Who::Nobody {
        text.push_str("who                     the list's members\n");
    }
    text
}

fn who(ctx: &Ctx) -> String {
    let allowed = match ctx.config.who {
        Who::Nobody => false,
        Who::Members => members::get(&ctx.sender).is_some(),
        Who::Anyone => true,
    };
    if !allowed {
        return format!("The member list of {} is not available to you.", ctx.list);
    }
    let mut out = format!("Members of {}:\n\n", ctx.list);
    let mut after: Option<String> = None;
    let mut shown = 0;
    loop {
        let page = members::page(after.as_deref(), 1000);
        if page.is_empty() || shown >= 10_000 {
            break;
        }
        for m in &page {
            out.push_str(&m.address);
            out.push('\n');
        }
        shown += page.len();
        after = page.last().map(|m| m.address.clone());
    }
    out
}

roost_plugin_sdk::export_plugin!(Subscription, config = Config, hooks = [on_command]);

//! The imports through which a plugin asks the host for decisions that must happen once in
//! the cluster: pending confirmations (`confirm`) and the hold queue (`held`). The plugin
//! chooses; the host carries it out with a conditional update.

use super::{
    bindings::roost::list::{confirm, held, notify},
    error::HostFailure,
    state::HostState,
};
use crate::{
    message,
    store::{self, Action, Notice, NoticeTarget},
};

/// Longest a confirmation may wait.
const MAX_VALID_SECONDS: u64 = 30 * 86_400;

fn trap(what: &str, e: store::StoreError) -> wasmtime::Error {
    wasmtime::Error::new(HostFailure(format!("{what}: {e}")))
}

fn one_line(text: &str) -> bool {
    !text.contains(['\r', '\n'])
}

impl confirm::Host for HostState {
    async fn create(
        &mut self,
        action: confirm::Action,
        done: Option<notify::Notice>,
        valid_for_seconds: u64,
    ) -> wasmtime::Result<Result<confirm::Pending, String>> {
        let list = self.list()?.to_string();
        let Some(links) = self.links.clone() else {
            return Err(wasmtime::Error::new(HostFailure(
                "confirm: no token key in this context".into(),
            )));
        };
        let action = match action {
            confirm::Action::Subscribe(s) => Action::Subscribe {
                address: s.address.trim().to_string(),
                name: s.name.filter(|n| !n.trim().is_empty()),
            },
            confirm::Action::Unsubscribe(a) => Action::Unsubscribe {
                address: a.trim().to_string(),
            },
        };
        let address = match &action {
            Action::Subscribe { address, .. } | Action::Unsubscribe { address } => address,
        };
        if let Err(why) = store::check_address(address) {
            return Ok(Err(why));
        }
        if let Action::Subscribe { name: Some(n), .. } = &action
            && !one_line(n)
        {
            return Ok(Err("a name must be one line".into()));
        }
        let done = match done {
            None => None,
            Some(n) if !one_line(&n.subject) => {
                return Ok(Err("a notice subject must be one line".into()));
            }
            Some(n) => Some(Notice {
                to: match n.to {
                    notify::Target::Owners => NoticeTarget::Owners,
                    notify::Target::Address(a) => NoticeTarget::Address(a),
                },
                subject: n.subject,
                body: n.body,
                reply_to: None,
            }),
        };
        let valid_ms = i64::try_from(valid_for_seconds.clamp(60, MAX_VALID_SECONDS) * 1000)
            .unwrap_or(i64::MAX);
        let id = self
            .db()?
            .create_confirmation(&list, &action, done.as_ref(), valid_ms)
            .await
            .map_err(|e| trap("confirm.create", e))?;
        let token = crate::confirm::row_token(&links.keys, id);
        Ok(Ok(confirm::Pending {
            address: links.address(&list, &token),
            url: links.url(&token),
        }))
    }
}

impl held::Host for HostState {
    async fn posts(&mut self, limit: u32) -> wasmtime::Result<Vec<held::HeldPost>> {
        let list = self.list()?.to_string();
        let posts = self
            .db()?
            .messages_in_state(&list, "held", limit.min(1000))
            .await
            .map_err(|e| trap("held.posts", e))?;
        Ok(posts
            .into_iter()
            .map(|m| held::HeldPost {
                subject: message::header(&m.raw, "subject").unwrap_or_default(),
                id: m.id,
                sender: m.mail_from,
                reason: m.reason.unwrap_or_default(),
                received_at: u64::try_from(m.received_at).unwrap_or(0),
            })
            .collect())
    }

    async fn decide(
        &mut self,
        id: String,
        approve: bool,
        reason: String,
    ) -> wasmtime::Result<Result<bool, String>> {
        if !one_line(&reason) {
            return Ok(Err("a reason must be one line".into()));
        }
        let list = self.list()?.to_string();
        let db = self.db()?;
        let changed = if approve {
            db.approve_held(&list, &id).await
        } else {
            db.reject_held(&list, &id, &reason).await
        }
        .map_err(|e| trap("held.decide", e))?;
        if changed {
            let counter = if approve {
                crate::metrics::Counter::PostsAccepted
            } else {
                crate::metrics::Counter::PostsRejected
            };
            crate::metrics::global().add(counter, 1);
        }
        Ok(Ok(changed))
    }
}

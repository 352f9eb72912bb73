//! The host capabilities a plugin imports, each confined to the call's list and plugin.
//! Database failures trap the call (see `HostFailure`), so a plugin never acts on a
//! half-answer; the list's failure policy then decides what happens to the post.

use super::{
    bindings::roost::list::{clock, config, events, kv, log, members, notify, stats, types},
    error::HostFailure,
    state::{HostState, MAX_EVENTS, MAX_NOTICES},
};
use crate::store::{self, KvScope, NoticeTarget};

/// Plugin log lines longer than this are cut; a call may write at most `MAX_LOG_LINES`.
const MAX_LOG_BYTES: usize = 4096;
const MAX_LOG_LINES: u32 = 200;

fn host_err(what: &str, e: store::StoreError) -> wasmtime::Error {
    wasmtime::Error::new(HostFailure(format!("{what}: {e}")))
}

impl HostState {
    fn kv_scope(&self) -> KvScope {
        KvScope {
            list: self.scope.list.clone(),
            plugin: self.scope.plugin.clone(),
            quota: store::KvQuota {
                keys: self.scope.limits.kv_keys,
                bytes: self.scope.limits.kv_bytes,
            },
        }
    }

    pub(super) fn list(&self) -> wasmtime::Result<&str> {
        if self.scope.list.is_empty() {
            return Err(wasmtime::Error::new(HostFailure(
                "members: a node-level plugin has no list".into(),
            )));
        }
        Ok(&self.scope.list)
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let mut message = message;
        if message.len() > MAX_LOG_BYTES {
            let mut cut = MAX_LOG_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [cut]");
        }
        if matches!(level, log::Level::Error) {
            self.last_error = Some(message.clone());
        }
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return Ok(());
        }
        let (list, plugin, hook) = (&self.scope.list, &self.scope.plugin, self.hook);
        match level {
            log::Level::Trace => tracing::trace!(target: "plugin", list, plugin, hook, "{message}"),
            log::Level::Debug => tracing::debug!(target: "plugin", list, plugin, hook, "{message}"),
            log::Level::Info => tracing::info!(target: "plugin", list, plugin, hook, "{message}"),
            log::Level::Warn => tracing::warn!(target: "plugin", list, plugin, hook, "{message}"),
            log::Level::Error => tracing::error!(target: "plugin", list, plugin, hook, "{message}"),
        }
        Ok(())
    }
}

impl config::Host for HostState {
    async fn get(&mut self) -> wasmtime::Result<String> {
        Ok(self.scope.config.clone())
    }
}

impl clock::Host for HostState {
    async fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(u64::try_from(store::now_ms()).unwrap_or(0))
    }
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<kv::Entry>> {
        let entry = self.db()?.kv_get(&self.kv_scope(), &key).await;
        Ok(entry.map_err(|e| host_err("kv.get", e))?.map(entry_to_wit))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<u64> {
        let v = self.db()?.kv_set(&self.kv_scope(), &key, &value).await;
        v.map_err(|e| host_err("kv.set", e))
    }

    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<u64>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<u64, kv::Conflict>> {
        let r = self
            .db()?
            .kv_compare_and_swap(&self.kv_scope(), &key, expected, &value)
            .await;
        Ok(r.map_err(|e| host_err("kv.compare-and-swap", e))?
            .map_err(|current| kv::Conflict {
                current: current.map(entry_to_wit),
            }))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<bool> {
        let r = self.db()?.kv_delete(&self.kv_scope(), &key).await;
        r.map_err(|e| host_err("kv.delete", e))
    }

    async fn list_keys(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Vec<String>> {
        let r = self
            .db()?
            .kv_list_keys(&self.kv_scope(), &prefix, after.as_deref(), limit)
            .await;
        r.map_err(|e| host_err("kv.list-keys", e))
    }
}

/// Bad input from the plugin is its to handle (`err`); a database failure traps the call.
fn refusal_or_trap<T>(what: &str, r: store::Result<T>) -> wasmtime::Result<Result<T, String>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(store::StoreError::Invalid(why)) => Ok(Err(why)),
        Err(e) => Err(host_err(what, e)),
    }
}

fn entry_to_wit(e: store::KvEntry) -> kv::Entry {
    kv::Entry {
        value: e.value,
        version: e.version,
    }
}

pub(crate) fn member_to_wit(m: store::Member) -> types::Member {
    types::Member {
        address: m.address,
        name: m.name,
        status: status_to_wit(m.status),
        moderated: m.moderated,
        bounce_score: m.bounce_score,
        joined_at: u64::try_from(m.joined_at).unwrap_or(0),
    }
}

fn status_to_wit(s: store::DeliveryStatus) -> types::DeliveryStatus {
    match s {
        store::DeliveryStatus::Enabled => types::DeliveryStatus::Enabled,
        store::DeliveryStatus::DisabledBounces => types::DeliveryStatus::DisabledBounces,
        store::DeliveryStatus::DisabledMember => types::DeliveryStatus::DisabledMember,
        store::DeliveryStatus::DisabledOwner => types::DeliveryStatus::DisabledOwner,
    }
}

fn status_from_wit(s: types::DeliveryStatus) -> store::DeliveryStatus {
    match s {
        types::DeliveryStatus::Enabled => store::DeliveryStatus::Enabled,
        types::DeliveryStatus::DisabledBounces => store::DeliveryStatus::DisabledBounces,
        types::DeliveryStatus::DisabledMember => store::DeliveryStatus::DisabledMember,
        types::DeliveryStatus::DisabledOwner => store::DeliveryStatus::DisabledOwner,
    }
}

impl members::Host for HostState {
    async fn get(&mut self, address: String) -> wasmtime::Result<Option<types::Member>> {
        let r = self.db()?.member(self.list()?, &address).await;
        Ok(r.map_err(|e| host_err("members.get", e))?
            .map(member_to_wit))
    }

    async fn add(
        &mut self,
        address: String,
        name: Option<String>,
    ) -> wasmtime::Result<Result<bool, String>> {
        let r = self
            .db()?
            .add_member(self.list()?, &address, name.as_deref())
            .await;
        refusal_or_trap("members.add", r)
    }

    async fn remove(&mut self, address: String) -> wasmtime::Result<bool> {
        let r = self.db()?.remove_member(self.list()?, &address).await;
        r.map_err(|e| host_err("members.remove", e))
    }

    async fn page(
        &mut self,
        after: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Vec<types::Member>> {
        let r = self
            .db()?
            .members_page(self.list()?, after.as_deref(), limit)
            .await;
        Ok(r.map_err(|e| host_err("members.page", e))?
            .into_iter()
            .map(member_to_wit)
            .collect())
    }

    async fn count(&mut self) -> wasmtime::Result<u64> {
        let r = self.db()?.member_count(self.list()?).await;
        r.map_err(|e| host_err("members.count", e))
    }

    async fn set_status(
        &mut self,
        address: String,
        status: types::DeliveryStatus,
    ) -> wasmtime::Result<bool> {
        let r = self
            .db()?
            .set_member_status(self.list()?, &address, status_from_wit(status))
            .await;
        r.map_err(|e| host_err("members.set-status", e))
    }

    async fn set_bounce_score(&mut self, address: String, score: f64) -> wasmtime::Result<bool> {
        let r = self
            .db()?
            .set_member_bounce_score(self.list()?, &address, score)
            .await;
        r.map_err(|e| host_err("members.set-bounce-score", e))
    }

    async fn set_moderated(&mut self, address: String, moderated: bool) -> wasmtime::Result<bool> {
        let r = self
            .db()?
            .set_member_moderated(self.list()?, &address, moderated)
            .await;
        r.map_err(|e| host_err("members.set-moderated", e))
    }

    async fn note_bounce(&mut self, address: String, note: String) -> wasmtime::Result<bool> {
        let list = self.list()?.to_string();
        tracing::info!(list = %list, plugin = %self.scope.plugin, member = %address, note = %note, "bounce decision");
        let r = self.db()?.note_member_bounce(&list, &address, &note).await;
        r.map_err(|e| host_err("members.note-bounce", e))
    }
}

impl events::Host for HostState {
    async fn emit(&mut self, event: events::Event) -> wasmtime::Result<()> {
        self.events += 1;
        if self.events > MAX_EVENTS {
            return Err(wasmtime::Error::new(HostFailure(format!(
                "events.emit: more than {MAX_EVENTS} events in one call"
            ))));
        }
        let event = store::NewEvent {
            kind: event.kind,
            post_id: event.post_id,
            member: event.member,
            key: event.key,
        };
        let r = self
            .db()?
            .emit_event(&self.scope.list, &self.scope.plugin, &event)
            .await;
        r.map_err(|e| host_err("events.emit", e))
    }

    async fn count(&mut self, query: events::Query) -> wasmtime::Result<events::Counts> {
        let query = store::EventQuery {
            kind: query.kind,
            post_id: query.post_id,
            key: query.key,
            since: query.since.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        };
        let c = self.db()?.count_events(&self.scope.list, &query).await;
        let c = c.map_err(|e| host_err("events.count", e))?;
        Ok(events::Counts {
            total: c.total,
            unique_members: c.unique_members,
        })
    }
}

impl notify::Host for HostState {
    async fn send(&mut self, notice: notify::Notice) -> wasmtime::Result<Result<String, String>> {
        self.notices += 1;
        if self.notices > MAX_NOTICES {
            return Ok(Err(format!("at most {MAX_NOTICES} notices in one call")));
        }
        // Only people the list already writes to: its owners (as `Target::Owners`), its
        // members, and whoever sent the post, command or bounced copy in hand. A plugin
        // cannot make the list mail strangers (a buggy or hostile plugin as a spam relay).
        if let notify::Target::Address(a) = &notice.to
            && !self
                .in_hand
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(a.trim()))
        {
            let list = self.list().map(str::to_string);
            let member = match list {
                Ok(list) => self.db()?.member(&list, a).await,
                Err(_) => Ok(None),
            };
            if member.map_err(|e| host_err("notify.send", e))?.is_none() {
                return Ok(Err(format!(
                    "`{a}` is not a member or the sender in hand: notify writes only to them (and to the owners, as `owners`)"
                )));
            }
        }
        let notice = store::Notice {
            to: match notice.to {
                notify::Target::Owners => NoticeTarget::Owners,
                notify::Target::Address(a) => NoticeTarget::Address(a),
            },
            subject: notice.subject,
            body: notice.body,
            reply_to: notice.reply_to,
        };
        let id = self
            .db()?
            .queue_notice(&self.scope.list, &self.scope.plugin, &notice)
            .await;
        refusal_or_trap("notify.send", id.map(store::notice_message_id))
    }
}

impl stats::Host for HostState {
    async fn hourly(
        &mut self,
        start: u64,
        end: u64,
        node: Option<String>,
    ) -> wasmtime::Result<Vec<stats::Hour>> {
        let ms = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
        let rows = self
            .db()?
            .hourly_stats(ms(start), ms(end), node.as_deref())
            .await;
        Ok(rows
            .map_err(|e| host_err("stats.hourly", e))?
            .into_iter()
            .map(|h| stats::Hour {
                hour: u64::try_from(h.hour).unwrap_or(0),
                node: h.node,
                attempted: h.attempted,
                succeeded: h.succeeded,
                failed: h.failed,
            })
            .collect())
    }
}

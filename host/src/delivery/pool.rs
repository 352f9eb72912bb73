//! Idle outbound connections kept for the next batch to the same host.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::client::Connection;

/// An idle connection older than this is closed rather than reused (receivers drop idle
/// clients after a while; Postfix's own cache keeps them 2 s to 5 s).
const IDLE: Duration = Duration::from_secs(5);
/// Idle connections kept per host (a smarthost serves every batch in flight).
const PER_HOST: usize = 64;

#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<(Instant, Connection)>>>,
}

impl Pool {
    /// A fresh-enough idle connection to one of `addrs`, in their order.
    pub fn take(&self, addrs: &[SocketAddr]) -> Option<Connection> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().ok()?;
            let mut found = None;
            'outer: for addr in addrs {
                if let Some(list) = idle.get_mut(addr) {
                    while let Some((at, conn)) = list.pop() {
                        if at.elapsed() < IDLE {
                            found = Some(conn);
                            break 'outer;
                        }
                        stale.push(conn);
                    }
                }
            }
            found
        };
        close_all(stale);
        found
    }

    pub fn put(&self, conn: Connection) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let list = idle.entry(conn.peer).or_default();
        if list.len() < PER_HOST {
            list.push((Instant::now(), conn));
        } else {
            drop(idle);
            close_all(vec![conn]);
        }
    }

    /// Close connections idle for too long.
    pub fn reap(&self) {
        let mut stale = Vec::new();
        if let Ok(mut idle) = self.idle.lock() {
            for list in idle.values_mut() {
                let (keep, old): (Vec<_>, Vec<_>) =
                    list.drain(..).partition(|(at, _)| at.elapsed() < IDLE);
                *list = keep;
                stale.extend(old.into_iter().map(|(_, c)| c));
            }
        }
        close_all(stale);
    }

    /// Close everything (node stopping).
    pub async fn close(&self) {
        let all: Vec<Connection> = match self.idle.lock() {
            Ok(mut idle) => idle.drain().flat_map(|(_, l)| l).map(|(_, c)| c).collect(),
            Err(_) => Vec::new(),
        };
        for c in all {
            c.quit().await;
        }
    }
}

fn close_all(conns: Vec<Connection>) {
    for c in conns {
        crate::spawn(c.quit());
    }
}

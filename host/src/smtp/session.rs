//! One SMTP session: the command loop (with pipelining), DATA, and the hand-over to TLS.
//!
//! Replies are buffered and flushed only when the client has nothing more in flight, so a
//! pipelining client gets its replies in one write. Every read has the idle timeout; every
//! limit has its own reply (see `reply.rs`).

use std::{collections::HashMap, net::SocketAddr, time::Instant};

use smtp_proto::{Error as ProtoError, Request};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::watch,
};

use super::{
    Intake,
    address::Target,
    reply::{self, Reply},
};
use crate::{
    message,
    store::{NewMessage, now_ms},
};

/// A session closed by a limit (idle, lifetime, errors), counted.
fn cut() {
    crate::metrics::global().add(crate::metrics::Counter::SmtpSessionsCut, 1);
}

/// A message refused at the end of its data by a limit, counted.
fn refused() {
    crate::metrics::global().add(crate::metrics::Counter::SmtpMessagesRefused, 1);
}

/// Largest message handed to this node's processors in memory; larger ones wait in the
/// database for a claim, so the in-memory queue stays small whatever arrives.
const HANDOVER_MAX: usize = 64 * 1024;

/// Longest command line we read (RFC 5321 says 512; extensions make real ones longer).
const MAX_COMMAND: usize = 4096;

/// Why a session ended.
pub(super) enum End {
    /// Closed (QUIT, error budget, timeout, the peer went away).
    Closed,
    /// The client asked for TLS and got 220: the caller wraps the stream and goes on.
    StartTls,
}

/// Why a read could not give a line.
enum Stop {
    Eof,
    Idle,
    /// The session reached `max_session_time`.
    Lifetime,
    Io,
    /// The node is stopping.
    Shutdown,
}

enum Line {
    Text(Vec<u8>),
    TooLong,
}

struct Transaction {
    mail_from: String,
    targets: Vec<(String, Target)>,
    /// Counted by the spool while under way: its writer may wait for this message.
    open: crate::store::spool::Open,
}

pub(super) struct Session<'a, S> {
    io: S,
    intake: &'a Intake,
    peer: SocketAddr,
    tls: bool,
    inbuf: Vec<u8>,
    start: usize,
    /// Discarding the rest of an overlong line.
    skipping: bool,
    out: Vec<u8>,
    helo: Option<String>,
    esmtp: bool,
    tx: Option<Transaction>,
    errors: u32,
    shutdown: watch::Receiver<bool>,
    /// When `max_session_time` runs out.
    ends: Instant,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Session<'a, S> {
    pub fn new(
        io: S,
        intake: &'a Intake,
        peer: SocketAddr,
        tls: bool,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Session {
            shutdown,
            io,
            intake,
            peer,
            tls,
            inbuf: Vec::with_capacity(8192),
            start: 0,
            skipping: false,
            out: Vec::with_capacity(1024),
            helo: None,
            esmtp: false,
            tx: None,
            errors: 0,
            ends: Instant::now() + intake.config.max_session_time,
        }
    }

    pub fn into_io(self) -> S {
        self.io
    }

    /// When the session must end; STARTTLS carries it over to the session that follows.
    pub fn ends(&self) -> Instant {
        self.ends
    }

    pub fn end_by(&mut self, ends: Instant) {
        self.ends = ends;
    }

    pub async fn greet(&mut self) {
        // Sent with the first flush, before the first read.
        let text = format!("{} ESMTP Roost", self.intake.hostname);
        reply::write_line(&mut self.out, 220, "", &text);
    }

    pub async fn run(&mut self) -> End {
        loop {
            let line = match self.read_line(MAX_COMMAND).await {
                Ok(line) => line,
                Err(Stop::Idle) => {
                    cut();
                    self.send(reply::IDLE);
                    let _ = self.flush().await;
                    return End::Closed;
                }
                Err(Stop::Lifetime) => {
                    cut();
                    self.send(reply::SESSION_TOO_LONG);
                    let _ = self.flush().await;
                    return End::Closed;
                }
                Err(Stop::Shutdown) => {
                    self.send_shutdown().await;
                    return End::Closed;
                }
                Err(Stop::Eof | Stop::Io) => return End::Closed,
            };
            let outcome = match line {
                Line::TooLong => {
                    self.send(reply::LINE_TOO_LONG);
                    None
                }
                Line::Text(line) => self.command(&line).await,
            };
            if let Some(end) = outcome {
                let _ = self.flush().await;
                return end;
            }
            if self.errors >= self.intake.config.max_errors {
                cut();
                self.send(reply::TOO_MANY_ERRORS);
                let _ = self.flush().await;
                return End::Closed;
            }
        }
    }

    /// Queue a reply; errors count against the session's budget.
    fn send(&mut self, r: Reply) {
        if r.is_error() {
            self.errors += 1;
        }
        r.write(&mut self.out);
    }

    /// Handle one command line; `Some` ends the command loop.
    async fn command(&mut self, line: &[u8]) -> Option<End> {
        // Control characters (NUL above all) have no place in a command, and PostgreSQL
        // would refuse them in the text columns the envelope is stored in.
        let body = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(line);
        if body.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            self.send(reply::CONTROL_CHARACTERS);
            return None;
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            Err(e) => {
                self.send(match e {
                    ProtoError::UnknownCommand => reply::UNKNOWN_COMMAND,
                    ProtoError::InvalidSenderAddress => reply::BAD_SENDER,
                    ProtoError::InvalidRecipientAddress => reply::BAD_RECIPIENT,
                    ProtoError::UnsupportedParameter { .. } => reply::UNSUPPORTED_PARAM,
                    _ => reply::SYNTAX,
                });
                return None;
            }
        };
        match request {
            Request::Ehlo { host } => {
                self.reset(Some(host.into_owned()), true);
                self.ehlo();
            }
            Request::Helo { host } => {
                self.reset(Some(host.into_owned()), false);
                let text = self.intake.hostname.clone();
                reply::write_line(&mut self.out, 250, "", &text);
            }
            Request::Mail { from } => {
                if self.helo.is_none() {
                    self.send(reply::NEED_HELO);
                } else if self.tx.is_some() {
                    self.send(reply::NESTED_MAIL);
                } else if from.size as u64 > self.intake.config.max_message_size {
                    self.send(reply::TOO_BIG);
                } else {
                    self.tx = Some(Transaction {
                        mail_from: from.address.into_owned(),
                        targets: Vec::new(),
                        open: self.intake.spool.open(),
                    });
                    self.send(reply::SENDER_OK);
                }
            }
            Request::Rcpt { to } => self.rcpt(&to.address),
            Request::Data => return self.data().await,
            Request::Rset => {
                self.tx = None;
                self.send(reply::OK);
            }
            Request::Noop { .. } => self.send(reply::OK),
            Request::Quit => {
                self.send(reply::BYE);
                return Some(End::Closed);
            }
            Request::Help { .. } => self.send(reply::HELP),
            Request::Vrfy { .. } | Request::Expn { .. } => self.send(reply::VRFY_REFUSED),
            Request::StartTls => {
                if self.tls {
                    self.send(reply::TLS_ALREADY);
                } else if self.intake.tls.is_none() {
                    self.send(reply::TLS_UNAVAILABLE);
                } else {
                    self.send(reply::START_TLS);
                    // RFC 3207: anything the client pipelined after STARTTLS is discarded,
                    // or an attacker could inject commands into the protected session.
                    self.inbuf.clear();
                    self.start = 0;
                    return Some(End::StartTls);
                }
            }
            _ => self.send(reply::NOT_IMPLEMENTED),
        }
        None
    }

    fn reset(&mut self, helo: Option<String>, esmtp: bool) {
        self.helo = helo;
        self.esmtp = esmtp;
        self.tx = None;
    }

    fn ehlo(&mut self) {
        let mut lines = vec![
            self.intake.hostname.clone(),
            "PIPELINING".to_string(),
            format!("SIZE {}", self.intake.config.max_message_size),
            "8BITMIME".to_string(),
            "SMTPUTF8".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
        ];
        if self.intake.tls.is_some() && !self.tls {
            lines.push("STARTTLS".to_string());
        }
        lines.push("HELP".to_string());
        let last = lines.len() - 1;
        for (i, l) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.out
                .extend_from_slice(format!("250{sep}{l}\r\n").as_bytes());
        }
    }

    fn rcpt(&mut self, address: &str) {
        let max = self.intake.config.max_recipients as usize;
        let target = self.intake.directory.classify(address);
        let Some(tx) = self.tx.as_mut() else {
            self.send(reply::NEED_MAIL);
            return;
        };
        if tx.targets.len() >= max {
            // 452 is a temporary reply: the client sends the rest in another transaction.
            reply::TOO_MANY_RECIPIENTS.write(&mut self.out);
            return;
        }
        match target {
            Some(t) if !self.intake.directory.token_verifies(&t) => self.send(reply::BAD_TOKEN),
            // One list address per transaction: any other (another list, another address
            // of this list, another token) waits for a transaction of its own, so one
            // message is one stored copy and brings its sender at most one answer.
            Some(t) if tx.targets.iter().any(|(_, other)| *other != t) => {
                reply::ONE_ADDRESS_PER_LIST.write(&mut self.out);
            }
            Some(t) => {
                tx.targets.push((address.to_string(), t));
                self.send(reply::RECIPIENT_OK);
            }
            None => self.send(reply::NO_SUCH_LIST),
        }
    }

    async fn data(&mut self) -> Option<End> {
        match &self.tx {
            None => {
                self.send(reply::NEED_MAIL);
                return None;
            }
            Some(tx) if tx.targets.is_empty() => {
                self.send(reply::NEED_RCPT);
                return None;
            }
            Some(_) => {}
        }
        self.send(reply::START_DATA);
        let body = match self.read_data().await {
            Ok(body) => body,
            Err(Stop::Idle) => {
                cut();
                self.send(reply::IDLE);
                return Some(End::Closed);
            }
            Err(Stop::Lifetime) => {
                cut();
                self.send(reply::SESSION_TOO_LONG);
                return Some(End::Closed);
            }
            Err(Stop::Shutdown) => {
                reply::SHUTTING_DOWN.write(&mut self.out);
                return Some(End::Closed);
            }
            // The peer went away mid-DATA: nothing was acknowledged, nothing is kept.
            Err(Stop::Eof | Stop::Io) => return Some(End::Closed),
        };
        let tx = self.tx.take()?;
        match body {
            Data::TooBig => {
                refused();
                self.send(reply::TOO_BIG);
                let _ = self.flush().await;
                self.drain().await;
                return Some(End::Closed);
            }
            Data::LineTooLong => {
                refused();
                self.send(reply::LINE_TOO_LONG);
            }
            Data::NoMemory => {
                refused();
                reply::DATA_MEMORY_FULL.write(&mut self.out);
            }
            // A transaction has one target (see `rcpt`), so one stored copy: the
            // reservation made while reading covers it.
            Data::Complete(bytes, reserved) => {
                let started = Instant::now();
                let mut messages = self.messages(&tx, &bytes);
                let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
                let posts = messages.len();
                // Room in the local queue is reserved before the commit, so a leased job is
                // always handed over (a lease nobody works on would idle until it lapses).
                // Only small posts wait in memory for this node's processors (the queue holds
                // thousands); a big one is processed from the database like any claim.
                let small = bytes.len() <= HANDOVER_MAX;
                let handover = self
                    .intake
                    .local
                    .as_ref()
                    .filter(|_| small)
                    .and_then(|local| {
                        let permits = local.queue.try_reserve_many(posts).ok()?;
                        let until =
                            now_ms() + i64::try_from(local.lease.as_millis()).unwrap_or(30_000);
                        Some((permits, until))
                    });
                if let Some((_, until)) = &handover {
                    for m in messages.iter_mut() {
                        m.lease = Some((self.intake.node.clone(), *until));
                    }
                }
                match self.intake.spool.commit(messages, tx.open).await {
                    Ok(stored) => {
                        if let Some((permits, _)) = handover {
                            for (permit, post) in permits.zip(stored) {
                                permit.send(post.into());
                            }
                        }
                        tracing::debug!(ids = ?ids, bytes = bytes.len(), commit_us = started.elapsed().as_micros() as u64, "stored");
                        let text = format!("OK: queued as {}", ids.join(" "));
                        reply::write_line(&mut self.out, 250, "2.0.0", &text);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot store message");
                        self.send(reply::STORE_FAILED);
                    }
                }
                // The copies are stored (or dropped): their memory goes back to the budget.
                drop(reserved);
            }
        }
        None
    }

    /// One stored message per list addressed (a post to two lists is two posts), each with
    /// our `Received:` on top and a `Message-ID:` when the sender gave none.
    fn messages(&self, tx: &Transaction, body: &[u8]) -> Vec<NewMessage> {
        let mut groups: HashMap<&Target, Vec<String>> = HashMap::new();
        let mut order: Vec<&Target> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (rcpt, target) in &tx.targets {
            let entry = groups.entry(target).or_default();
            if entry.is_empty() {
                order.push(target);
            }
            if seen.insert((target, rcpt)) {
                entry.push(rcpt.clone());
            }
        }
        let now = now_ms();
        let has_message_id = message::header(body, "message-id").is_some();
        order
            .into_iter()
            .map(|target| {
                let rcpts = groups.remove(target).unwrap_or_default();
                let id = uuid::Uuid::now_v7().simple().to_string();
                let mut raw = Vec::with_capacity(body.len() + 300);
                raw.extend(self.received(&id, &rcpts, now));
                raw.extend_from_slice(body);
                if !has_message_id {
                    let value = format!("<{id}@{}>", self.intake.hostname);
                    message::append_field(&mut raw, "Message-ID", &value);
                }
                NewMessage {
                    id,
                    list: target.list.clone(),
                    kind: target.kind,
                    token: target.token.clone(),
                    mail_from: tx.mail_from.clone(),
                    rcpt_to: rcpts,
                    client_ip: self.peer.ip().to_string(),
                    helo: self.helo.clone().unwrap_or_default(),
                    raw,
                    received_at: now,
                    node: self.intake.node.clone(),
                    lease: None,
                }
            })
            .collect()
    }

    fn received(&self, id: &str, rcpts: &[String], now: i64) -> Vec<u8> {
        let helo: String = self
            .helo
            .as_deref()
            .unwrap_or("unknown")
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect();
        let with = match (self.esmtp, self.tls) {
            (true, true) => "ESMTPS",
            (true, false) => "ESMTP",
            (false, _) => "SMTP",
        };
        let for_part = match rcpts {
            [one] => format!("\r\n\tfor <{one}>"),
            _ => String::new(),
        };
        format!(
            "Received: from {helo} ([{ip}])\r\n\tby {host} (Roost {node}) with {with} id {id}{for_part};\r\n\t{date}\r\n",
            ip = self.peer.ip(),
            host = self.intake.hostname,
            node = self.intake.node,
            date = message::rfc5322_date(now),
        )
        .into_bytes()
    }

    /// Read message data up to the lone dot, undoing dot-stuffing. Limits are checked as
    /// the data streams in: reading stops at once when a message passes `max_message_size`
    /// (the session then ends); one with an over-long line, or past the memory budget, is
    /// read to its end (so the session stays in step) but not kept.
    async fn read_data(&mut self) -> Result<Data, Stop> {
        let max_size = usize::try_from(self.intake.config.max_message_size).unwrap_or(usize::MAX);
        let max_line = self.intake.config.max_line_length as usize;
        let mut body = Vec::with_capacity(8192);
        let (mut too_long, mut no_memory) = (false, false);
        // Reserved from the node's budget ahead of the body, a unit at a time.
        let mut reserved: Option<tokio::sync::OwnedSemaphorePermit> = None;
        let mut reserved_bytes = 0usize;
        // Only CRLF "." CRLF ends the data (the DATA command's own CRLF counts as the first).
        // A "." line after a bare LF, or ending in a bare LF, is content: accepting it as the
        // end is what lets a client smuggle a second message past a relay (SMTP smuggling).
        let mut after_crlf = true;
        loop {
            while let Some(nl) = self.inbuf[self.start..].iter().position(|&b| b == b'\n') {
                let end = self.start + nl + 1;
                let line = &self.inbuf[self.start..end];
                self.start = end;
                if std::mem::take(&mut self.skipping) {
                    after_crlf = line.ends_with(b"\r\n");
                    continue;
                }
                if after_crlf && line == b".\r\n" {
                    return Ok(if too_long {
                        Data::LineTooLong
                    } else if no_memory {
                        Data::NoMemory
                    } else {
                        Data::Complete(body, reserved)
                    });
                }
                after_crlf = line.ends_with(b"\r\n");
                if line.len() > max_line {
                    too_long = true;
                }
                let content = line.strip_prefix(b".").unwrap_or(line);
                if !too_long && !no_memory {
                    let needed = body.len() + content.len() + 1;
                    if needed > max_size {
                        // Stop reading: what is left of a message already refused is not
                        // worth receiving (the client declared no SIZE, or lied about it).
                        return Ok(Data::TooBig);
                    }
                    if needed > reserved_bytes {
                        let units = (needed - reserved_bytes).div_ceil(super::DATA_UNIT);
                        let budget = self.intake.data_budget.clone();
                        match budget
                            .try_acquire_many_owned(u32::try_from(units).unwrap_or(u32::MAX))
                        {
                            Ok(more) => {
                                match reserved.as_mut() {
                                    Some(r) => r.merge(more),
                                    None => reserved = Some(more),
                                }
                                reserved_bytes += units * super::DATA_UNIT;
                            }
                            Err(_) => no_memory = true,
                        }
                    }
                    if no_memory {
                        body = Vec::new();
                        reserved = None;
                    } else if after_crlf {
                        body.extend_from_slice(content);
                    } else {
                        // A bare LF is stored as CRLF, as RFC 5322 lines end.
                        body.extend_from_slice(&content[..content.len() - 1]);
                        body.extend_from_slice(b"\r\n");
                    }
                }
            }
            if self.inbuf.len() - self.start > max_line {
                too_long = true;
                self.skipping = true;
                self.start = self.inbuf.len();
            }
            self.fill().await?;
        }
    }

    async fn read_line(&mut self, max: usize) -> Result<Line, Stop> {
        loop {
            if let Some(nl) = self.inbuf[self.start..].iter().position(|&b| b == b'\n') {
                let end = self.start + nl + 1;
                let line = self.inbuf[self.start..end].to_vec();
                self.start = end;
                if std::mem::take(&mut self.skipping) || line.len() > max {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Text(line));
            }
            if self.inbuf.len() - self.start > max {
                self.skipping = true;
                self.start = self.inbuf.len();
            }
            self.fill().await?;
        }
    }

    /// Before closing on a client that is still sending: read and drop a little of what it
    /// sends (at most 1 MiB or 2 s), so the reply just written is not lost to the reset that
    /// closing on unread data causes.
    async fn drain(&mut self) {
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut buf = [0u8; 8192];
        let mut left = 1usize << 20;
        while left > 0 {
            match tokio::time::timeout_at(until, self.io.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
                _ => break,
            }
        }
    }

    /// Flush pending replies, then read more input (with the idle timeout).
    async fn fill(&mut self) -> Result<(), Stop> {
        self.flush().await.map_err(|_| Stop::Io)?;
        if self.start > 0 {
            self.inbuf.drain(..self.start);
            self.start = 0;
        }
        self.inbuf.reserve(8192);
        if *self.shutdown.borrow() {
            return Err(Stop::Shutdown);
        }
        let idle = self.intake.config.idle_timeout;
        let left = self.ends.saturating_duration_since(Instant::now());
        // Checked before reading: a client that always has more waiting never times out.
        if left.is_zero() {
            return Err(Stop::Lifetime);
        }
        tokio::select! {
            read = tokio::time::timeout(idle.min(left), self.io.read_buf(&mut self.inbuf)) => match read {
                Err(_) if left <= idle => Err(Stop::Lifetime),
                Err(_) => Err(Stop::Idle),
                Ok(Ok(0)) => Err(Stop::Eof),
                Ok(Ok(_)) => Ok(()),
                Ok(Err(_)) => Err(Stop::Io),
            },
            _ = self.shutdown.changed() => Err(Stop::Shutdown),
        }
    }

    /// The node is stopping: tell the client to come back (nothing it sent in an open
    /// transaction was acknowledged, so nothing is lost).
    pub async fn send_shutdown(&mut self) {
        reply::SHUTTING_DOWN.write(&mut self.out);
        let _ = self.flush().await;
    }

    /// Send pending replies. A client that stops reading gets the idle timeout here too,
    /// so it cannot hold a session slot by filling its receive window.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let idle = self.intake.config.idle_timeout;
        let write = async {
            self.io.write_all(&self.out).await?;
            self.io.flush().await
        };
        match tokio::time::timeout(idle, write).await {
            Ok(done) => {
                self.out.clear();
                done
            }
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client does not read",
            )),
        }
    }
}

enum Data {
    /// The message, and its reservation of the node's data memory.
    Complete(Vec<u8>, Option<tokio::sync::OwnedSemaphorePermit>),
    TooBig,
    LineTooLong,
    /// Keeping it would pass `max_data_memory`: the sender tries again later.
    NoMemory,
}

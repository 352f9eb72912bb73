//! The outbound SMTP client: one connection to a receiving MTA, reused for many copies.
//!
//! Each copy costs two round trips when the receiver offers PIPELINING (MAIL, RCPT and
//! DATA in one write, then the content), as Postfix's own client does. STARTTLS is used
//! when offered (opportunistic: the certificate is not checked, as for MX delivery it
//! cannot be without DANE or MTA-STS); a failed handshake is reported so the caller can
//! reconnect in plain text.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

/// A reply: its code and its text lines (without the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// `550 5.1.1 text` as one line, for logs and the database.
    pub fn summary(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
            .chars()
            .take(500)
            .collect()
    }

    /// The enhanced status code (`5.1.1`) if the reply has one, else one made from the
    /// code's class.
    pub fn status(&self) -> String {
        let first = self.lines.first().map(String::as_str).unwrap_or("");
        let word = first.split_whitespace().next().unwrap_or("");
        let parts: Vec<&str> = word.split('.').collect();
        if parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return word.to_string();
        }
        format!("{}.0.0", self.code / 100)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad reply from the server: {0}")]
    Protocol(String),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// The server refused the session (greeting or EHLO/HELO).
    #[error("{}", .0.summary())]
    Refused(Reply),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What the receiver announced in its EHLO reply.
#[derive(Debug, Clone, Default)]
pub struct Extensions {
    pub pipelining: bool,
    pub starttls: bool,
    pub eight_bit: bool,
    pub smtputf8: bool,
    /// SIZE limit; 0 when none was announced.
    pub size: u64,
}

pub struct Connection {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    pos: usize,
    pub peer: SocketAddr,
    pub ext: Extensions,
    pub tls: bool,
    command_timeout: Duration,
    /// Copies sent on this connection (for logs and reuse decisions).
    pub sent: u64,
}

/// Settings for opening connections.
#[derive(Clone)]
pub struct Dialer {
    pub helo: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Dialer {
    /// Connect, read the greeting, EHLO, and upgrade with STARTTLS when offered and
    /// `starttls` (a first try) is set.
    pub async fn connect(
        &self,
        peer: SocketAddr,
        starttls: bool,
    ) -> Result<Connection, ClientError> {
        let stream = timeout(self.connect_timeout, TcpStream::connect(peer))
            .await
            .map_err(|_| ClientError::Timeout("connect"))?
            .map_err(|e| ClientError::Connect(peer, e))?;
        let _ = stream.set_nodelay(true);
        let mut conn = Connection {
            io: Box::new(stream),
            buf: Vec::with_capacity(4096),
            pos: 0,
            peer,
            ext: Extensions::default(),
            tls: false,
            command_timeout: self.command_timeout,
            sent: 0,
        };
        let greeting = conn.read_reply().await?;
        if greeting.code != 220 {
            return Err(ClientError::Refused(greeting));
        }
        conn.hello(&self.helo).await?;
        if starttls
            && conn.ext.starttls
            && let Some(tls) = &self.tls
        {
            conn.write(b"STARTTLS\r\n").await?;
            let reply = conn.read_reply().await?;
            if reply.code == 220 {
                if conn.pos < conn.buf.len() {
                    return Err(ClientError::Protocol(
                        "data after the STARTTLS reply (possible injection)".into(),
                    ));
                }
                conn = conn.upgrade(tls.clone()).await?;
                conn.hello(&self.helo).await?;
            }
        }
        Ok(conn)
    }
}

impl Connection {
    async fn upgrade(self, config: Arc<rustls::ClientConfig>) -> Result<Connection, ClientError> {
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = rustls::pki_types::ServerName::IpAddress(self.peer.ip().into());
        let tls = timeout(self.command_timeout, connector.connect(name, self.io))
            .await
            .map_err(|_| ClientError::Timeout("TLS handshake"))?
            .map_err(ClientError::Tls)?;
        Ok(Connection {
            io: Box::new(tls),
            buf: Vec::with_capacity(4096),
            pos: 0,
            tls: true,
            ..self
        })
    }

    async fn hello(&mut self, helo: &str) -> Result<(), ClientError> {
        self.write(format!("EHLO {helo}\r\n").as_bytes()).await?;
        let reply = self.read_reply().await?;
        if reply.code == 250 {
            self.ext = extensions(&reply);
            return Ok(());
        }
        self.write(format!("HELO {helo}\r\n").as_bytes()).await?;
        let reply = self.read_reply().await?;
        if reply.code != 250 {
            return Err(ClientError::Refused(reply));
        }
        self.ext = Extensions::default();
        Ok(())
    }

    /// Send one copy to one recipient. `data` is the message as it is to be read (CRLF
    /// lines); dot-stuffing happens here. Returns the replies that decide it: the first
    /// negative one of MAIL/RCPT/DATA, or the reply to the content.
    pub async fn send(&mut self, from: &str, to: &str, data: &[u8]) -> Result<Reply, ClientError> {
        let eight_bit = data.iter().any(|&b| b >= 0x80);
        let utf8 = !from.is_ascii() || !to.is_ascii();
        let mut mail = format!("MAIL FROM:<{from}>");
        if self.ext.size > 0 {
            mail.push_str(&format!(" SIZE={}", data.len()));
        }
        if eight_bit && self.ext.eight_bit {
            mail.push_str(" BODY=8BITMIME");
        }
        if utf8 && self.ext.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        let rcpt = format!("RCPT TO:<{to}>\r\n");
        let (mail_r, rcpt_r, data_r) = if self.ext.pipelining {
            let mut group = Vec::with_capacity(mail.len() + rcpt.len() + 6);
            group.extend_from_slice(mail.as_bytes());
            group.extend_from_slice(rcpt.as_bytes());
            group.extend_from_slice(b"DATA\r\n");
            self.write(&group).await?;
            let m = self.read_reply().await?;
            let r = self.read_reply().await?;
            let d = self.read_reply().await?;
            (m, Some(r), Some(d))
        } else {
            self.write(mail.as_bytes()).await?;
            let m = self.read_reply().await?;
            if !m.is_positive() {
                (m, None, None)
            } else {
                self.write(rcpt.as_bytes()).await?;
                let r = self.read_reply().await?;
                if !r.is_positive() {
                    (m, Some(r), None)
                } else {
                    self.write(b"DATA\r\n").await?;
                    let d = self.read_reply().await?;
                    (m, Some(r), Some(d))
                }
            }
        };
        if let Some(d) = &data_r
            && d.code == 354
        {
            if !mail_r.is_positive() || !rcpt_r.as_ref().is_some_and(Reply::is_positive) {
                // The server opened DATA for a transaction it had refused: end it empty.
                self.write(b".\r\n").await?;
                self.read_reply().await?;
            } else {
                self.write(&stuff(data)).await?;
                let end = self.read_reply().await?;
                if end.is_positive() {
                    self.sent += 1;
                }
                return Ok(end);
            }
        }
        // A refused transaction: reset the session for the next copy.
        let failure = [Some(mail_r), rcpt_r, data_r]
            .into_iter()
            .flatten()
            .find(|r| !r.is_positive() && r.code != 354)
            .unwrap_or(Reply {
                code: 451,
                lines: vec!["4.5.0 transaction not completed".into()],
            });
        if failure.code != 421 {
            self.write(b"RSET\r\n").await?;
            self.read_reply().await?;
        }
        Ok(failure)
    }

    /// Whether the session is still usable after a reply (421 closes it).
    pub fn usable_after(&self, reply: &Reply) -> bool {
        reply.code != 421
    }

    pub async fn quit(mut self) {
        if self.write(b"QUIT\r\n").await.is_ok() {
            let _ = timeout(Duration::from_secs(2), self.read_reply()).await;
        }
        let _ = self.io.shutdown().await;
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        timeout(self.command_timeout, async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        })
        .await
        .map_err(|_| ClientError::Timeout("write"))??;
        Ok(())
    }

    /// One (possibly multi-line) reply.
    async fn read_reply(&mut self) -> Result<Reply, ClientError> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            if line.len() < 3 || !line.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
                return Err(ClientError::Protocol(format!(
                    "`{}`",
                    line.chars().take(80).collect::<String>()
                )));
            }
            let code: u16 = line[..3].parse().unwrap_or(0);
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if !more {
                if !(200..600).contains(&code) {
                    return Err(ClientError::Protocol(format!("reply code {code}")));
                }
                return Ok(Reply { code, lines });
            }
            if lines.len() > 100 {
                return Err(ClientError::Protocol("reply of more than 100 lines".into()));
            }
        }
    }

    async fn read_line(&mut self) -> Result<String, ClientError> {
        loop {
            if let Some(nl) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let line = &self.buf[self.pos..self.pos + nl];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                // A reply is stored and logged: control characters (a NUL would be refused
                // by PostgreSQL and stall the recording of every outcome) become spaces.
                let text = String::from_utf8_lossy(line)
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                self.pos += nl + 1;
                return Ok(text);
            }
            if self.buf.len() - self.pos > 8192 {
                return Err(ClientError::Protocol("reply line too long".into()));
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            let mut chunk = [0u8; 4096];
            let n = timeout(self.command_timeout, self.io.read(&mut chunk))
                .await
                .map_err(|_| ClientError::Timeout("reply"))??;
            if n == 0 {
                return Err(ClientError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn extensions(reply: &Reply) -> Extensions {
    let mut ext = Extensions::default();
    for line in reply.lines.iter().skip(1) {
        let mut words = line.split_whitespace();
        let keyword = words.next().unwrap_or("").to_ascii_uppercase();
        match keyword.as_str() {
            "PIPELINING" => ext.pipelining = true,
            "STARTTLS" => ext.starttls = true,
            "8BITMIME" => ext.eight_bit = true,
            "SMTPUTF8" => ext.smtputf8 = true,
            "SIZE" => ext.size = words.next().and_then(|s| s.parse().ok()).unwrap_or(0),
            _ => {}
        }
    }
    ext
}

/// The content as sent after DATA: lines end in CRLF (a bare LF becomes CRLF), a line
/// starting with `.` gets another, and `.` CRLF ends it.
pub fn stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 8);
    let mut line_start = true;
    let mut prev = 0u8;
    for (i, &b) in data.iter().enumerate() {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        line_start = b == b'\n';
        // A bare CR ends a line too: some receivers read one as a line end, and a `.` after
        // it would then end the message there (SMTP smuggling). It is sent as CRLF.
        if b == b'\r' && data.get(i + 1).is_some_and(|&next| next != b'\n') {
            out.push(b'\n');
            line_start = true;
        }
        prev = b;
    }
    if !line_start {
        if prev == b'\r' {
            out.push(b'\n');
        } else {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// TLS for opportunistic STARTTLS: encryption against passive eavesdroppers, with no
/// certificate check (an MX host's certificate can rarely be checked without DANE or
/// MTA-STS, and refusing it would only push the copy to plain text).
pub fn opportunistic_tls() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        });
    match config {
        Ok(c) => Arc::new(c),
        // The ring provider supports the default versions; this cannot fail in practice.
        Err(_) => Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
    }
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_dot_stuffed_and_terminated() {
        assert_eq!(stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(stuff(b".\nx"), b"..\r\nx\r\n.\r\n");
        assert_eq!(stuff(b""), b".\r\n");
        // A bare CR is a line end: the dot after it is stuffed, no message ends early.
        assert_eq!(stuff(b"a\r.\r\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(stuff(b"a\r\r\n.x"), b"a\r\n\r\n..x\r\n.\r\n");
    }

    #[test]
    fn enhanced_status_codes() {
        let r = |code, text: &str| Reply {
            code,
            lines: vec![text.into()],
        };
        assert_eq!(r(550, "5.1.1 no such user").status(), "5.1.1");
        assert_eq!(r(450, "try later").status(), "4.0.0");
        assert_eq!(r(550, "5.x.1 odd").status(), "5.0.0");
    }
}

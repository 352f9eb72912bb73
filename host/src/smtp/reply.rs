//! SMTP replies used by the session, in one place so their codes are consistent.

/// A reply: code, enhanced status (RFC 3463; empty for none) and text.
#[derive(Debug, Clone, Copy)]
pub struct Reply(pub u16, pub &'static str, pub &'static str);

pub const OK: Reply = Reply(250, "2.0.0", "OK");
pub const SENDER_OK: Reply = Reply(250, "2.1.0", "Sender OK");
pub const RECIPIENT_OK: Reply = Reply(250, "2.1.5", "Recipient OK");
pub const START_DATA: Reply = Reply(354, "", "End data with <CR><LF>.<CR><LF>");
pub const BYE: Reply = Reply(221, "2.0.0", "Bye");
pub const START_TLS: Reply = Reply(220, "2.0.0", "Ready to start TLS");
pub const HELP: Reply = Reply(
    214,
    "2.0.0",
    "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT HELP STARTTLS. Lists take posts at NAME@, commands at NAME-request@",
);

pub const NO_SUCH_LIST: Reply = Reply(
    550,
    "5.1.1",
    "No such list here (this server relays nothing)",
);
pub const BAD_TOKEN: Reply = Reply(
    550,
    "5.1.1",
    "No such address here (its token is not one this list gave out)",
);
pub const ONE_ADDRESS_PER_LIST: Reply = Reply(
    452,
    "4.5.3",
    "One list address per transaction; send again for this one",
);
pub const TOO_MANY_RECIPIENTS: Reply = Reply(452, "4.5.3", "Too many recipients");
pub const TOO_BIG: Reply = Reply(552, "5.3.4", "Message too big");
pub const LINE_TOO_LONG: Reply = Reply(500, "5.5.2", "Line too long");
pub const STORE_FAILED: Reply = Reply(
    451,
    "4.3.0",
    "Temporary failure storing the message; try again later",
);
pub const SHUTTING_DOWN: Reply = Reply(421, "4.3.2", "Shutting down; try again later");

pub const NEED_HELO: Reply = Reply(503, "5.5.1", "Send EHLO or HELO first");
pub const NEED_MAIL: Reply = Reply(503, "5.5.1", "Send MAIL first");
pub const NESTED_MAIL: Reply = Reply(503, "5.5.1", "A transaction is already open; RSET first");
pub const NEED_RCPT: Reply = Reply(503, "5.5.1", "Send RCPT first");
pub const NOT_IMPLEMENTED: Reply = Reply(502, "5.5.1", "Command not implemented");
pub const VRFY_REFUSED: Reply = Reply(502, "5.5.1", "VRFY and EXPN are disabled");
pub const TLS_UNAVAILABLE: Reply = Reply(454, "4.7.0", "TLS not available");
pub const TLS_ALREADY: Reply = Reply(503, "5.5.1", "TLS already active");
pub const UNKNOWN_COMMAND: Reply = Reply(500, "5.5.1", "Unknown command");
pub const BAD_SENDER: Reply = Reply(501, "5.1.7", "Bad sender address syntax");
pub const BAD_RECIPIENT: Reply = Reply(501, "5.1.3", "Bad recipient address syntax");
pub const CONTROL_CHARACTERS: Reply = Reply(
    501,
    "5.5.2",
    "Control characters are not allowed in commands",
);
pub const SYNTAX: Reply = Reply(501, "5.5.4", "Syntax error in parameters or arguments");
pub const UNSUPPORTED_PARAM: Reply = Reply(555, "5.5.4", "Unsupported MAIL or RCPT parameter");

pub const TOO_MANY_SESSIONS: Reply = Reply(421, "4.3.2", "Too many connections; try again later");
pub const TOO_MANY_FROM_ADDRESS: Reply = Reply(
    421,
    "4.7.0",
    "Too many connections from your address; try again later",
);
pub const SESSION_TOO_LONG: Reply = Reply(421, "4.4.2", "Session lasted too long; closing");
pub const DATA_MEMORY_FULL: Reply = Reply(
    452,
    "4.3.1",
    "Too much mail arriving at once; try again later",
);
pub const TOO_MANY_ERRORS: Reply = Reply(421, "4.7.0", "Too many errors; closing");
pub const IDLE: Reply = Reply(421, "4.4.2", "Idle for too long; closing");

impl Reply {
    /// Append the reply as one line to `out`.
    pub fn write(self, out: &mut Vec<u8>) {
        let Reply(code, enhanced, text) = self;
        write_line(out, code, enhanced, text);
    }

    /// A 5xx (or 4xx syntax) reply counts against the session's error budget.
    pub fn is_error(self) -> bool {
        self.0 >= 500
    }
}

pub fn write_line(out: &mut Vec<u8>, code: u16, enhanced: &str, text: &str) {
    let line = if enhanced.is_empty() {
        format!("{code} {text}\r\n")
    } else {
        format!("{code} {enhanced} {text}\r\n")
    };
    out.extend_from_slice(line.as_bytes());
}

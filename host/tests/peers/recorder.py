"""A receiving MTA for the tests (aiosmtpd) that records every message it accepts.

Each accepted message is written to DIR/NNNNNN.eml and its envelope appended to
DIR/envelopes.jsonl ({"file", "from", "to"}) before the 250 is sent, so what the test reads
is exactly what was acknowledged.

Rules on recipients (substring of the address -> reply), for retry and bounce tests:
  --reject SUBSTR      550 5.1.1 at RCPT
  --defer SUBSTR:N     451 4.2.0 at RCPT for the first N attempts per address
  --delay-ms MS        sleep before answering DATA (slows a fan-out down)
  --pipelining         announce PIPELINING (RFC 2920); each message's record then says
                       whether its RCPT and DATA had already arrived with its MAIL

Each record also carries the client's port, so a test sees which copies shared a connection.
"""
import argparse, asyncio, json, os, ssl, sys, threading, time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


class Recorder:
    def __init__(self, args):
        self.dir = args.dir
        self.reject = args.reject or []
        self.defer = [(s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1])) for s in (args.defer or [])]
        self.delay = args.delay_ms / 1000.0
        self.pipelining = args.pipelining
        self.tries = {}
        self.count = 0
        self.lock = threading.Lock()
        self.log = open(os.path.join(self.dir, "envelopes.jsonl"), "a", buffering=1)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # Commands the client sent with MAIL are already waiting in the reader's buffer.
        buffered = bytes(getattr(server._reader, "_buffer", b""))
        envelope.pipelined = b"RCPT" in buffered.upper()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        for s in self.reject:
            if s in address:
                return "550 5.1.1 <%s>: no such user here" % address
        for s, n in self.defer:
            if s in address:
                seen = self.tries.get(address, 0)
                self.tries[address] = seen + 1
                if seen < n:
                    return "451 4.2.0 <%s>: try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.count += 1
            name = "%06d.eml" % self.count
            with open(os.path.join(self.dir, name), "wb") as f:
                f.write(envelope.original_content or envelope.content)
                f.flush()
                os.fsync(f.fileno())
            self.log.write(json.dumps({"file": name, "from": envelope.mail_from, "to": envelope.rcpt_tos,
                                       "tls": bool(session.ssl), "at": time.time(),
                                       "port": session.peer[1] if session.peer else 0,
                                       "pipelined": getattr(envelope, "pipelined", False)}) + "\n")
            self.log.flush()
        return "250 2.0.0 queued as %s" % name


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--reject", action="append")
    p.add_argument("--defer", action="append")
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--pipelining", action="store_true")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    ctx = None
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    handler = Recorder(args)
    controller = Controller(handler, hostname="127.0.0.1", port=args.port, tls_context=ctx,
                            require_starttls=False, decode_data=False, data_size_limit=50_000_000)
    controller.start()
    print("ready", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    controller.stop()


if __name__ == "__main__":
    main()

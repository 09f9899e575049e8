#!/usr/bin/env python3
"""A real SMTP server for tests: every message it accepts becomes files in a directory.

Built on aiosmtpd (pip install aiosmtpd==1.4.6). Plain SMTP only: it offers no STARTTLS, so a
client that requires TLS must refuse to send to it.

    python3 scripts/smtp-sink.py --port 0 --dir DIR [--refuse-first N] [--host 127.0.0.1]
                                 [--reject-local-part reject] [--until-stdin-closes]

Once it listens it prints one line on stdout, then flushes:

    LISTENING 127.0.0.1:41234

(--port 0 picks a free port; the line names the one chosen.) For the n-th message accepted
(n = 1, 2, ...) it writes, each atomically (a temporary file renamed):

    DIR/<n>.envelope.json   {"mail_from": "...", "rcpt_tos": ["...", ...]}
    DIR/<n>.eml             the DATA exactly as received (CRLF line ends)

the envelope first, so that a reader who sees <n>.eml finds both complete. Both are written
before the server answers 250 to the DATA, so a client whose send succeeded can read them at
once, without waiting.

It answers `451 4.3.0 try again later` to the DATA of the first N messages (--refuse-first),
and `550 5.1.1 mailbox unavailable` to RCPT TO of any address whose local part is
`reject` (--reject-local-part, may be repeated). It stops on SIGTERM or SIGINT, and with
--until-stdin-closes also when its standard input reaches end of file, so that a test that
dies without killing it does not leave it running.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import threading

from aiosmtpd.smtp import SMTP


def write_atomically(path, data):
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


class Sink:
    def __init__(self, directory, refuse_first, rejected_local_parts):
        self.directory = directory
        self.refuse_first = refuse_first
        self.rejected_local_parts = {part.lower() for part in rejected_local_parts}
        self.refused = 0
        self.accepted = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local_part = address.rsplit("@", 1)[0]
        if local_part.lower() in self.rejected_local_parts:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.refused < self.refuse_first:
            self.refused += 1
            return "451 4.3.0 try again later"
        self.accepted += 1
        number = self.accepted
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)}
        write_atomically(
            os.path.join(self.directory, f"{number}.envelope.json"),
            json.dumps(meta).encode("utf-8"),
        )
        write_atomically(os.path.join(self.directory, f"{number}.eml"), raw)
        return "250 2.0.0 message accepted"


async def serve(args):
    os.makedirs(args.dir, exist_ok=True)
    handler = Sink(args.dir, args.refuse_first, args.reject_local_part or ["reject"])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        # A fixed hostname: aiosmtpd's default asks the resolver, which can be slow.
        lambda: SMTP(handler, hostname="smtp-sink.localhost", enable_SMTPUTF8=True),
        host=args.host,
        port=args.port,
    )
    host, port = server.sockets[0].getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"LISTENING {shown}:{port}", flush=True)

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if args.until_stdin_closes:

        def wait_for_eof():
            while sys.stdin.buffer.read(4096):
                pass
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=wait_for_eof, daemon=True).start()

    await stop.wait()
    server.close()
    await server.wait_closed()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--dir", required=True, help="where accepted messages are written")
    parser.add_argument(
        "--refuse-first", type=int, default=0, metavar="N",
        help="answer 451 to the DATA of the first N messages",
    )
    parser.add_argument(
        "--reject-local-part", action="append", metavar="PART",
        help="answer 550 to RCPT TO of PART@any.domain (default: reject)",
    )
    parser.add_argument(
        "--until-stdin-closes", action="store_true",
        help="also stop when standard input reaches end of file",
    )
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()

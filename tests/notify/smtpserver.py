"""A real SMTP server on 127.0.0.1 (aiosmtpd) that records what it accepted.

It runs in aiosmtpd's own thread and event loop, speaks STARTTLS with a
certificate from `tests/checks/certs.py` when given a TLS context, checks
logins, and answers with scripted replies (`451 ...`, `550 ...`) at RCPT or
DATA before behaving normally, the way a busy or strict mail server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import socket
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        return msg

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content())


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    rcpt_replies: deque[str] = field(default_factory=deque)
    data_replies: deque[str] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: SMTPServer, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            if self.rcpt_replies:
                return self.rcpt_replies.popleft()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self.data_replies:
                return self.data_replies.popleft()
            login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
            self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(envelope.content or b""),
                                          session.ssl is not None, login))
        return "250 2.0.0 queued as 4711"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    """`with SmtpServer(...) as server:`; `server.port`, `server.received`, `server.handler.*_replies`."""

    def __init__(self, tls: ssl.SSLContext | None = None, *, require_starttls: bool = True,
                 logins: dict[str, str] | None = None) -> None:
        self.handler = Handler()
        self.port = _free_port()
        self.logins = logins
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs.update(tls_context=tls, require_starttls=require_starttls)
        if logins is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=tls is not None)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=10,
                                     server_hostname="localhost", **kwargs)

    def _authenticate(self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and self.logins is not None
              and self.logins.get(auth_data.login.decode()) == auth_data.password.decode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class SilentServer:
    """Accepts TCP connections and never says a word: an SMTP server that hangs before its banner."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> SilentServer:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.append(writer)
            with contextlib.suppress(Exception):
                await reader.read()

        self._server = await asyncio.start_server(hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for w in self._writers:
            w.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

"""Email over SMTP: reused connections (a small pool), optional STARTTLS/auth, Message-ID from the delivery id,
RFC 8058 headers, and a direct MIME writer (the stdlib email package costs more than the whole SMTP exchange)."""

from __future__ import annotations

import base64
import contextlib
import re
import secrets
import smtplib
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from email.header import Header
from email.utils import formatdate, parseaddr
from typing import Any

from accord.messaging.adapters.base import DELIVERED, HARD_BOUNCE, PERMANENT, SENT, TRANSIENT, OutMessage, SendResult

_LEADING_DOT = re.compile(rb"(?m)^\.")  # dot-stuffing of the content (RFC 5321 4.5.2)
TRANSIENT_ERRORS = (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError, TimeoutError, OSError)


def _header_value(value: str) -> str:
    """ASCII values as they are (one line; long List-Unsubscribe URLs stay intact), others as RFC 2047 words."""
    value = value.replace("\r", " ").replace("\n", " ")
    if value.isascii():
        return value
    return Header(value, "utf-8", maxlinelen=998).encode()


def _address_header(value: str) -> str:
    name, addr = parseaddr(value)
    if name and not name.isascii():
        return f"{Header(name, 'utf-8').encode()} <{addr}>"
    return _header_value(value)


def _body(text: str) -> bytes:
    encoded = base64.encodebytes(text.encode("utf-8"))  # 76-character lines
    return encoded.replace(b"\n", b"\r\n")


def build_mime(message: OutMessage, sender: str, domain: str) -> tuple[str, bytes]:
    """(envelope sender, RFC 5322 bytes): multipart/alternative text + HTML, UTF-8, base64 bodies."""
    fields = message.fields
    from_value = str(fields.get("from") or sender)
    lines = [
        f"From: {_address_header(from_value)}",
        f"To: {_header_value(message.address)}",
        f"Subject: {_header_value(str(fields.get('subject', '')))}",
        f"Date: {formatdate(localtime=False)}",
        f"Message-ID: <{message.delivery_id}@{domain}>",
        "MIME-Version: 1.0",
    ]
    lines += [f"{key}: {_header_value(str(value))}" for key, value in message.headers.items()]
    text = fields.get("text") or ("" if fields.get("html") else "(empty)")
    html = fields.get("html")
    if html and text:
        boundary = "=_accord_" + secrets.token_hex(12)
        lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        part = "Content-Type: text/{}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        body = (
            f"--{boundary}\r\n".encode()
            + part.format("plain").encode()
            + _body(text)
            + f"--{boundary}\r\n".encode()
            + part.format("html").encode()
            + _body(html)
            + f"--{boundary}--\r\n".encode()
        )
        return parseaddr(from_value)[1], head + body
    subtype = "html" if html else "plain"
    lines += [f"Content-Type: text/{subtype}; charset=utf-8", "Content-Transfer-Encoding: base64"]
    return parseaddr(from_value)[1], ("\r\n".join(lines) + "\r\n\r\n").encode() + _body(html or text)


class SmtpAdapter:
    """Sends email through one SMTP server over up to CONNECTIONS reused connections."""

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        self.name = name
        self.channel = "email"
        self.host = str(config.get("host", "127.0.0.1"))
        self.port = int(config.get("port", 25))
        self.starttls = bool(config.get("starttls", False))
        self.username = config.get("username")
        self.password = config.get("password")
        self.sender = str(config.get("from", "Accord <no-reply@localhost>"))
        self.domain = str(config.get("message_id_domain", self.sender.rsplit("@", 1)[-1].strip("> ")))
        self.timeout = float(config.get("timeout", 10))
        self.delivered_on_accept = bool(config.get("delivered_on_accept", False))
        self.connections = max(1, int(config.get("connections", 4)))
        self.pipelining = bool(config.get("pipelining", True))
        self._local = threading.local()
        self._all: list[smtplib.SMTP] = []
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def _connection(self) -> smtplib.SMTP:
        conn: smtplib.SMTP | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            conn.ehlo()
            if self.starttls:
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if self.username:
                conn.login(str(self.username), str(self.password or ""))
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)
            with contextlib.suppress(*TRANSIENT_ERRORS):
                conn.close()

    def send_batch(self, messages: list[OutMessage]) -> list[SendResult]:
        """Send the batch, split over the connection pool (each connection sends its share in order)."""
        if len(messages) < 2 * self.connections or self.connections == 1:
            return [self._send_one(m) for m in messages]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.connections, thread_name_prefix=f"smtp-{self.name}")
        shares = [messages[i :: self.connections] for i in range(self.connections)]
        done = list(self._pool.map(lambda share: [self._send_one(m) for m in share], shares))
        results: list[SendResult] = [SendResult(TRANSIENT)] * len(messages)
        for i, share_results in enumerate(done):
            for j, result in enumerate(share_results):
                results[i + j * self.connections] = result
        return results

    def _send_one(self, message: OutMessage, retry: bool = True) -> SendResult:
        envelope_from, data = build_mime(message, self.sender, self.domain)
        msgid = f"<{message.delivery_id}@{self.domain}>"
        try:
            return self._exchange(self._connection(), envelope_from, message.address, data, msgid)
        except smtplib.SMTPResponseException as exc:
            self._reset()
            return SendResult(PERMANENT if exc.smtp_code >= 500 else TRANSIENT, msgid, f"{exc.smtp_code} {exc!s}")
        except TRANSIENT_ERRORS as exc:
            self._drop()
            if retry:
                return self._send_one(message, retry=False)
            return SendResult(TRANSIENT, msgid, f"{type(exc).__name__}: {exc}")

    def _exchange(self, conn: smtplib.SMTP, envelope_from: str, to: str, data: bytes, msgid: str) -> SendResult:
        """One message: MAIL, RCPT and DATA in one write when the server offers PIPELINING (RFC 2920), else one
        command at a time; then the content. Two round trips instead of four."""
        if "\r" in to or "\n" in to or "<" in to or ">" in to:
            return SendResult(HARD_BOUNCE, msgid, f"not a deliverable address: {to!r}")
        if self.pipelining and conn.has_extn("pipelining"):
            conn.send(f"MAIL FROM:<{envelope_from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n".encode())
            mail, rcpt, go = conn.getreply(), conn.getreply(), conn.getreply()
        else:
            mail = conn.docmd("mail", f"FROM:<{envelope_from}>")
            rcpt = conn.docmd("rcpt", f"TO:<{to}>") if mail[0] == 250 else (503, b"no sender")
            go = conn.docmd("data") if rcpt[0] in (250, 251) else (503, b"no recipient")
        if go[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
            conn.send(b".\r\n")  # a server that took DATA anyway gets an empty message, then a reset
            conn.getreply()
            go = (503, b"no recipient")
        if mail[0] != 250:
            raise smtplib.SMTPSenderRefused(mail[0], mail[1], envelope_from)
        if rcpt[0] not in (250, 251):
            conn.rset()
            code = rcpt[0]
            return SendResult(HARD_BOUNCE if code >= 500 else TRANSIENT, msgid, f"recipient refused: {code}")
        if go[0] != 354:
            raise smtplib.SMTPDataError(go[0], go[1])
        body = _LEADING_DOT.sub(b"..", data)
        conn.send(body + (b".\r\n" if body.endswith(b"\r\n") else b"\r\n.\r\n"))
        code, reply = conn.getreply()
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
        return SendResult(DELIVERED if self.delivered_on_accept else SENT, msgid)

    def _reset(self) -> None:
        try:
            self._connection().rset()
        except TRANSIENT_ERRORS:
            self._drop()

    def close(self) -> None:
        """Say QUIT on every connection and stop the pool."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.quit()
            except (*TRANSIENT_ERRORS, smtplib.SMTPException):
                pass
        self._local = threading.local()

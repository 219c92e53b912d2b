"""Email over SMTP: one reused connection, optional STARTTLS/auth, Message-ID from the delivery id, RFC 8058 headers."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate
from typing import Any

from accord.messaging.adapters.base import DELIVERED, HARD_BOUNCE, PERMANENT, SENT, TRANSIENT, OutMessage, SendResult

# Long header values (List-Unsubscribe URLs) stay plain ASCII on one line instead of RFC 2047 encoded words.
POLICY = SMTP_POLICY.clone(max_line_length=998)
TRANSIENT_ERRORS = (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError, TimeoutError, OSError)


class SmtpAdapter:
    """Sends email through one SMTP server, keeping the connection open across batches."""

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
        self._conn: smtplib.SMTP | None = None

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.starttls:
                conn.starttls(context=ssl.create_default_context())
            if self.username:
                conn.login(str(self.username), str(self.password or ""))
            self._conn = conn
        return self._conn

    def build(self, message: OutMessage) -> EmailMessage:
        """The MIME message: text and HTML alternatives, Message-ID <delivery id@domain>, extra headers."""
        mail = EmailMessage(policy=POLICY)
        mail["From"] = message.fields.get("from") or self.sender
        mail["To"] = message.address
        mail["Subject"] = message.fields.get("subject", "")
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = f"<{message.delivery_id}@{self.domain}>"
        for key, value in message.headers.items():
            mail[key] = value
        text = message.fields.get("text")
        html = message.fields.get("html")
        mail.set_content(text or "(this message is best viewed as HTML)")
        if html:
            mail.add_alternative(html, subtype="html")
        return mail

    def send_batch(self, messages: list[OutMessage]) -> list[SendResult]:
        """Send each message on the shared connection; reconnect once after a dropped connection."""
        results: list[SendResult] = []
        for message in messages:
            results.append(self._send_one(message))
        return results

    def _send_one(self, message: OutMessage, retry: bool = True) -> SendResult:
        mail = self.build(message)
        msgid = mail["Message-ID"]
        try:
            refused = self._connection().send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            code = next(iter(exc.recipients.values()))[0] if exc.recipients else 550
            return SendResult(HARD_BOUNCE if code >= 500 else TRANSIENT, msgid, f"recipient refused: {code}")
        except smtplib.SMTPResponseException as exc:
            self._reset_after(exc)
            return SendResult(PERMANENT if exc.smtp_code >= 500 else TRANSIENT, msgid, f"{exc.smtp_code} {exc!s}")
        except TRANSIENT_ERRORS as exc:
            self.close()
            if retry:
                return self._send_one(message, retry=False)
            return SendResult(TRANSIENT, msgid, f"{type(exc).__name__}: {exc}")
        if refused:
            return SendResult(HARD_BOUNCE, msgid, f"recipient refused: {refused}")
        return SendResult(DELIVERED if self.delivered_on_accept else SENT, msgid)

    def _reset_after(self, exc: smtplib.SMTPResponseException) -> None:
        try:
            if self._conn is not None:
                self._conn.rset()
        except TRANSIENT_ERRORS:
            self.close()

    def close(self) -> None:
        """Say QUIT (or just drop a broken connection)."""
        if self._conn is not None:
            try:
                self._conn.quit()
            except (*TRANSIENT_ERRORS, smtplib.SMTPException):
                pass
            self._conn = None

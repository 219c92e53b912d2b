"""Test helpers for messaging: people on real stores, a real SMTP sink, scripted HTTP providers."""

from __future__ import annotations

import json
import threading
from collections import Counter
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from accord.collect.emit import emit
from accord.platform import Platform
from accord.profiles import service as profiles


def person(platform: Platform, user: str, drain: bool = True, **traits: Any) -> str:
    """Identify USER with TRAITS (email/phone become identifiers; push_token via context.device); its profile id."""
    message: dict[str, Any] = {"type": "identify", "userId": user, "traits": traits}
    token = traits.pop("push_token", None)
    if token:
        message["context"] = {"device": {"id": f"dev-{user}", "token": token}}
    with platform.state.begin() as conn:
        emit(conn, platform.journal, "test-crm", "other", [message])
    if drain:
        assert platform.processor.drain()
    return profiles.resolve(platform.state, platform.rules, f"user_id:{user}") or ""


class SmtpSink:
    """A real SMTP server (aiosmtpd) that keeps what it receives."""

    def __init__(self, port: int, refuse: set[str] | None = None, pipelining: bool = False) -> None:
        self.messages: list[Message] = []
        self.refuse = refuse or set()
        self.commands: list[str] = []
        sink = self

        class Handler:
            async def handle_EHLO(
                self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
            ) -> list[str]:
                session.host_name = hostname
                # like Postfix and Exim: commands may be sent in groups (RFC 2920)
                return [*responses[:-1], "250-PIPELINING", responses[-1]] if pipelining else responses

            async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
                sink.commands.append("MAIL")
                envelope.mail_from = address
                return "250 OK"

            async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
                if address in sink.refuse:
                    return "550 5.1.1 no such user"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(message_from_bytes(envelope.content))
                return "250 Message accepted for delivery"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def by_message_id(self) -> Counter[str]:
        """How many times each Message-ID arrived."""
        return Counter(str(m["Message-ID"]) for m in self.messages)


class ScriptedProvider:
    """A real HTTP server playing an SMS/push provider: answers from a script per call, keeps every request,
    and deduplicates by idempotency key the way real providers do."""

    def __init__(self, script: list[Any] | None = None, delay: float = 0.0) -> None:
        self.delay = delay
        self.script = list(script or [])  # each item: an int status, "timeout", or (status, json body)
        self.requests: list[dict[str, Any]] = []
        self.accepted: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                key = self.headers.get("Idempotency-Key") or self.headers.get("I-Twilio-Idempotency-Token") or ""
                with provider.lock:
                    step = provider.script.pop(0) if provider.script else 200
                    record = {"path": self.path, "key": key, "body": body.decode(), "headers": dict(self.headers)}
                    provider.requests.append(record)
                if provider.delay:
                    import time

                    time.sleep(provider.delay)
                if step == "timeout":
                    import time

                    time.sleep(1.5)
                    step = 200
                status, payload = step if isinstance(step, tuple) else (step, None)
                if status == 200:
                    with provider.lock:
                        provider.accepted.setdefault(key, record)
                    payload = payload or {"id": "prov-" + key, "sid": "SM" + key}
                out = json.dumps(payload or {"error": "scripted failure"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedProvider:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class PushService:
    """A real HTTP server playing a browser push service (RFC 8030): keeps each push's headers and raw (encrypted)
    body per subscription path; answers from a script (status codes) and then 201 Created."""

    def __init__(self, script: dict[str, list[int]] | None = None) -> None:
        self.script = {k: list(v) for k, v in (script or {}).items()}  # path -> statuses to answer first
        self.pushes: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with service.lock:
                    steps = service.script.get(self.path, [])
                    status = steps.pop(0) if steps else 201
                    service.pushes.append(
                        {"path": self.path, "status": status, "headers": dict(self.headers), "body": body}
                    )
                self.send_response(status)
                if status == 201:
                    self.send_header("Location", f"{service.url}/m/{len(service.pushes)}")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PushService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

"""A counting SMTP sink (aiosmtpd, offering PIPELINING) in its own process, for the SMTP delivery benchmark.

.venv/bin/python bench/smtp_sink.py PORT COUNT_FILE    # writes the number of messages received on SIGTERM
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


def main() -> None:
    port, out = int(sys.argv[1]), Path(sys.argv[2])
    received = 0

    class Sink:
        async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: Any) -> Any:
            session.host_name = hostname
            return [*responses[:-1], "250-PIPELINING", responses[-1]]  # as Postfix and Exim do (RFC 2920)

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            nonlocal received
            received += 1
            return "250 OK"

    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print("ready", flush=True)
    done.wait()
    controller.stop()
    out.write_text(str(received))


if __name__ == "__main__":
    main()

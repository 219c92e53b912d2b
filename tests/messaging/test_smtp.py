"""The SMTP adapter against a real aiosmtpd server that offers PIPELINING (as Postfix and Exim do) and one that
does not: the same messages arrive once each, a refused recipient is a hard bounce, the connection stays usable."""

from __future__ import annotations

import pytest

from accord.messaging.adapters.base import HARD_BOUNCE, SENT, OutMessage
from accord.messaging.adapters.smtp import SmtpAdapter
from tests.conftest import free_port
from tests.messaging.helpers import SmtpSink


def messages(n: int) -> list[OutMessage]:
    return [
        OutMessage(
            f"01TEST{i:020d}",
            "email",
            "gone@example.com" if i == 3 else f"p{i}@example.com",
            {"subject": f"Hello {i}", "text": f"Line one\n.dot line {i}\nend", "html": f"<p>Hi {i}</p>"},
            {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("connections", [1, 3])
def test_pipelined_and_lockstep_exchanges_deliver_the_same(pipelining: bool, connections: int) -> None:
    with SmtpSink(free_port(), refuse={"gone@example.com"}, pipelining=pipelining) as sink:
        adapter = SmtpAdapter(
            "mail", {"port": sink.controller.port, "from": "Shop <shop@example.com>", "connections": connections}
        )
        batch = messages(20)
        results = adapter.send_batch(batch)
        again = adapter.send_batch(messages(2))  # the connections are still in a clean state
        assert adapter._connection().has_extn("pipelining") is pipelining  # the grouped exchange was used
        adapter.close()
    assert [r.outcome for r in results] == [HARD_BOUNCE if i == 3 else SENT for i in range(20)]
    assert results[3].error == "recipient refused: 550"
    assert [r.outcome for r in again] == [SENT, SENT]
    subjects = sorted(str(m["Subject"]) for m in sink.messages)
    assert subjects == sorted([f"Hello {i}" for i in range(20) if i != 3] + ["Hello 0", "Hello 1"])
    five = next(m for m in sink.messages if m["Subject"] == "Hello 5")
    assert five["Message-ID"] == f"<{batch[5].delivery_id}@example.com>"
    assert five["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = next(p for p in five.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
    assert text.decode() == "Line one\n.dot line 5\nend"  # dot-stuffing undone by the server
    assert len(sink.commands) == 22  # one MAIL per message, the refused one included

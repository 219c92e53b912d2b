"""The long-running processes' garbage-collector settings (accord/heap.py) and their switch."""

from __future__ import annotations

import subprocess
import sys

from accord.config import load_settings


def test_settle_freezes_the_start_up_heap_and_raises_the_young_threshold() -> None:
    # in a process of its own: a frozen heap would stay frozen for the rest of the test session
    code = (
        "import gc; from accord import heap; before = gc.get_freeze_count(); heap.settle(); "
        "print(before, gc.get_freeze_count() > 1000, gc.get_threshold()[0] == heap.YOUNG_THRESHOLD)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "True", "True"]


def test_the_switch_is_on_unless_turned_off() -> None:
    assert load_settings({"ACCORD_HOME": "/tmp/x"}).gc_settle is True
    for off in ("off", "0", "false", "NO"):
        assert load_settings({"ACCORD_HOME": "/tmp/x", "ACCORD_GC_SETTLE": off}).gc_settle is False

"""`accord identity match|review|clusters|undo-merge` end to end from the command line (no server running)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

ACCORD = str(Path(sys.executable).parent / "accord")


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACCORD_HOME": str(home), "ACCORD_ADMIN_TOKEN": "test-admin-token", "COLUMNS": "200"}
    return subprocess.run([ACCORD, *args], env=env, capture_output=True, text=True, timeout=300)


def test_match_review_clusters_and_undo_from_the_cli(tmp_path: Path) -> None:
    home, demo = tmp_path / "home", tmp_path / "demo"
    assert run(home, "demo", "generate", "--customers", "300", "--days", "14", "--out", str(demo)).returncode == 0
    loaded = run(home, "demo", "load", str(demo))
    assert loaded.returncode == 0, loaded.stderr

    bad = run(home, "identity", "match", "--merge-above", "0.5", "--review-above", "0.9")
    assert bad.returncode == 1 and "review-above <= merge-above" in bad.stderr and "Traceback" not in bad.stderr

    truth = demo / "truth.csv"
    ran = run(home, "identity", "match", "--review-above", "0.3", "--truth", str(truth), "--format", "json")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["mode"] == "full" and report["merged"] >= 10
    assert 0 < report["evaluation"]["f1"] <= 1

    listed = json.loads(run(home, "identity", "review", "--format", "json").stdout)
    assert len(listed) == report["queued"]
    text = run(home, "identity", "review").stdout
    if listed:
        assert listed[0]["id"] in text
        decided = run(home, "identity", "review", "--reject", listed[0]["id"], "--format", "json")
        assert json.loads(decided.stdout)["status"] == "rejected"
        again = run(home, "identity", "review", "--reject", listed[0]["id"])
        assert again.returncode == 1 and "rejected already" in again.stderr
    missing = run(home, "identity", "review", "--accept", "nope")
    assert missing.returncode == 1 and "no review" in missing.stderr

    exported = run(home, "identity", "clusters", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert rows and set(rows[0]) == {"identifier_type", "identifier_value", "profile_id"}
    by_key = {f"{r['identifier_type']}:{r['identifier_value']}": r["profile_id"] for r in rows}
    legacy = [k for k in by_key if k.startswith("customer_id:L")]
    assert legacy and any(sum(p == by_key[k] for p in by_key.values()) > 1 for k in legacy)  # merged somewhere

    # undo one match merge: its identifiers get a profile of their own again
    listed_merges = run(home, "profile", "merges", legacy[0], "--format", "json")
    merges = json.loads(listed_merges.stdout)["merges"] if listed_merges.returncode == 0 else []
    match = next((m for m in merges if m["kind"] == "match"), None)
    if match is not None:
        undone = run(home, "identity", "undo-merge", match["id"])
        assert undone.returncode == 0, undone.stderr
        new_pid = json.loads(undone.stdout)["new_profile_id"]
        after = run(home, "identity", "clusters", "--format", "json")
        owners = {f"{r['identifier_type']}:{r['identifier_value']}": r["profile_id"] for r in json.loads(after.stdout)}
        assert {owners[k] for k in match["identifiers"]} == {new_pid}

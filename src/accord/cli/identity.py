"""`accord identity ...`: measure the identity graph against ground truth, list conflicts."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from accord.cli.context import api_result, console, fail, local_platform, running_server, settings
from accord.identity import queries
from accord.identity.evaluate import pairwise_score, read_truth
from accord.identity.normalize import split_key
from accord.storage import create_state_engine

app = typer.Typer(help="The identity graph: evaluation against ground truth, conflicts.", no_args_is_help=True)


@app.command("evaluate")
def evaluate(
    truth: Path = typer.Option(..., exists=True, dir_okay=False, help="CSV: identifier_type,identifier_value,entity"),
    fmt: str = typer.Option("text", "--format", help="text or json"),
) -> None:
    """Pairwise precision, recall and F1 of the current grouping against a ground-truth file."""
    try:
        truth_map = read_truth(truth)
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from exc
    engine = create_state_engine(settings().state_url)  # the graph only: works beside a running server
    try:
        grouping = queries.grouping(engine)
    finally:
        engine.dispose()
    score = pairwise_score(grouping, truth_map)
    result = {
        "identifiers": score.identifiers,
        "predicted_pairs": score.predicted_pairs,
        "true_pairs": score.true_pairs,
        "correct_pairs": score.correct_pairs,
        "precision": round(score.precision, 6),
        "recall": round(score.recall, 6),
        "f1": round(score.f1, 6),
    }
    if fmt == "json":
        console.print_json(json.dumps(result))
    else:
        console.print(
            f"pairwise precision {score.precision:.4f}  recall {score.recall:.4f}  F1 {score.f1:.4f}  "
            f"({score.identifiers} identifiers, {score.true_pairs} true pairs)"
        )


@app.command("clusters")
def clusters(
    fmt: str = typer.Option("csv", "--format", help="csv or json"),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of standard output."),
) -> None:
    """Every identifier and the profile holding it: identifier_type,identifier_value,profile_id."""
    if fmt not in {"csv", "json"}:
        raise fail(f"--format must be csv or json, got {fmt!r}")
    engine = create_state_engine(settings().state_url)  # the graph only: works beside a running server
    try:
        rows = [(*split_key(key), pid) for key, pid in sorted(queries.grouping(engine).items())]
    finally:
        engine.dispose()
    handle = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        if fmt == "json":
            keys = ("identifier_type", "identifier_value", "profile_id")
            json.dump([dict(zip(keys, row, strict=True)) for row in rows], handle)
            handle.write("\n")
        else:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("identifier_type", "identifier_value", "profile_id"))
            writer.writerows(rows)
    finally:
        if output:
            handle.close()


@app.command("conflicts")
def conflicts(
    status: str = typer.Option("open", help="open, resolved or all"),
    fmt: str = typer.Option("text", "--format", help="text or json"),
) -> None:
    """Identity conflicts recorded for review (e.g. two user ids seen on one device)."""
    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            rows = api_result(
                client.get("/api/v1/identity/conflicts", params={"status": "" if status == "all" else status})
            )
    else:
        with local_platform(s, read_only=True) as platform:
            rows = json.loads(
                json.dumps(queries.conflicts(platform.state, status=None if status == "all" else status), default=str)
            )
    if fmt == "json":
        console.print_json(json.dumps(rows))
        return
    table = Table("when", "kind", "identifier", "profiles", "detail")
    for row in rows:
        table.add_row(
            str(row["at"])[:19], row["kind"], row["identifier"], ", ".join(row["profile_ids"]), row["detail"][:90]
        )
    console.print(table)

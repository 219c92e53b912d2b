"""`accord identity ...`: measure the identity graph against ground truth, list conflicts."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from accord.cli.context import api_result, console, fail, local_platform, running_server, settings
from accord.identity import queries
from accord.identity.evaluate import pairwise_score, read_truth
from accord.identity.graph import IdentityRuleError
from accord.identity.matching import (
    MatchError,
    MatchOptions,
    ReviewClosed,
    ReviewNotFound,
    decide_review,
    reviews,
    run_match,
)
from accord.identity.normalize import split_key
from accord.storage import create_state_engine

app = typer.Typer(
    help="The identity graph: probabilistic matching and its review queue, evaluation against ground truth, "
    "clusters, conflicts.",
    no_args_is_help=True,
)


def _score(truth: Path) -> dict[str, Any]:
    """Pairwise precision, recall and F1 of the current grouping against a truth file."""
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
    return {
        "identifiers": score.identifiers,
        "predicted_pairs": score.predicted_pairs,
        "true_pairs": score.true_pairs,
        "correct_pairs": score.correct_pairs,
        "precision": round(score.precision, 6),
        "recall": round(score.recall, 6),
        "f1": round(score.f1, 6),
    }


def _score_line(result: dict[str, Any]) -> str:
    return (
        f"pairwise precision {result['precision']:.4f}  recall {result['recall']:.4f}  F1 {result['f1']:.4f}  "
        f"({result['identifiers']} identifiers, {result['true_pairs']} true pairs)"
    )


@app.command("match")
def match(
    merge_above: float = typer.Option(
        MatchOptions.merge_above, "--merge-above", help="Merge uncontested pairs at or above this match probability."
    ),
    review_above: float = typer.Option(
        MatchOptions.review_above, "--review-above", help="Queue pairs at or above this for review."
    ),
    full: bool = typer.Option(False, "--full", help="Retrain the model and rescore all pairs (else: new records)."),
    truth: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Print precision/recall/F1 against this truth CSV afterwards."
    ),
    fmt: str = typer.Option("text", "--format", help="text or json"),
) -> None:
    """Match profiles that share no identifier by name, address, birth date, phone and email (Splink, EM-trained).

    Pairs at or above --merge-above merge through the identity graph (audited, reversible); pairs at or above
    --review-above wait in `accord identity review`. The first run trains the model; later runs match only new
    records against all profiles with it (use --full to retrain).
    """
    options = MatchOptions(merge_above, review_above, full)
    try:
        options.check()
    except MatchError as exc:
        raise fail(str(exc)) from exc
    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            body = {"merge_above": merge_above, "review_above": review_above, "full": full}
            with console.status("matching on the server"):
                report = api_result(client.post("/api/v1/identity/match", json=body, timeout=3600.0))
    else:
        with local_platform(s) as platform, console.status("matching") as status:
            try:
                result = run_match(platform.graph, platform.events, options, progress=status.update)
            except MatchError as exc:
                raise fail(str(exc)) from exc
            platform.processor.sync_identity()
            report = result.as_dict()
    if truth is not None:
        report["evaluation"] = _score(truth)
    if fmt == "json":
        console.print_json(json.dumps(report))
        return
    console.print(
        f"{report['mode']} run {report['run_id']}: {report['records']} records "
        f"({report['new_records']} new), {report['pairs']} candidate pairs above review threshold; "
        f"merged {report['merged']}, queued {report['queued']} for review "
        f"({report.get('contested', 0)} of them contested: a record fits two others), refused {report['refused']} "
        f"(identity rules), {report['skipped_decided']} already decided; {report['seconds']:.1f} s"
    )
    if truth is not None:
        console.print(_score_line(report["evaluation"]))


@app.command("review")
def review(
    accept: str | None = typer.Option(None, "--accept", help="Accept (merge) the review with this id."),
    reject: str | None = typer.Option(None, "--reject", help="Reject (keep apart) the review with this id."),
    note: str | None = typer.Option(None, "--note", help="A note kept with the decision."),
    status: str = typer.Option("open", help="List: open, accepted, rejected or all."),
    limit: int = typer.Option(50, min=1, max=10_000, help="List at most this many."),
    fmt: str = typer.Option("text", "--format", help="text or json"),
) -> None:
    """The review queue of borderline matches: list it, or --accept / --reject one pair."""
    if accept and reject:
        raise fail("give --accept or --reject, not both")
    s = settings()
    decision = ("accept", accept) if accept else ("reject", reject) if reject else None
    client = running_server(s)
    if decision is not None:
        verb, review_id = decision
        if client is not None:
            with client:
                row = api_result(
                    client.post(f"/api/v1/identity/reviews/{review_id}", json={"decision": verb, "note": note})
                )
        else:
            with local_platform(s) as platform:
                try:
                    row = decide_review(platform.graph, str(review_id), verb == "accept", note)
                except (ReviewNotFound, ReviewClosed) as exc:
                    raise fail(str(exc)) from exc
                platform.processor.sync_identity()
                row = json.loads(json.dumps(row, default=str))
        if fmt == "json":
            console.print_json(json.dumps(row))
        else:
            console.print(f"review {row['id']}: {row['status']} ({row['identifier_a']} / {row['identifier_b']})")
        return
    wanted = "" if status == "all" else status
    if client is not None:
        with client:
            rows = api_result(client.get("/api/v1/identity/reviews", params={"status": wanted, "limit": limit}))
    else:
        engine = create_state_engine(s.state_url)
        try:
            rows = json.loads(json.dumps(reviews(engine, wanted or None, limit), default=str))
        finally:
            engine.dispose()
    if fmt == "json":
        console.print_json(json.dumps(rows))
        return
    if not rows:
        console.print(f"no {wanted or ''} reviews".replace("  ", " "))
    for row in rows:
        console.print(
            f"[bold]{row['id']}[/]  score {row['score']:.4f}  {row['status']}  "
            f"agreeing: {', '.join(row['agreeing']) or 'none'}"
        )
        for identifier, record in zip((row["identifier_a"], row["identifier_b"]), row["records"], strict=False):
            console.print(f"  {identifier}: " + ", ".join(f"{k}={v}" for k, v in record.items()), highlight=False)


@app.command("undo-merge")
def undo_merge(
    merge_id: str = typer.Argument(..., help="Id of the merge (see `accord profile merges`)."),
    reason: str = typer.Option("merge undone", help="Kept in the audit."),
) -> None:
    """Undo a merge: the identifiers it brought in go back to a profile of their own."""
    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            result = api_result(client.post(f"/api/v1/identity/merges/{merge_id}/undo", json={"reason": reason}))
    else:
        with local_platform(s) as platform:
            try:
                new_pid = platform.graph.undo_merge(merge_id, reason)
            except IdentityRuleError as exc:
                raise fail(str(exc)) from exc
            platform.processor.sync_identity()
            result = {"merge_id": merge_id, "new_profile_id": new_pid}
    console.print_json(json.dumps(result))


@app.command("evaluate")
def evaluate(
    truth: Path = typer.Option(..., exists=True, dir_okay=False, help="CSV: identifier_type,identifier_value,entity"),
    fmt: str = typer.Option("text", "--format", help="text or json"),
) -> None:
    """Pairwise precision, recall and F1 of the current grouping against a ground-truth file."""
    result = _score(truth)
    if fmt == "json":
        console.print_json(json.dumps(result))
    else:
        console.print(_score_line(result))


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

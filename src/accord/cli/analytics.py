"""`accord analyze`: attribution, channel scorecard, lift, CLV, RFM and cohorts on the event store or on files."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from accord.analytics.errors import AnalyticsError
from accord.analytics.options import DEFAULT_CONVERSION, parse_window
from accord.cli.context import api_result, console, err_console, fail, local_platform, running_server, settings

SHOWN_TESTS = 20  # holdout tests listed in the scorecard's table

app = typer.Typer(
    help="Analyses: which channels work (attribution, scorecard, lift) and what customers are worth (CLV, RFM).",
    no_args_is_help=True,
)


class Format(StrEnum):
    """Output format."""

    text = "text"
    json = "json"


FORMAT = typer.Option(Format.text, "--format", help="text (tables) or json (for scripts).")
CONVERSION = typer.Option(DEFAULT_CONVERSION, help="Event name that counts as a conversion.")


def _dump(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def _guard(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except AnalyticsError as exc:
        raise fail(exc.message) from exc


def _time(text: str | None, what: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise fail(f"--{what} must be an ISO date or date-time, not {text!r}") from exc
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value


def _from_store(path: str, params: dict[str, Any], local: Callable[[Any], Any], method: str = "get") -> Any:
    """Ask the running server, or open the stores here when none runs."""
    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            clean = {k: v for k, v in params.items() if v is not None}
            if method == "get":
                return api_result(client.get(f"/api/v1/analytics{path}", params=clean))
            return api_result(client.post(f"/api/v1/analytics{path}", json=clean))
    with local_platform(s, read_only=method == "get") as platform:
        return _guard(lambda: local(platform))


def _write_chart(path: Path | None, make: Callable[[str], bytes]) -> None:
    if path is None:
        return
    from accord.analytics import charts

    fmt = _guard(lambda: charts.format_of(str(path)))
    path.write_bytes(make(fmt))
    err_console.print(f"chart written to {path}")


def _attribution_table(docs: list[dict[str, Any]]) -> None:
    channels = sorted({c["channel"] for d in docs for c in d["channels"]})
    table = Table("channel", *[d["model"] for d in docs], title="Conversions credited to each channel")
    for ch in channels:
        cells = []
        for d in docs:
            credit = next((c for c in d["channels"] if c["channel"] == ch), None)
            cells.append("" if credit is None else f"{credit['conversions']:.1f}")
        table.add_row(ch, *cells)
    table.add_row("[bold]total", *[f"{d['total_conversions']:.0f}" for d in docs])
    console.print(table)
    markov = next((d for d in docs if d["model"] == "markov"), None)
    if markov:
        effects = ", ".join(f"{c['channel']} {c['removal_effect']:.2f}" for c in markov["channels"])
        console.print(f"Markov removal effects: {effects}")


@app.command()
def attribution(
    model: str = typer.Option("all", help="first, last, linear, time_decay, position, markov, shapley, all (or a,b)."),
    window: str = typer.Option("30d", help="Lookback window before each conversion (e.g. 30d, 12h, 2w)."),
    conversion: str = CONVERSION,
    start: str = typer.Option(None, help="First conversion time to count (ISO; default: all)."),
    end: str = typer.Option(None, help="End of the period (exclusive; ISO)."),
    order: int = typer.Option(1, min=1, max=3, help="Markov chain order."),
    keep_repeats: bool = typer.Option(False, help="Markov: keep repeated touches of one channel."),
    half_life: float = typer.Option(7.0, help="Time decay half-life (days; touches for files)."),
    paths: Path = typer.Option(None, "--paths", help="Attribute the paths of this CSV/Parquet file instead."),
    path_col: str = typer.Option("path", help="File: column with paths like 'a > b > c'."),
    sep: str = typer.Option(">", help="File: separator of channels in a path."),
    conversions_col: str = typer.Option(None, help="File: conversions per path (default 1 each)."),
    nulls_col: str = typer.Option(None, help="File: non-converting journeys per path."),
    value_col: str = typer.Option(None, help="File: conversion value per path."),
    chart: Path = typer.Option(None, help="Also write a chart comparing the models (.png, .svg or .html)."),
    fmt: Format = FORMAT,
) -> None:
    """Which channels led to the conversions: rule-based, Markov and Shapley attribution side by side."""
    from accord.analytics import charts, service

    options = {"order": order, "half_life": half_life, "collapse_repeats": not keep_repeats}
    if paths is not None:
        doc = _guard(
            lambda: service.attribution_from_file(
                paths, path_col, sep, conversions_col, nulls_col, value_col, model, **options
            )
        )
    else:
        w = _guard(lambda: parse_window(window))
        doc = _from_store(
            "/attribution",
            {
                "model": model,
                "window": window,
                "conversion": conversion,
                "start": start,
                "end": end,
                "order": order,
                "half_life": half_life,
            },
            lambda p: service.attribution_from_store(
                p.events, model, w, conversion, _time(start, "start"), _time(end, "end"), **options
            ),
        )
    docs = doc.get("models", [doc])
    _write_chart(chart, lambda f: charts.attribution_chart(docs, f))
    if fmt is Format.json:
        _dump(doc)
        return
    _attribution_table(docs)


@app.command()
def channels(
    window: str = typer.Option("30d", help="Lookback window before each conversion (and after each holdout send)."),
    conversion: str = CONVERSION,
    start: str = typer.Option(None, help="Period start (ISO)."),
    end: str = typer.Option(None, help="Period end (ISO)."),
    confidence: float = typer.Option(0.95, help="Confidence level of the lift intervals."),
    chart: Path = typer.Option(None, help="Also write a chart (.png, .svg or .html)."),
    fmt: Format = FORMAT,
) -> None:
    """Channel scorecard: reach, conversions, attributed value, cost, CPA, ROAS, lift against holdouts.

    Cost is the messages delivered in the period plus the imported ad spend (`accord analyze spend import`)."""
    from accord.analytics import charts, service

    w = _guard(lambda: parse_window(window))

    def local(p: Any) -> Any:
        from accord.analytics_sources import holdout_tests

        return service.channel_scorecard(
            p.events, p.state, w, conversion, _time(start, "start"), _time(end, "end"),
            holdout_tests=holdout_tests(p), confidence=confidence,
        )  # fmt: skip

    doc = _from_store(
        "/channels",
        {"window": window, "conversion": conversion, "start": start, "end": end, "confidence": confidence},
        local,
    )
    _write_chart(chart, lambda f: charts.scorecard_chart(doc, f))
    if fmt is Format.json:
        _dump(doc)
        return
    ref = doc["reference_model"]
    table = Table(
        "channel", "reach", "touches", "conv. here", "revenue here", f"attributed ({ref})", "value", "cost", "CPA",
        "ROAS",
        "lift vs holdout", title=f"Channel scorecard {doc['start'][:10]} .. {doc['end'][:10]}",
    )  # fmt: skip
    for r in doc["channels"]:
        a = r["attributed"][ref]
        lift = r.get("lift")
        table.add_row(
            r["channel"],
            str(r["reach"]),
            str(r["touches"]),
            str(r["conversions"]),
            str(r.get("revenue", "")),
            f"{a['conversions']:.1f}",
            f"{a['value']:.0f}",
            "" if r["cost"] is None else f"{r['cost']:.0f}",
            "" if r["cpa"] is None else f"{r['cpa']:.0f}",
            "" if r["roas"] is None else f"{r['roas']:.2f}",
            ""
            if not lift
            else f"{lift['lift_abs']:+.2%} [{lift['ci_low']:+.2%}, {lift['ci_high']:+.2%}] p={lift['p_value']:.2g}",
        )
    console.print(table)
    console.print(f"values in minor units of {doc['currency']}; costs in minor units of {doc['cost_currency']}")
    for other in doc["costs_in_other_currencies"]:
        console.print(f"not counted: {other['channel']} {other['source']} {other['cost_minor']} {other['currency']}")
    if doc["holdout_tests"]:
        tests = Table("test", "channel", "n", "converted", "holdout n", "converted", title="Holdout tests")
        shown = doc["holdout_tests"][-SHOWN_TESTS:]  # the newest; the demo has hundreds of campaigns
        for t in shown:
            tests.add_row(f"{t['kind']} {t['name']}", t["channel"] or "(several)", str(t["n"]), str(t["converted"]),
                          str(t["control_n"]), str(t["control_converted"]))  # fmt: skip
        console.print(tests)
        if len(doc["holdout_tests"]) > len(shown):
            console.print(f"{len(doc['holdout_tests']) - len(shown)} older tests not shown (--format json lists all)")
    rate = Table("channels reached", "profiles", "buyers", "purchase rate", title="Purchase rate by channels reached")
    for r in doc["purchase_rate_by_channels"]:
        rate.add_row(str(r["channels"]), str(r["profiles"]), str(r["buyers"]), f"{r['purchase_rate']:.1%}")
    console.print(rate)


spend_app = typer.Typer(help="Imported ad spend per channel and day (the scorecard's cost besides messages).",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(spend_app, name="spend")


@spend_app.command("import")
def spend_import(
    file: Path = typer.Argument(..., help="CSV or Parquet: date, channel, cost (or cost_minor), currency[, campaign]."),
    fmt: Format = FORMAT,
) -> None:
    """Import ad spend: one row per day, channel (and campaign). Re-importing replaces those days' amounts, so a
    file imported twice changes nothing; bad rows are listed with their row number and reason (exit status 1)."""
    from accord.analytics import service
    from accord.analytics.spend import read_rows

    rows = _guard(lambda: read_rows(file))
    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            body = {"source": file.name, "rows": rows}
            response = client.post("/api/v1/analytics/spend", content=json.dumps(body, default=str),
                                   headers={"Content-Type": "application/json"})  # fmt: skip
            doc = api_result(response)
    else:
        with local_platform(s, read_only=True) as p:
            doc = _guard(lambda: service.import_spend(p.state, rows, file.name))
    if fmt is Format.json:
        _dump(doc)
    else:
        console.print(
            f"{doc['imported']} of {doc['rows']} rows imported ({doc['inserted']} new, {doc['updated']} changed, "
            f"{doc['unchanged']} unchanged)"
        )
        for r in doc["rejected"]:
            console.print(f"row {r['row']} rejected: {r['reason']}")
    if doc["rejected"]:
        raise typer.Exit(1)


@spend_app.command("list")
def spend_list(
    start: str = typer.Option(None, help="First day (ISO date)."),
    end: str = typer.Option(None, help="Last day (ISO date, inclusive)."),
    fmt: Format = FORMAT,
) -> None:
    """Imported spend by day, channel and campaign."""
    from accord.analytics import service

    first, last = _day(start, "start"), _day(end, "end")
    rows = _from_store("/spend", {"start": start, "end": end}, lambda p: service.read_spend(p.state, first, last))
    if fmt is Format.json:
        _dump(rows)
        return
    table = Table("day", "channel", "campaign", "cost (minor units)", "currency", "from")
    for r in rows:
        table.add_row(r["day"], r["channel"], r["campaign"], str(r["cost_minor"]), r["currency"], r["source"])
    console.print(table)


def _day(text: str | None, what: str) -> Any:
    from datetime import date

    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise fail(f"--{what} must be an ISO date (YYYY-MM-DD), not {text!r}") from exc


@app.command()
def lift(
    input_file: Path = typer.Option(None, "--input", help="CSV/Parquet with one row per member."),
    group_col: str = typer.Option("group", help="Column naming each member's group."),
    control: str = typer.Option(None, help="Label of the control group (default: control; holdout for broadcasts)."),
    metric: list[str] = typer.Option([], "--metric", help="Metric column (0/1 flag or amount); repeatable."),
    confidence: float = typer.Option(0.95, help="Confidence level of the intervals."),
    journey: str = typer.Option(None, help="Lift of a journey against its holdout (the journey's goal)."),
    broadcast: str = typer.Option(None, help="Lift of a broadcast (name or id) against its holdout, per variant."),
    global_control: bool = typer.Option(False, help="Everyone messaged against messaging's global control group."),
    window: str = typer.Option("7d", help="Broadcast: conversions counted this long after the send."),
    conversion: str = CONVERSION,
    start: str = typer.Option(None, help="Global control: period start (ISO; default the last 30 days of events)."),
    end: str = typer.Option(None, help="Global control: period end (ISO)."),
    chart: Path = typer.Option(None, help="Also write a chart of the first metric (.png, .svg or .html)."),
    fmt: Format = FORMAT,
) -> None:
    """Holdout/A-B lift: rates, absolute and relative lift, CIs, z or Welch test, Holm-adjusted p-values."""
    from accord.analytics import charts, service

    if sum(x is not None and x is not False for x in (input_file, journey, broadcast, global_control or None)) != 1:
        raise fail("give one of --input FILE (with --group-col, --control, --metric), --journey NAME, "
                   "--broadcast NAME or --global-control")  # fmt: skip
    if journey:
        doc = _journey_lift(journey, confidence)
        metric = ["converted"]
    elif broadcast:
        doc = _broadcast_lift(broadcast, window, conversion, control or "holdout", confidence)
        metric = ["converted", "revenue"]
    elif global_control:
        doc = _global_control_lift(start, end, conversion, confidence)
        metric = ["converted", "revenue"]
    else:
        doc = _guard(lambda: service.lift_from_file(input_file, group_col, control or "control", metric, confidence))
    if metric:
        _write_chart(chart, lambda f: charts.lift_chart(doc, metric[0], f))
    if fmt is Format.json:
        _dump(doc)
        return
    table = Table("group", "n", "metric", "rate/mean", "lift", "rel.", "CI", "test", "p", "p (Holm)")
    for t in doc["treatments"]:
        for name, m in t["metrics"].items():
            rel = "" if m["lift_rel"] is None else f"{m['lift_rel']:+.1%}"
            table.add_row(
                t["group"],
                str(t["n"]),
                name,
                f"{m['rate']:.4g} (ctl {m['control_rate']:.4g})",
                f"{m['lift_abs']:+.4g}",
                rel,
                f"[{m['ci_low']:+.4g}, {m['ci_high']:+.4g}]",
                m["test"],
                f"{m['p_value']:.3g}",
                f"{m['p_value_holm']:.3g}",
            )
    console.print(table)
    console.print(f"control group {doc['control']}: {doc['control_n']} members")


def _broadcast_lift(name: str, window: str, conversion: str, control: str, confidence: float) -> dict[str, Any]:
    """A broadcast's groups from messaging, their conversions after the send from the event store."""
    from accord.analytics import service
    from accord.messaging.service import MessagingError

    w = _guard(lambda: parse_window(window))
    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            params: dict[str, Any] = {
                "window": window,
                "conversion": conversion,
                "control": control,
                "confidence": confidence,
            }
            return dict(api_result(client.get(f"/api/v1/analytics/lift/broadcast/{name}", params=params)))
    from accord.analytics_sources import broadcast_groups

    with local_platform(s, read_only=True) as p:
        try:
            groups = broadcast_groups(p, name)
        except MessagingError as exc:
            raise fail(exc.message) from exc
        return dict(_guard(lambda: service.broadcast_lift(p.events, groups, w, conversion, control, confidence)))


def _global_control_lift(start: str | None, end: str | None, conversion: str, confidence: float) -> dict[str, Any]:
    """Everyone else against messaging's global control group over a period."""
    from accord.analytics import service

    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            params = {"start": start, "end": end, "conversion": conversion, "confidence": confidence}
            clean = {k: v for k, v in params.items() if v is not None}
            return dict(api_result(client.get("/api/v1/analytics/lift/global-control", params=clean)))
    from accord.analytics_sources import in_global_control

    with local_platform(s, read_only=True) as p:
        return dict(
            _guard(
                lambda: service.global_control_lift(
                    p.events, in_global_control(p), _time(start, "start"), _time(end, "end"), conversion, confidence
                )
            )
        )


def in_stock_near(state: Any, near: str, radius_km: float) -> Callable[[str], dict[str, Any] | None]:
    """A check of the commerce domain: the nearest store within RADIUS_KM of NEAR ("lat,lon") holding a SKU."""
    from accord.commerce import service as commerce

    try:
        lat, lon = (float(x) for x in near.split(","))
    except ValueError as exc:
        raise fail(f"--near must be LAT,LON, not {near!r}") from exc

    def where(sku: str) -> dict[str, Any] | None:
        found = commerce.availability(state, sku, lat, lon, limit=1, radius_km=radius_km)
        return found[0] if found else None

    return where


def _journey_lift(name: str, confidence: float) -> dict[str, Any]:
    """Conversion of a journey's entrants against its holdout (the journeys domain counts both groups)."""
    from accord.analytics.lift import lift_from_counts

    s = settings()
    if (client := running_server(s)) is not None:
        with client:
            return dict(
                api_result(client.get(f"/api/v1/analytics/lift/journey/{name}", params={"confidence": confidence}))
            )
    from accord.journeys import service as journeys
    from accord.journeys.errors import JourneyError

    with local_platform(s, read_only=True) as p:
        try:
            conversion = journeys.stats(p.state, name)["conversion"]
        except JourneyError as exc:
            raise fail(exc.message) from exc
    counts = {
        "journey": (conversion["journey"]["entered"], conversion["journey"]["converted"]),
        "holdout": (conversion["holdout"]["entered"], conversion["holdout"]["converted"]),
    }
    return dict(_guard(lambda: {"journey": name, **lift_from_counts(counts, "holdout", confidence=confidence)}))


@app.command("sample-size")
def sample_size(
    baseline: float = typer.Option(None, help="Baseline conversion rate (e.g. 0.1)."),
    sd: float = typer.Option(None, help="Standard deviation of an amount (instead of --baseline)."),
    effect: float = typer.Option(..., help="Absolute effect to detect (rate points or amount)."),
    alpha: float = typer.Option(0.05, help="Significance level (two-sided)."),
    power: float = typer.Option(0.8, help="Power."),
    fmt: Format = FORMAT,
) -> None:
    """Members needed per group to detect an effect."""
    from accord.analytics.lift import sample_size_means, sample_size_proportions

    if (baseline is None) == (sd is None):
        raise fail("give either --baseline (a rate) or --sd (an amount)")
    n = _guard(
        lambda: (
            sample_size_proportions(baseline, effect, alpha, power)
            if baseline is not None
            else sample_size_means(sd, effect, alpha, power)
        )
    )
    if fmt is Format.json:
        _dump({"per_group": n, "alpha": alpha, "power": power, "effect": effect})
    else:
        console.print(f"{n} per group")


@app.command()
def clv(
    transactions: Path = typer.Option(None, help="CSV/Parquet of purchases (else the event store's conversions)."),
    customer_col: str = typer.Option("customer", help="File: customer id column."),
    date_col: str = typer.Option("date", help="File: purchase date column (ISO or YYYYMMDD)."),
    value_col: str = typer.Option(None, help="File: purchase value column."),
    calibration_end: str = typer.Option(None, help="File: last day of the calibration period (ISO date)."),
    time_unit: str = typer.Option("week", help="Time unit of the model: day or week."),
    horizon: str = typer.Option("365d", help="Horizon of the predicted value."),
    conversion: str = CONVERSION,
    write: bool = typer.Option(True, help="Store: write the scores to profiles (computed traits)."),
    top: int = typer.Option(10, help="Customers to list (highest value first)."),
    chart: Path = typer.Option(None, help="Also write the CLV and P(alive) distribution (.png, .svg or .html)."),
    fmt: Format = FORMAT,
) -> None:
    """BG/NBD + Gamma-Gamma: P(alive), expected purchases, predicted value and next purchase date per customer."""
    from accord.analytics import charts, service

    horizon_days = _guard(lambda: parse_window(horizon)).total_seconds() / 86400
    rows: list[dict[str, Any]] = []
    drawn = False
    if transactions is not None:
        summary, rows = _guard(
            lambda: service.clv_from_file(
                transactions, customer_col, date_col, value_col, calibration_end, time_unit, horizon_days
            )
        )
    else:
        s = settings()
        if (client := running_server(s)) is not None:
            with client:
                body = {"conversion": conversion, "time_unit": time_unit, "horizon_days": horizon_days, "write": write,
                        "top": top}  # fmt: skip
                summary = api_result(client.post("/api/v1/analytics/clv", json=body))
                rows = summary.pop("top", [])
                if chart is not None:  # the chart needs every customer: the server draws it
                    fmt_ = _guard(lambda: charts.format_of(str(chart)))
                    response = client.get(f"/api/v1/analytics/charts/clv.{fmt_}", params={"conversion": conversion})
                    if response.status_code >= 400:
                        api_result(response)
                    chart.write_bytes(response.content)
                    err_console.print(f"chart written to {chart}")
                    drawn = True
        else:
            with local_platform(s) as p:
                summary, rows = _guard(
                    lambda: service.clv_from_store(
                        p.events, p.state if write else None, conversion, None, time_unit, horizon_days
                    )
                )
    if rows and not drawn:
        _write_chart(chart, lambda f: charts.clv_chart(rows, f))
    if fmt is Format.json:
        _dump({**summary, "top": sorted(rows, key=lambda r: -r["clv"])[:top]} if rows else summary)
        return
    bg, gg = summary["bg_nbd"], summary["gamma_gamma"]
    console.print(
        f"{summary['customers']} customers; BG/NBD r={bg['r']:.3f} alpha={bg['alpha']:.3f} a={bg['a']:.3f} "
        f"b={bg['b']:.3f} (LL {bg['log_likelihood']:.1f}); Gamma-Gamma p={gg['p']:.3f} q={gg['q']:.3f} "
        f"gamma={gg['gamma']:.3f}"
    )
    if summary.get("run_id"):
        console.print(f"scores written to profiles (run {summary['run_id']})")
    table = Table("customer", "purchases", "P(alive)", "exp. purchases", "value", "next purchase")
    for r in sorted(rows, key=lambda r: -r["clv"])[:top]:
        table.add_row(
            r["customer"],
            f"{r['frequency'] + 1:.0f}",
            f"{r['p_alive']:.2f}",
            f"{r['expected_purchases']:.2f}",
            f"{r['clv']:.0f}",
            r["expected_next_purchase"],
        )
    if rows:
        console.print(table)


@app.command()
def rfm(conversion: str = CONVERSION, fmt: Format = FORMAT) -> None:
    """RFM scores (1-5) and segment names per profile, from the event store."""
    from accord.analytics import service

    rows = _from_store("/rfm", {"conversion": conversion}, lambda p: service.rfm_from_store(p.events, conversion))
    if fmt is Format.json:
        _dump(rows)
        return
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["segment"]] = counts.get(r["segment"], 0) + 1
    table = Table("segment", "customers", title="RFM segments")
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        table.add_row(name, str(n))
    console.print(table)


@app.command()
def cohorts(
    by: str = typer.Option("month", help="month (of first purchase) or channel (of first purchase)."),
    periods: int = typer.Option(12, help="Months to follow."),
    transactions: Path = typer.Option(None, help="CSV/Parquet of purchases instead of the event store."),
    customer_col: str = typer.Option("customer", help="File: customer id column."),
    date_col: str = typer.Option("date", help="File: purchase date column."),
    conversion: str = CONVERSION,
    chart: Path = typer.Option(None, help="Also write a heat map (.png, .svg or .html)."),
    fmt: Format = FORMAT,
) -> None:
    """Retention: share of each cohort buying again in each month after the first purchase."""
    from accord.analytics import charts, service

    if transactions is not None:
        rows = _guard(lambda: service.cohorts_from_file(transactions, customer_col, date_col, by, periods))
    else:
        rows = _from_store(
            "/cohorts",
            {"by": by, "periods": periods, "conversion": conversion},
            lambda p: service.cohorts_from_store(p.events, by, periods, conversion),
        )
    _write_chart(chart, lambda f: charts.cohort_chart(rows, f))
    if fmt is Format.json:
        _dump(rows)
        return
    table = Table("cohort", "customers", *[f"m{k}" for k in range(periods)], title=f"Retention by first {by}")
    for r in rows:
        table.add_row(r["cohort"], str(r["customers"]), *[f"{x:.0%}" for x in r["retention"]])
    console.print(table)


@app.command()
def recommend(
    identifier: str = typer.Argument(None, help="TYPE:VALUE of the customer, e.g. email:ann@example.com."),
    k: int = typer.Option(10, min=1, help="How many products."),
    available: str = typer.Option(None, help="Only these SKUs (comma-separated)."),
    near: str = typer.Option(None, help="LAT,LON: only products in stock at a store near there (story 22)."),
    radius_km: float = typer.Option(25.0, help="With --near: how far a store may be."),
    evaluate: bool = typer.Option(False, help="Instead: precision@k / recall@k against held-out last purchases."),
    fmt: Format = FORMAT,
) -> None:
    """Products to recommend from everyone's views, cart additions and purchases (ALS; popular ones for newcomers)."""
    from accord.analytics import service

    s = settings()
    skus = [x.strip() for x in available.split(",") if x.strip()] if available else None
    if evaluate:
        doc = _from_store(
            "/recommendations/evaluation", {"k": k}, lambda p: service.evaluate_recommendations(p.events, k)
        )
        if fmt is Format.json:
            _dump(doc)
        else:
            for name in ("model", "popularity"):
                m = doc[name]
                console.print(f"{name}: precision@{k} {m['precision_at_k']:.3f}  recall@{k} {m['recall_at_k']:.3f}")
            console.print(f"{doc['held_out_users']} customers' last purchases held out; model: {doc['method']}")
        return
    if not identifier:
        raise fail("give the customer as TYPE:VALUE (or --evaluate)")
    from accord.profiles import service as profiles

    if (client := running_server(s)) is not None:
        with client:
            found = client.get("/api/v1/profiles/resolve", params={"identifier": identifier})
            if found.status_code == 404:
                raise fail(f"no profile has identifier {identifier}")
            pid = api_result(found)["profile_id"]
            params: dict[str, Any] = {"k": k, **({"available": ",".join(skus)} if skus else {})}
            if near:
                params |= {"near": near, "radius_km": radius_km}
            doc = api_result(client.get(f"/api/v1/analytics/recommendations/{pid}", params=params))
    else:
        with local_platform(s, read_only=True) as p:
            try:
                pid = profiles.resolve(p.state, p.rules, identifier)
            except profiles.InvalidIdentifier as exc:
                raise fail(str(exc)) from exc
            if pid is None:
                raise fail(f"no profile has identifier {identifier}")
            stock = in_stock_near(p.state, near, radius_km) if near else None
            doc = _guard(lambda: service.recommendations_from_store(p.events, pid, k, skus, stock))
    if fmt is Format.json:
        _dump(doc)
        return
    table = Table("product", "score", "from", "in stock at", title=f"Recommended for {doc['profile_id']}")
    for r in doc["items"]:
        where = r.get("in_stock_at")
        shop = f"{where['name']} ({where['distance_m'] / 1000:.1f} km, {where['atp']} left)" if where else ""
        table.add_row(r["item"], f"{r['score']:.3f}", r["source"], shop)
    console.print(table)


@app.command()
def forecast(
    sales: Path = typer.Option(None, help="CSV/Parquet of sales instead of the event store's order lines."),
    store_col: str = typer.Option("store", help="File: store column."),
    sku_col: str = typer.Option("sku", help="File: SKU column."),
    date_col: str = typer.Option("date", help="File: sale date column."),
    quantity_col: str = typer.Option("quantity", help="File: units column."),
    horizon: int = typer.Option(4, min=1, help="Weeks to forecast (and to hold out for the accuracy check)."),
    lead_time: float = typer.Option(1.0, help="Replenishment lead time in weeks (for safety stock)."),
    service_level: float = typer.Option(0.95, help="Share of lead times without a stock-out (for safety stock)."),
    top: int = typer.Option(15, help="Series to list (largest forecast first)."),
    fmt: Format = FORMAT,
) -> None:
    """Units each store will sell of each SKU in the next weeks, hold-out accuracy, and safety stock."""
    from accord.analytics import service

    if sales is not None:
        doc = _guard(
            lambda: service.forecast_from_file(
                sales, store_col, sku_col, date_col, quantity_col, horizon, lead_time, service_level
            )
        )
    else:
        doc = _from_store(
            "/forecast",
            {"horizon": horizon, "lead_time_weeks": lead_time, "service_level": service_level},
            lambda p: service.forecast_from_store(p.events, horizon, lead_time, service_level),
        )
    if fmt is Format.json:
        _dump(doc)
        return
    acc = Table("model", "MAE", "RMSE", "WAPE", title=f"Accuracy on the {horizon} weeks from {doc['holdout_start']}")
    for name, m in doc["accuracy"].items():
        acc.add_row(name + (" (chosen)" if name == doc["model"] else ""), f"{m['mae']:.3f}", f"{m['rmse']:.3f}",
                    f"{m['wape']:.1%}")  # fmt: skip
    console.print(acc)
    table = Table("store", "SKU", f"units, next {horizon} weeks", "safety stock", title=f"{doc['series']} series")
    for r in sorted(doc["forecasts"], key=lambda r: -r["total_units"])[:top]:
        safety = "" if r["safety_stock"] is None else f"{r['safety_stock']:.1f}"
        table.add_row(r["store"], r["sku"], f"{r['total_units']:.1f}", safety)
    console.print(table)

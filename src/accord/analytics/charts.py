"""Charts (PNG, SVG or an HTML page with the SVG inline, matplotlib without a display): attribution, scorecard, lift,
CLV, cohorts."""

from __future__ import annotations

import html
import io
from typing import Any

from accord.analytics.errors import InvalidInput

FORMATS = ("png", "svg", "html")


def _figure(width: float = 9.0, height: float = 4.5) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, fmt: str, title: str = "Accord analytics") -> bytes:
    if fmt not in FORMATS:
        raise InvalidInput(f"charts are {', '.join(FORMATS)}")
    buf = io.BytesIO()
    fig.savefig(
        buf, format="png" if fmt == "png" else "svg", dpi=110, metadata=None if fmt == "png" else {"Date": None}
    )
    if fmt != "html":
        return buf.getvalue()
    svg = buf.getvalue().decode()
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and doctype: the SVG sits inline in the page
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body><figure>\n{svg}\n"
        f"<figcaption>{html.escape(title)}</figcaption></figure></body></html>\n"
    ).encode()


def format_of(path: str) -> str:
    """Chart format from a file name (.png, .svg, .html)."""
    ext = path.rsplit(".", 1)[-1].lower()
    ext = "html" if ext == "htm" else ext
    if ext not in FORMATS:
        raise InvalidInput("the chart file must end in .png, .svg or .html")
    return ext


def attribution_chart(models: list[dict[str, Any]], fmt: str = "png") -> bytes:
    """Grouped bars: share of conversions each model credits to each channel."""
    import numpy as np

    channels = sorted({c["channel"] for m in models for c in m["channels"]})
    fig = _figure(max(8.0, 1.1 * len(channels) + 3), 4.8)
    ax = fig.add_subplot()
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(channels))
    for i, m in enumerate(models):
        total = m["total_conversions"] or 1.0
        share = {c["channel"]: c["conversions"] / total for c in m["channels"]}
        ax.bar(x + i * width - 0.4 + width / 2, [share.get(ch, 0.0) for ch in channels], width, label=m["model"])
    ax.set_xticks(x, channels, rotation=30, ha="right")
    ax.set_ylabel("share of conversions")
    ax.set_title("Attribution by model")
    ax.legend(ncols=min(len(models), 4), fontsize="small")
    return _save(fig, fmt, "Attribution by model")


def scorecard_chart(doc: dict[str, Any], fmt: str = "png") -> bytes:
    """Attributed conversions (reference model) per channel, conversion lift against holdouts with its interval,
    and purchase rate by channels reached."""
    fig = _figure(15, 4.5)
    left, middle, right = fig.subplots(1, 3)
    rows = doc["channels"]
    tested = [r for r in rows if r.get("lift")]
    if tested:
        mid = [r["lift"]["lift_abs"] for r in tested]
        err = [
            [m - r["lift"]["ci_low"] for m, r in zip(mid, tested, strict=True)],
            [r["lift"]["ci_high"] - m for m, r in zip(mid, tested, strict=True)],
        ]
        middle.errorbar(mid, [r["channel"] for r in tested], xerr=err, fmt="o", capsize=4)
        middle.axvline(0, color="grey", lw=1)
    else:
        middle.text(0.5, 0.5, "no holdout tests in this period", ha="center", va="center")
    middle.set_xlabel(f"conversion lift vs holdout ({int(doc.get('confidence', 0.95) * 100)}% CI)")
    names = [r["channel"] for r in rows]
    ref = doc["reference_model"]
    left.barh(names, [r["attributed"][ref]["conversions"] for r in rows], color="tab:blue")
    left.set_xlabel(f"conversions attributed ({ref})")
    rate = doc["purchase_rate_by_channels"]
    right.bar([str(r["channels"]) for r in rate], [r["purchase_rate"] for r in rate], color="tab:green")
    right.set_xlabel("channels that reached the customer")
    right.set_ylabel("purchase rate")
    return _save(fig, fmt, "Channel scorecard")


def lift_chart(doc: dict[str, Any], metric: str, fmt: str = "png") -> bytes:
    """Absolute lift with its confidence interval, per treatment group."""
    fig = _figure(7, 0.6 * len(doc["treatments"]) + 2)
    ax = fig.add_subplot()
    groups = [t["group"] for t in doc["treatments"]]
    stats = [t["metrics"][metric] for t in doc["treatments"]]
    mid = [s["lift_abs"] for s in stats]
    err = [
        [m - s["ci_low"] for m, s in zip(mid, stats, strict=True)],
        [s["ci_high"] - m for m, s in zip(mid, stats, strict=True)],
    ]
    ax.errorbar(mid, groups, xerr=err, fmt="o", capsize=4)
    ax.axvline(0, color="grey", lw=1)
    ax.set_xlabel(f"lift of {metric} vs {doc['control']} ({int(doc['confidence'] * 100)}% CI)")
    return _save(fig, fmt, f"Lift of {metric}")


def clv_chart(rows: list[dict[str, Any]], fmt: str = "png") -> bytes:
    """Distribution of predicted customer value and of P(alive)."""
    fig = _figure(10, 4)
    left, right = fig.subplots(1, 2)
    left.hist([r["clv"] for r in rows], bins=40, color="tab:purple")
    left.set_xlabel("predicted value over the horizon")
    left.set_ylabel("customers")
    right.hist([r["p_alive"] for r in rows], bins=20, color="tab:orange")
    right.set_xlabel("P(alive)")
    return _save(fig, fmt, "Customer value and P(alive)")


def cohort_chart(rows: list[dict[str, Any]], fmt: str = "png") -> bytes:
    """Heat map of retention: cohorts by rows, months since first purchase by columns."""
    import numpy as np

    fig = _figure(9, 0.35 * len(rows) + 2)
    ax = fig.add_subplot()
    grid = np.array([r["retention"] for r in rows]) if rows else np.zeros((0, 0))
    image = ax.imshow(grid, aspect="auto", cmap="Blues", vmin=0, vmax=1)
    ax.set_yticks(range(len(rows)), [f"{r['cohort']} ({r['customers']})" for r in rows])
    ax.set_xlabel("months since first purchase")
    fig.colorbar(image, ax=ax, label="share buying")
    return _save(fig, fmt, "Retention by cohort")

"""A journey's steps drawn as an SVG flow diagram on the server: boxes with counts, arrows for every jump."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from markupsafe import Markup, escape

BOX_W, BOX_H, GAP = 360, 58, 34
LEFT = 20
KIND_COLOURS = {"send": "#2450a6", "wait": "#7f7f7f", "wait_until": "#7f7f7f", "exit": "#5b6475", "split": "#9467bd"}


def _box(index: int) -> tuple[int, int]:
    return LEFT, 10 + index * (BOX_H + GAP)


def flow_svg(
    steps: list[dict[str, Any]], passed_label: str, waiting_label: str, number: Callable[[int], str]
) -> Markup:
    """STEPS as flow() gives them (id, kind, summary, passed, waiting, edges) -> an inline <svg>."""
    index = {s["id"]: i for i, s in enumerate(steps)}
    jumps = sum(1 for s in steps for _label, target in s["edges"] if target in index)
    width = LEFT + BOX_W + 60 + 24 * max(jumps, 1)
    height = 20 + len(steps) * (BOX_H + GAP)
    parts = [
        f'<svg class="flow-diagram" id="flow-diagram" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="flow">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#5b6475"/></marker></defs>',
    ]
    lane = 0
    for i, step in enumerate(steps):
        x, y = _box(i)
        for label, target in step["edges"]:
            if target not in index:
                continue
            j = index[target]
            tx, ty = _box(j)
            if j == i + 1:
                parts.append(
                    f'<line x1="{x + BOX_W / 2}" y1="{y + BOX_H}" x2="{tx + BOX_W / 2}" y2="{ty - 2}" '
                    'stroke="#5b6475" stroke-width="1.5" marker-end="url(#arrow)"/>'
                )
                if label:
                    parts.append(
                        f'<text x="{x + BOX_W / 2 + 6}" y="{y + BOX_H + GAP / 2 + 4}" class="edge-label">'
                        f"{escape(label)}</text>"
                    )
                continue
            lane += 1
            out_x = x + BOX_W + 24 * lane + 20
            parts.append(
                f'<path d="M{x + BOX_W},{y + BOX_H / 2} H{out_x} V{ty + BOX_H / 2} H{tx + BOX_W + 2}" fill="none" '
                'stroke="#5b6475" stroke-width="1.5" marker-end="url(#arrow)"/>'
            )
            if label:
                parts.append(
                    f'<text x="{x + BOX_W + 4}" y="{y + BOX_H / 2 - 4}" class="edge-label">{escape(label)}</text>'
                )
    for i, step in enumerate(steps):
        x, y = _box(i)
        colour = KIND_COLOURS.get(step["kind"], "#2450a6")
        counts = f"{number(step['passed'])} {passed_label}"
        if step["waiting"]:
            counts += f" · {number(step['waiting'])} {waiting_label}"
        parts.append(
            f'<g class="flow-step" data-step="{escape(step["id"])}">'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="#fff" stroke="{colour}" '
            'stroke-width="2"/>'
            f'<text x="{x + 10}" y="{y + 20}" class="step-title">{escape(step["id"])} '
            f'<tspan class="step-kind">{escape(step["kind"])}</tspan></text>'
            f'<text x="{x + 10}" y="{y + 36}" class="step-summary">{escape(str(step["summary"])[:52])}</text>'
            f'<text x="{x + 10}" y="{y + 51}" class="step-counts">{escape(counts)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))

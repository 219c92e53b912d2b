"""Vega-Lite specifications for the pages' charts (rendered in the browser by vega-embed from local files)."""

from __future__ import annotations

from typing import Any

# One colour per channel everywhere (charts and the timeline's channel marks use the same palette).
CHANNEL_COLOURS: dict[str, str] = {
    "web": "#1f77b4",
    "app": "#9467bd",
    "email": "#ff7f0e",
    "sms": "#d62728",
    "push": "#e377c2",
    "messenger": "#17becf",
    "social": "#bcbd22",
    "ads": "#8c564b",
    "store": "#2ca02c",
    "call_center": "#393b79",
    "direct_mail": "#7f7f7f",
    "kiosk": "#637939",
    "other": "#aaaaaa",
}


def stacked_bars(rows: list[dict[str, Any]], x: str, y: str, color: str, x_title: str, y_title: str) -> dict[str, Any]:
    """Bars per X stacked by COLOR, with a legend (readable without hovering)."""
    present = sorted({str(r[color]) for r in rows})
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "width": "container",
        "height": 260,
        "data": {"values": rows},
        "mark": {"type": "bar"},
        "encoding": {
            "x": {"field": x, "type": "temporal", "timeUnit": "utcyearmonthdate", "title": x_title},
            "y": {"field": y, "type": "quantitative", "aggregate": "sum", "title": y_title},
            "color": {
                "field": color,
                "type": "nominal",
                "title": None,
                "scale": {"domain": present, "range": [CHANNEL_COLOURS.get(c, "#aaaaaa") for c in present]},
                "legend": {"orient": "top", "columns": 8},
            },
            "tooltip": [
                {"field": x, "type": "temporal", "timeUnit": "utcyearmonthdate"},
                {"field": color},
                {"field": y, "type": "quantitative"},
            ],
        },
    }


def line(rows: list[dict[str, Any]], x: str, y: str, x_title: str, y_title: str) -> dict[str, Any]:
    """A line over time with its points marked (e.g. a segment's size)."""
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "width": "container",
        "height": 200,
        "data": {"values": rows},
        "mark": {"type": "line", "point": True},
        "encoding": {
            "x": {"field": x, "type": "temporal", "title": x_title},
            "y": {"field": y, "type": "quantitative", "title": y_title},
            "tooltip": [{"field": x, "type": "temporal"}, {"field": y, "type": "quantitative"}],
        },
    }


def grouped_bars(
    rows: list[dict[str, Any]], x: str, y: str, group: str, x_title: str, y_title: str, group_title: str
) -> dict[str, Any]:
    """Bars per X, one beside the other per GROUP (e.g. channels by attribution model), values printed on them."""
    groups = list(dict.fromkeys(str(r[group]) for r in rows))
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "width": "container",
        "height": 300,
        "data": {"values": rows},
        "encoding": {
            "x": {"field": x, "type": "nominal", "title": x_title, "axis": {"labelAngle": 0}},
            "xOffset": {"field": group, "type": "nominal", "sort": groups},
            "y": {"field": y, "type": "quantitative", "title": y_title},
            "color": {
                "field": group,
                "type": "nominal",
                "sort": groups,
                "title": group_title,
                "legend": {"orient": "top", "columns": 8},
            },
            "tooltip": [{"field": x}, {"field": group}, {"field": y, "type": "quantitative", "format": ",.1f"}],
        },
        "layer": [{"mark": {"type": "bar"}}],
    }


def bars(rows: list[dict[str, Any]], x: str, y: str, x_title: str, y_title: str, fmt: str = ",.0f") -> dict[str, Any]:
    """One bar per X in the channel colours, the value printed above each bar."""
    present = [str(r[x]) for r in rows]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "width": "container",
        "height": 240,
        "data": {"values": rows},
        "encoding": {
            "x": {"field": x, "type": "nominal", "title": x_title, "sort": present, "axis": {"labelAngle": 0}},
            "y": {"field": y, "type": "quantitative", "title": y_title},
        },
        "layer": [
            {
                "mark": {"type": "bar"},
                "encoding": {
                    "color": {
                        "field": x,
                        "type": "nominal",
                        "legend": None,
                        "scale": {"domain": present, "range": [CHANNEL_COLOURS.get(c, "#4c78a8") for c in present]},
                    }
                },
            },
            {
                "mark": {"type": "text", "dy": -6, "baseline": "bottom"},
                "encoding": {"text": {"field": y, "type": "quantitative", "format": fmt}},
            },
        ],
    }

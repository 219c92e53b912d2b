"""Vega-Lite specifications of the lift, customer value and store map pages (drawn in the browser from local files)."""

from __future__ import annotations

import math
from typing import Any

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
WORLD = "/static/vendor/countries-110m.json"  # world-atlas (npm), copied by `make install`; never fetched elsewhere


def forest(rows: list[dict[str, Any]], x_title: str, y_title: str) -> dict[str, Any]:
    """Each row's estimate (LIFT) as a point on its interval [LOW, HIGH], a line at zero: lift whose interval
    crosses zero is not evidence of an effect. Estimates printed beside the points."""
    order = [str(r["what"]) for r in rows]
    return {
        "$schema": SCHEMA,
        "width": "container",
        "height": max(160, 40 * len(rows)),
        "data": {"values": rows},
        "encoding": {"y": {"field": "what", "type": "nominal", "title": y_title, "sort": order}},
        "layer": [
            {
                "mark": {"type": "rule", "strokeWidth": 2, "color": "#4c78a8"},
                "encoding": {
                    "x": {"field": "low", "type": "quantitative", "title": x_title},
                    "x2": {"field": "high"},
                },
            },
            {
                "mark": {"type": "point", "filled": True, "size": 70, "color": "#1f3b73"},
                "encoding": {
                    "x": {"field": "lift", "type": "quantitative"},
                    "tooltip": [
                        {"field": "what"},
                        {"field": "lift", "type": "quantitative", "format": "+.2f"},
                        {"field": "low", "type": "quantitative", "format": "+.2f"},
                        {"field": "high", "type": "quantitative", "format": "+.2f"},
                    ],
                },
            },
            {
                "mark": {"type": "text", "dy": -10, "fontSize": 11},
                "encoding": {
                    "x": {"field": "lift", "type": "quantitative"},
                    "text": {"field": "lift", "type": "quantitative", "format": "+.2f"},
                },
            },
            {
                "data": {"values": [{"zero": 0}]},
                "mark": {"type": "rule", "strokeDash": [4, 3], "color": "#888"},
                "encoding": {"x": {"field": "zero", "type": "quantitative"}, "y": None},
            },
        ],
    }


def histogram(
    rows: list[dict[str, Any]], x: str, y: str, x_title: str, y_title: str, colour: str = "#4c78a8"
) -> dict[str, Any]:
    """Bars of a ready-made distribution (one row per bucket, in order), counts printed above the bars."""
    order = [str(r[x]) for r in rows]
    return {
        "$schema": SCHEMA,
        "width": "container",
        "height": 240,
        "data": {"values": rows},
        "encoding": {
            "x": {"field": x, "type": "ordinal", "title": x_title, "sort": order, "axis": {"labelAngle": -30}},
            "y": {"field": y, "type": "quantitative", "title": y_title},
        },
        "layer": [
            {"mark": {"type": "bar", "color": colour}},
            {
                "mark": {"type": "text", "dy": -6, "baseline": "bottom"},
                "encoding": {"text": {"field": y, "type": "quantitative", "format": ",.0f"}},
            },
        ],
    }


def _mercator_y(latitude: float) -> float:
    return math.log(math.tan(math.pi / 4 + math.radians(latitude) / 2))


def store_map(stores: list[dict[str, Any]], title: str) -> dict[str, Any]:
    """The stores as points over the country outlines (world-atlas, served from /static), zoomed to the stores."""
    points = [
        {"id": s["id"], "name": s.get("name") or s["id"], "city": s.get("city") or "", "kind": s.get("kind") or "",
         "lat": float(s["lat"]), "lon": float(s["lon"])}
        for s in stores
        if s.get("lat") is not None and s.get("lon") is not None
    ]  # fmt: skip
    lons = [p["lon"] for p in points] or [0.0]
    lats = [p["lat"] for p in points] or [0.0]
    pad_lon = max(4.0, (max(lons) - min(lons)) * 0.08)
    pad_lat = max(3.0, (max(lats) - min(lats)) * 0.12)
    west, east = min(lons) - pad_lon, max(lons) + pad_lon
    south, north = max(-80.0, min(lats) - pad_lat), min(84.0, max(lats) + pad_lat)
    # Mercator sized to the stores' box in whatever width the page gives the chart (Vega-Lite would otherwise fit
    # the whole world outline): x = scale * longitude in radians, y = scale * ln(tan(pi/4 + latitude/2)).
    span_x = math.radians(east - west)
    span_y = _mercator_y(north) - _mercator_y(south)
    centre_lat = math.degrees(2 * math.atan(math.exp((_mercator_y(north) + _mercator_y(south)) / 2)) - math.pi / 2)
    projection = {
        "type": "mercator",
        "center": [round((west + east) / 2, 4), round(centre_lat, 4)],
        "scale": {"expr": f"min(width / {span_x:.6f}, height / {span_y:.6f})"},
        "translate": {"expr": "[width / 2, height / 2]"},
    }
    return {
        "$schema": SCHEMA,
        "width": "container",
        "height": 420,
        "title": {"text": title, "anchor": "start", "fontSize": 12, "fontWeight": "normal"},
        "projection": projection,
        "layer": [
            {
                "data": {"url": WORLD, "format": {"type": "topojson", "feature": "countries"}},
                "mark": {"type": "geoshape", "fill": "#eef1f5", "stroke": "#9aa5b5", "strokeWidth": 0.6, "clip": True},
            },
            {
                "data": {"values": points},
                "mark": {
                    "type": "circle",
                    "size": 80,
                    "color": "#2ca02c",
                    "stroke": "#fff",
                    "strokeWidth": 1,
                    "opacity": 0.9,
                },
                "encoding": {
                    "longitude": {"field": "lon", "type": "quantitative"},
                    "latitude": {"field": "lat", "type": "quantitative"},
                    "tooltip": [{"field": "name"}, {"field": "city"}, {"field": "kind"}, {"field": "id"}],
                },
            },
            {
                "data": {"values": points},
                "transform": [
                    {
                        "aggregate": [
                            {"op": "count", "as": "n"},
                            {"op": "mean", "field": "lon", "as": "lon"},
                            {"op": "mean", "field": "lat", "as": "lat"},
                        ],
                        "groupby": ["city"],
                    }
                ],
                "mark": {"type": "text", "dy": -10, "fontSize": 11, "color": "#223"},
                "encoding": {
                    "longitude": {"field": "lon", "type": "quantitative"},
                    "latitude": {"field": "lat", "type": "quantitative"},
                    "text": {"field": "city"},
                },
            },
        ],
    }

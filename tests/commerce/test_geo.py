"""The geo index: the latitude sweep finds exactly the nearest points a brute-force scan finds."""

from __future__ import annotations

import random

import pytest

from accord.commerce.geo import GeoIndex, Point, distance_m


def test_nearest_matches_brute_force() -> None:
    rng = random.Random(11)
    points = [Point(f"p{i}", rng.uniform(-60, 70), rng.uniform(-180, 180), 100) for i in range(800)]
    index = GeoIndex(points)
    for _ in range(300):
        lat, lon = rng.uniform(-60, 70), rng.uniform(-180, 180)
        k = rng.choice((1, 5, 16, 40))
        got = [index.points[i].location_id for _, i in index.nearest_to(lat, lon, k)]
        expected = sorted(points, key=lambda p: distance_m(lat, lon, p.lat, p.lon))[:k]
        assert got == [p.location_id for p in expected]
        radius = 1_500_000
        within = index.nearest_to(lat, lon, 1000, index.chord2(radius))
        brute = [p for p in points if distance_m(lat, lon, p.lat, p.lon) <= radius]
        assert len(within) == len(brute)
        assert all(abs(index.metres(c2) - distance_m(lat, lon, *_at(index, i))) < 1 for c2, i in within)
        assert index.chords_to(lat, lon, [i for _, i in within]) == pytest.approx([c2 for c2, _ in within])


def test_geofence_hits() -> None:
    index = GeoIndex([Point("a", 52.2297, 21.0122, 150), Point("b", 52.2300, 21.0130, 20)])
    assert [p.location_id for _, p in index.within_geofence(52.22975, 21.01225)] == ["a"]
    assert [p.location_id for _, p in index.within_geofence(52.2300, 21.0130)] == ["b", "a"]


def _at(index: GeoIndex, i: int) -> tuple[float, float]:
    return index.points[i].lat, index.points[i].lon

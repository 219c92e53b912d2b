"""Distances on the earth and an in-memory index of location coordinates for nearest-first searches."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Point:
    """A location's coordinates and geofence."""

    location_id: str
    lat: float
    lon: float
    geofence_m: int


class GeoIndex:
    """All located places as unit vectors; ranking by chord length is ranking by great-circle distance."""

    def __init__(self, points: Iterable[Point]) -> None:
        self.points = list(points)
        self._xyz = [_unit(p.lat, p.lon) for p in self.points]
        self.position = {p.location_id: i for i, p in enumerate(self.points)}
        self.max_geofence_m = max((p.geofence_m for p in self.points), default=0)

    def chords(self, lat: float, lon: float) -> list[float]:
        """Squared chord lengths (unit sphere) from (LAT, LON) to every point, in `points` order."""
        x, y, z = _unit(lat, lon)
        return [(px - x) * (px - x) + (py - y) * (py - y) + (pz - z) * (pz - z) for px, py, pz in self._xyz]

    def nearest(self, chords: list[float], k: int) -> list[int]:
        """Positions of the K nearest points, nearest first (a partial sort: O(n log k))."""
        return heapq.nsmallest(k, range(len(chords)), key=chords.__getitem__)

    @staticmethod
    def metres(chord2: float) -> float:
        """Great-circle metres of a squared chord length."""
        return _chord_to_m(chord2)

    @staticmethod
    def chord2(metres: float) -> float:
        """The squared chord length of a great-circle distance in metres."""
        return (2 * math.sin(min(metres / EARTH_RADIUS_M, math.pi) / 2)) ** 2

    def __len__(self) -> int:
        return len(self.points)

    def within_geofence(self, lat: float, lon: float) -> list[tuple[float, Point]]:
        """Points whose geofence contains (LAT, LON), nearest first."""
        x, y, z = _unit(lat, lon)
        limit = (self.max_geofence_m / EARTH_RADIUS_M) ** 2 * 1.0001
        hits = []
        for i, (px, py, pz) in enumerate(self._xyz):
            c2 = (px - x) ** 2 + (py - y) ** 2 + (pz - z) ** 2
            if c2 <= limit:
                d = _chord_to_m(c2)
                if d <= self.points[i].geofence_m:
                    hits.append((d, self.points[i]))
        hits.sort(key=lambda hit: hit[0])
        return hits


def _unit(lat: float, lon: float) -> tuple[float, float, float]:
    p, lam = math.radians(lat), math.radians(lon)
    return (math.cos(p) * math.cos(lam), math.cos(p) * math.sin(lam), math.sin(p))


def _chord_to_m(c2: float) -> float:
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(c2) / 2))

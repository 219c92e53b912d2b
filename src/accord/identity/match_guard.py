"""Contested pairs: a record that fits two others about equally, which are not likely one person themselves."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from accord.identity.splink_model import ScoredPair

# How much stronger (in match weight, log2 of the odds) a record's best pair must be than any rival pair for
# the best one to stand: 2**4 = 16 times the odds.
MARGIN = 4.0


def _weight(probability: float) -> float:
    p = min(max(probability, 1e-12), 1 - 1e-12)
    return math.log2(p / (1 - p))


def contested(pairs: Iterable[ScoredPair], margin: float = MARGIN) -> set[tuple[str, str]]:
    """The (left, right) of each pair one of whose records also fits a third record about as well (within MARGIN
    of the pair's match weight, or better) that the other record is not paired with: e.g. an old record of
    "Wang Wei, Beijing" that fits two different Wang Weis. Merging it with either is a guess, so such pairs go to
    review whatever their score. Records that agree (three records of one person, all paired with each other)
    contest nothing, and neither does a clearly weaker rival."""
    pairs = list(pairs)
    partners: dict[str, dict[str, float]] = defaultdict(dict)
    for pair in pairs:
        weight = _weight(pair.probability)
        partners[pair.left][pair.right] = weight
        partners[pair.right][pair.left] = weight
    found: set[tuple[str, str]] = set()
    for pair in pairs:
        floor = _weight(pair.probability) - margin
        for one, other in ((pair.left, pair.right), (pair.right, pair.left)):
            rivals = partners[one]
            if any(w >= floor and third != other and third not in partners[other] for third, w in rivals.items()):
                found.add((pair.left, pair.right))
                break
    return found

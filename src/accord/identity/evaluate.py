"""Pairwise precision and recall of an identity grouping against ground truth."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PairwiseScore:
    """Pairs of identifiers put together by the graph vs. pairs that truly belong to one person."""

    identifiers: int
    predicted_pairs: int
    true_pairs: int
    correct_pairs: int

    @property
    def precision(self) -> float:
        """Share of predicted pairs that are right (1.0 when nothing was paired)."""
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        """Share of true pairs that were found (1.0 when there are none)."""
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise_score(predicted: Mapping[str, str], truth: Mapping[str, str]) -> PairwiseScore:
    """Score PREDICTED (identifier key -> profile) against TRUTH (identifier key -> entity) on shared keys.

    Identifiers the graph never saw count as singletons, so that missing them lowers recall.
    """
    keys = list(truth)
    pred_labels = [predicted.get(k, f"unseen:{k}") for k in keys]
    truth_labels = [truth[k] for k in keys]
    predicted_pairs = sum(_pairs(n) for n in Counter(pred_labels).values())
    true_pairs = sum(_pairs(n) for n in Counter(truth_labels).values())
    correct = sum(_pairs(n) for n in Counter(zip(pred_labels, truth_labels, strict=True)).values())
    return PairwiseScore(len(keys), predicted_pairs, true_pairs, correct)


def read_truth(path: Path) -> dict[str, str]:
    """A truth file with columns identifier_type, identifier_value, entity -> {'type:value': entity}."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"identifier_type", "identifier_value", "entity"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {', '.join(sorted(missing))}")
        return {f"{row['identifier_type']}:{row['identifier_value']}": row["entity"] for row in reader}

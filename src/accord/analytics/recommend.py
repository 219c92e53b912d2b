"""Recommendations from purchase and browsing habits: implicit-feedback ALS with a popularity fallback, evaluated
offline by precision@k and recall@k against each customer's held-out last purchase."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from accord.analytics.errors import InvalidInput, NotEnoughData
from accord.analytics.paths import FloatArray

# How much one event says about wanting an item (purchases count most).
EVENT_WEIGHTS = {"Order Completed": 4.0, "Product Added": 2.0, "Product Viewed": 1.0}


@dataclass(frozen=True)
class Interactions:
    """Users x items with a weight per pair (sparse), and their names."""

    users: list[str]
    items: list[str]
    matrix: sp.csr_matrix  # users x items, summed weights

    @property
    def shape(self) -> tuple[int, int]:
        """(users, items)."""
        return (len(self.users), len(self.items))


def interactions(
    user_ids: Sequence[str], item_ids: Sequence[str], weights: Sequence[float] | None = None
) -> Interactions:
    """Interactions from parallel lists (one entry per event); repeated pairs add up."""
    if len(user_ids) != len(item_ids) or (weights is not None and len(weights) != len(user_ids)):
        raise InvalidInput("users, items and weights need one entry per interaction")
    if not user_ids:
        raise NotEnoughData("there are no interactions")
    users, u = np.unique(np.asarray(user_ids, dtype=object).astype(str), return_inverse=True)
    items, i = np.unique(np.asarray(item_ids, dtype=object).astype(str), return_inverse=True)
    w = np.ones(len(u)) if weights is None else np.asarray(weights, dtype=np.float64)
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise InvalidInput("weights must be finite numbers >= 0")
    matrix = sp.csr_matrix((w, (u, i)), shape=(len(users), len(items)))
    matrix.sum_duplicates()
    return Interactions([str(x) for x in users], [str(x) for x in items], matrix)


@dataclass
class Recommender:
    """A fitted model: ALS factors when there is enough data, item popularity always."""

    data: Interactions
    popularity: FloatArray
    model: Any | None
    method: str

    def recommend(
        self, user: str | None, k: int = 10, available: Iterable[str] | None = None, exclude_seen: bool = True
    ) -> list[dict[str, Any]]:
        """Top-K items for USER (popular items for an unknown or new user), only among AVAILABLE items if given."""
        if k < 1:
            raise InvalidInput("k must be at least 1")
        mask = np.ones(len(self.data.items), dtype=bool)
        if available is not None:
            allowed = set(available)
            mask = np.array([it in allowed for it in self.data.items], dtype=bool)
        index = {u: n for n, u in enumerate(self.data.users)}
        row = index.get(user) if user is not None else None
        if row is not None and exclude_seen:
            seen = self.data.matrix[row].indices
            mask[seen] = False
        if row is None or self.model is None:
            scores, source = self.popularity.astype(np.float64), "popularity"
        else:
            scores, source = self._scores(row), self.method
        scores = np.where(mask, scores, -np.inf)
        top = np.argsort(-scores, kind="stable")[:k]
        return [
            {"item": self.data.items[j], "score": float(scores[j]), "source": source}
            for j in top
            if np.isfinite(scores[j])
        ]

    def _scores(self, row: int) -> FloatArray:
        assert self.model is not None
        user_factors = np.asarray(self.model.user_factors)
        item_factors = np.asarray(self.model.item_factors)
        out: FloatArray = item_factors @ user_factors[row]
        return out


def fit(data: Interactions, factors: int = 32, iterations: int = 15, regularization: float = 0.05,
        alpha: float = 10.0, seed: int = 0, min_users: int = 10) -> Recommender:  # fmt: skip
    """Fit implicit-feedback ALS (Hu, Koren & Volinsky 2008, via the `implicit` library) on confidence
    1 + ALPHA x weight; with fewer than MIN_USERS users, or without `implicit`, only popularity is used."""
    popularity = np.asarray((data.matrix > 0).sum(axis=0)).ravel().astype(np.float64)
    if data.shape[0] < min_users or data.shape[1] < 2:
        return Recommender(data, popularity, None, "popularity")
    try:
        from implicit.cpu.als import AlternatingLeastSquares
    except ImportError:  # pragma: no cover - implicit is a dependency; kept working without it
        return Recommender(data, popularity, None, "popularity")
    confidence = data.matrix.copy()
    confidence.data = 1.0 + alpha * confidence.data
    with threadpool_limits(1, user_api="blas"):
        model = AlternatingLeastSquares(
            # no more factors than a quarter of the smaller side: more only memorises what was seen
            factors=min(factors, max(2, min(data.shape) // 4)),
            iterations=iterations,
            regularization=regularization,
            random_state=seed,
            num_threads=1,
        )
        model.fit(confidence.astype(np.float32), show_progress=False)
    return Recommender(data, popularity, model, "als")


def precision_recall_at_k(
    recommended: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int
) -> dict[str, float]:
    """Mean precision@k (hits / k) and recall@k (hits / relevant items) over users."""
    if not recommended:
        raise NotEnoughData("no users to evaluate")
    precision = recall = 0.0
    for recs, truth in zip(recommended, relevant, strict=True):
        hits = len(set(recs[:k]) & truth)
        precision += hits / k
        recall += hits / len(truth) if truth else 0.0
    n = len(recommended)
    return {"precision_at_k": precision / n, "recall_at_k": recall / n, "users": float(n)}


def evaluate(
    user_ids: Sequence[str],
    item_ids: Sequence[str],
    weights: Sequence[float],
    times: Sequence[float],
    purchase: Sequence[bool],
    k: int = 10,
    **options: Any,
) -> dict[str, Any]:
    """Hold out each customer's last purchase (all items of that time), train on everything before it, and score
    ALS and popularity by precision@k / recall@k on the held-out items (seen items are not recommended)."""
    t = np.asarray(times, dtype=np.float64)
    bought = np.asarray(purchase, dtype=bool)
    users = np.asarray(user_ids, dtype=object)
    items = np.asarray(item_ids, dtype=object)
    last: dict[str, float] = {}
    for u, tt in zip(users[bought], t[bought], strict=True):
        last[u] = max(last.get(u, -np.inf), tt)
    cutoff = np.array([last.get(u, np.inf) for u in users])
    test = bought & (t >= cutoff)
    train = t < cutoff
    held: dict[str, set[str]] = {}
    for u, it in zip(users[test], items[test], strict=True):
        held.setdefault(u, set()).add(it)
    train_data = interactions(list(users[train]), list(items[train]), list(np.asarray(weights)[train]))
    known = set(train_data.users)
    held = {u: s for u, s in held.items() if u in known}
    if not held:
        raise NotEnoughData("no customer has a purchase after some earlier activity to hold out")
    model = fit(train_data, **options)
    popular = Recommender(train_data, model.popularity, None, "popularity")
    order = sorted(held)
    truth = [held[u] for u in order]
    result: dict[str, Any] = {"k": k, "held_out_users": len(order), "method": model.method}
    for name, rec in (("model", model), ("popularity", popular)):
        result[name] = precision_recall_at_k([[r["item"] for r in rec.recommend(u, k)] for u in order], truth, k)
    return result

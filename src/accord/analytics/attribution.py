"""Attribution models over conversion paths: rule-based, Markov removal effect (exact) and Shapley value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

from accord.analytics.errors import InvalidInput, NotEnoughData
from accord.analytics.paths import FloatArray, IntArray, PathSet

RULE_MODELS = ("first", "last", "linear", "time_decay", "position")
MODELS = (*RULE_MODELS, "markov", "shapley")
SHAPLEY_EXACT_MAX = 20


@dataclass(frozen=True)
class ChannelCredit:
    """What one model credits to one channel."""

    channel: str
    conversions: float
    value: float
    removal_effect: float | None = None


@dataclass(frozen=True)
class Attribution:
    """One model's credit for every channel."""

    model: str
    total_conversions: float
    total_value: float
    channels: list[ChannelCredit]
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The documented JSON: model, total_conversions, channels [channel, conversions, value, removal_effect]."""
        return {
            "model": self.model,
            "total_conversions": self.total_conversions,
            "channels": [
                {
                    "channel": c.channel,
                    "conversions": c.conversions,
                    "value": c.value,
                    "removal_effect": c.removal_effect,
                }
                for c in self.channels
            ],
        }

    def credit(self, channel: str) -> ChannelCredit:
        """The credit of one channel."""
        for c in self.channels:
            if c.channel == channel:
                return c
        raise KeyError(channel)


def attribute(
    paths: PathSet,
    model: str,
    *,
    half_life: float = 7.0,
    order: int = 1,
    collapse_repeats: bool = True,
    shapley_samples: int = 2000,
    shapley_game: str = "conversions",
    seed: int = 0,
) -> Attribution:
    """Run one model (see MODELS) over PATHS."""
    if paths.n_paths == 0:
        raise NotEnoughData("there are no paths to attribute")
    if model in RULE_MODELS:
        return rule_based(paths, model, half_life=half_life)
    if model == "markov":
        return markov(paths, order=order, collapse_repeats=collapse_repeats)
    if model == "shapley":
        return shapley(paths, samples=shapley_samples, seed=seed, game=shapley_game)
    raise InvalidInput(f"unknown model {model!r}; use one of {', '.join(MODELS)} or all")


def _result(
    model: str,
    paths: PathSet,
    conv: FloatArray,
    value: FloatArray,
    removal: FloatArray | None = None,
    details: dict[str, Any] | None = None,
) -> Attribution:
    channels = [
        ChannelCredit(
            name,
            float(conv[i]),
            float(value[i]),
            None if removal is None else float(removal[i]),
        )
        for i, name in enumerate(paths.channels)
    ]
    channels.sort(key=lambda c: (-c.conversions, c.channel))
    return Attribution(model, paths.total_conversions, paths.total_value, channels, details or {})


def wsum(index: IntArray, weights: FloatArray, n: int) -> FloatArray:
    """Sum of WEIGHTS per value of INDEX (0..n-1), as floats."""
    return np.bincount(index, weights=weights, minlength=n).astype(np.float64)


# ---- rule-based models ----------------------------------------------------------------------------------------


def touch_weights(paths: PathSet, model: str, half_life: float = 7.0) -> FloatArray:
    """Share of its path's credit that each touch gets (shares of one path sum to 1)."""
    lengths = paths.lengths
    parent = paths.parent
    pos = paths.position
    n_touch = lengths[parent]
    if model == "first":
        return (pos == 0).astype(np.float64)
    if model == "last":
        return (pos == n_touch - 1).astype(np.float64)
    if model == "linear":
        out: FloatArray = 1.0 / n_touch
        return out
    if model == "position":
        w = np.where(n_touch == 1, 1.0, 0.0)
        w = np.where(n_touch == 2, 0.5, w)
        ends = (pos == 0) | (pos == n_touch - 1)
        middle = np.where(n_touch > 2, 0.2 / np.maximum(n_touch - 2, 1), 0.0)
        w = np.where(n_touch > 2, np.where(ends, 0.4, middle), w)
        return w
    if model == "time_decay":
        if half_life <= 0:
            raise InvalidInput("half_life must be > 0")
        age = paths.ages if paths.ages is not None else (n_touch - 1 - pos).astype(np.float64)
        raw = np.exp2(-age / half_life)
        per_path = np.bincount(parent, weights=raw, minlength=paths.n_paths)
        norm: FloatArray = raw / per_path[parent]
        return norm
    raise InvalidInput(f"unknown rule-based model {model!r}")


def rule_based(paths: PathSet, model: str, half_life: float = 7.0) -> Attribution:
    """First touch, last touch, linear, time decay (half-life in days, or touches without times), 40/20/40."""
    w = touch_weights(paths, model, half_life)
    parent = paths.parent
    n = len(paths.channels)
    conv = wsum(paths.flat, w * paths.conversions[parent], n)
    value = wsum(paths.flat, w * paths.values[parent], n)
    details = {"half_life": half_life, "half_life_unit": "days" if paths.ages is not None else "touches"}
    return _result(model, paths, conv, value, details=details if model == "time_decay" else None)


# ---- Markov removal effect ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkovChain:
    """Transient states (0 = start) of an order-k chain, their transition probabilities and absorption rates."""

    q: sp.csr_matrix  # transient -> transient probabilities
    r: FloatArray  # transient -> conversion probabilities
    states: IntArray  # per transient state (row 0 = start): bit mask of the channels it names
    n_states: int


def _state_codes(paths: PathSet, order: int) -> IntArray:
    """Code of the order-k state at every touch: the last k channels of the path (fewer at its start)."""
    base = len(paths.channels) + 1
    flat = paths.flat + 1  # 0 means "no channel" (a state near the start of a path)
    pos = paths.position
    code = flat.copy()
    for lag in range(1, order):
        prev = np.zeros_like(flat)
        prev[lag:] = flat[:-lag]
        prev[pos < lag] = 0
        code = code * base + prev
    return code


def markov_chain(paths: PathSet, order: int = 1) -> MarkovChain:
    """Estimate the order-k Markov chain of PATHS (maximum likelihood: observed transition frequencies)."""
    if not 1 <= order <= 3:
        raise InvalidInput("order must be 1, 2 or 3")
    if len(paths.channels) > 62:
        raise InvalidInput("the Markov model handles at most 62 channels")
    weight = paths.conversions + paths.nulls
    codes = paths.flat + 1 if order == 1 else _state_codes(paths, order)
    # number the states that occur, without sorting: codes are bounded by (channels + 1) ** order
    present = np.bincount(codes, minlength=1) > 0
    uniq = np.flatnonzero(present)
    number = np.cumsum(present) - 1
    touch_state = number[codes] + 1  # 0 = start
    n_states = len(uniq) + 1
    conv_state, null_state = n_states, n_states + 1
    first_touch = paths.offsets[:-1]
    last_touch = paths.offsets[1:] - 1
    # transitions start -> first touch -> ... -> last touch, weighted by the path's conversions + nulls
    prev_state = np.empty_like(touch_state)
    prev_state[1:] = touch_state[:-1]
    prev_state[first_touch] = 0
    w_touch = np.repeat(weight, paths.lengths)
    width = n_states + 2
    counts = np.zeros((n_states, width))
    inner = np.bincount(prev_state * n_states + touch_state, weights=w_touch, minlength=n_states * n_states)
    counts[:, :n_states] = inner.reshape(n_states, n_states)
    counts[:, conv_state] = np.bincount(touch_state[last_touch], weights=paths.conversions, minlength=n_states)
    counts[:, null_state] = np.bincount(touch_state[last_touch], weights=paths.nulls, minlength=n_states)
    out_total = counts.sum(axis=1)
    if out_total[0] <= 0:
        raise NotEnoughData("no path has a conversion or a non-conversion count")
    safe = np.where(out_total > 0, out_total, 1.0)
    probs = counts / safe[:, None]
    q = sp.csr_matrix(probs[:, :n_states])
    r = probs[:, conv_state]
    # channel mask of each state
    base = len(paths.channels) + 1
    masks = np.zeros(n_states, dtype=np.int64)
    rest = uniq.copy()
    for _ in range(order):
        ch = rest % base
        masks[1:] |= np.where(ch > 0, np.left_shift(np.int64(1), np.maximum(ch - 1, 0)), 0)
        rest //= base
    return MarkovChain(q, r, masks, n_states)


def _absorb(q: sp.csr_matrix, r: FloatArray) -> float:
    """Probability of reaching conversion from the start state: solve (I - Q) x = r exactly."""
    n = q.shape[0]
    if n <= 400:
        x = np.linalg.solve(np.eye(n) - q.toarray(), r)
    else:
        x = spla.spsolve((sp.identity(n, format="csc") - q.tocsc()), r)
    return float(x[0])


def markov(paths: PathSet, order: int = 1, collapse_repeats: bool = True) -> Attribution:
    """Markov removal effect: how much the conversion probability drops when a channel is removed (exact)."""
    work = paths.collapse_repeats() if collapse_repeats else paths
    keep = (work.conversions + work.nulls) > 0
    if not keep.any():
        raise NotEnoughData("no path has a conversion or a non-conversion count")
    chain = markov_chain(work, order)
    n = len(paths.channels)
    removal = np.zeros(n)
    with threadpool_limits(1, user_api="blas"):  # small solves: BLAS threads only spin
        p_conv = _absorb(chain.q, chain.r)
        for c in range(n if p_conv > 0 else 0):
            alive = (chain.states & (1 << c)) == 0
            alive[0] = True
            idx = np.flatnonzero(alive)
            q_sub = chain.q[idx][:, idx]
            p_without = _absorb(q_sub, chain.r[idx])
            removal[c] = 1.0 - p_without / p_conv
    total_removal = removal.sum()
    share = removal / total_removal if total_removal > 0 else np.zeros(n)
    conv = share * paths.total_conversions
    value = share * paths.total_value
    details = {
        "order": order,
        "collapse_repeats": collapse_repeats,
        "conversion_probability": p_conv,
        "states": chain.n_states,
    }
    return _result("markov", paths, conv, value, removal, details)


# ---- Shapley value --------------------------------------------------------------------------------------------


def channel_sets(paths: PathSet) -> tuple[IntArray, FloatArray, FloatArray, FloatArray]:
    """Unique channel sets (bit masks) of the paths with their summed conversions, nulls and value."""
    if len(paths.channels) > 62:
        raise InvalidInput("the Shapley model handles at most 62 channels")
    bits = np.left_shift(np.int64(1), paths.flat)
    masks = np.bitwise_or.reduceat(bits, paths.offsets[:-1]) if len(bits) else np.zeros(0, dtype=np.int64)
    uniq, inv = np.unique(masks, return_inverse=True)
    conv = wsum(inv, paths.conversions, len(uniq))
    nulls = wsum(inv, paths.nulls, len(uniq))
    value = wsum(inv, paths.values, len(uniq))
    return uniq.astype(np.int64), conv, nulls, value


def _popcount(x: IntArray) -> IntArray:
    count = np.zeros_like(x)
    y = x.copy()
    while np.any(y):
        count += y & 1
        y >>= 1
    return count


def coalition_values(n: int, masks: IntArray, weights: FloatArray) -> FloatArray:
    """v(S) = sum of the weights of the channel sets contained in S, for all 2**n coalitions (subset-sum)."""
    v = np.bincount(masks, weights=weights, minlength=1 << n).astype(np.float64)
    for i in range(n):
        view = v.reshape(-1, 2, 1 << i)
        view[:, 1, :] += view[:, 0, :]
    return v


def shapley_exact(v: FloatArray, n: int) -> FloatArray:
    """Exact Shapley values of the game with coalition values V (indexed by bit mask over N players)."""
    sizes = _popcount(np.arange(1 << n, dtype=np.int64))
    coef = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])
    phi = np.zeros(n)
    for i in range(n):
        view = v.reshape(-1, 2, 1 << i)
        size_view = sizes.reshape(-1, 2, 1 << i)[:, 0, :]
        phi[i] = float(np.sum(coef[size_view] * (view[:, 1, :] - view[:, 0, :])))
    return phi


def shapley(paths: PathSet, samples: int = 2000, seed: int = 0, game: str = "conversions") -> Attribution:
    """Shapley value of each channel; the worth of a coalition is what the paths using only its channels convert.

    Exact over all 2**n coalitions (subset-sum) up to SHAPLEY_EXACT_MAX channels; beyond, this game is a sum of
    unanimity games, whose Shapley value is exact in closed form (each channel set's conversions split equally among
    its channels), so no sampling error arises for conversions and value.  GAME "rate" values a coalition by the
    conversion rate of its paths instead (non-converting paths count), see shapley_rate.
    """
    n = len(paths.channels)
    if game == "rate":
        share = shapley_rate(paths, samples, seed)
        method = "exact" if n <= SHAPLEY_EXACT_MAX else f"sampled ({samples} orders)"
        return _result(
            "shapley",
            paths,
            share * paths.total_conversions,
            share * paths.total_value,
            details={"method": method, "game": "rate"},
        )
    if game != "conversions":
        raise InvalidInput("the Shapley game is conversions or rate")
    masks, conv_w, _nulls, value_w = channel_sets(paths)
    if n <= SHAPLEY_EXACT_MAX:
        conv = shapley_exact(coalition_values(n, masks, conv_w), n)
        value = shapley_exact(coalition_values(n, masks, value_w), n)
        method = "exact"
    else:
        conv, value = np.zeros(n), np.zeros(n)
        sizes = _popcount(masks)
        for c in range(n):
            has = (masks & (1 << c)) != 0
            conv[c] = float(np.sum(conv_w[has] / sizes[has]))
            value[c] = float(np.sum(value_w[has] / sizes[has]))
        method = "closed_form"
    return _result(
        "shapley", paths, conv, value, details={"method": method, "game": "conversions", "channel_sets": len(masks)}
    )


def shapley_rate(paths: PathSet, samples: int = 2000, seed: int = 0) -> FloatArray:
    """Shapley values of the conversion-RATE game (v(S) = conversion rate of paths using only channels of S).

    Exact up to SHAPLEY_EXACT_MAX channels, Monte Carlo over SAMPLES random channel orders beyond.
    Returned as shares of the total that sum to 1.
    """
    n = len(paths.channels)
    masks, conv_w, null_w, _ = channel_sets(paths)
    if n <= SHAPLEY_EXACT_MAX:
        c = coalition_values(n, masks, conv_w)
        t = coalition_values(n, masks, conv_w + null_w)
        v = np.divide(c, t, out=np.zeros_like(c), where=t > 0)
        phi = shapley_exact(v, n)
    else:
        rng = np.random.default_rng(seed)
        bits = ((masks[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)
        phi = np.zeros(n)
        tot_w = conv_w + null_w
        for _ in range(samples):
            perm = rng.permutation(n)
            rank = np.empty(n, dtype=np.int64)
            rank[perm] = np.arange(n)
            step = np.where(bits, rank[None, :], -1).max(axis=1)
            cum_c = np.cumsum(np.bincount(step, weights=conv_w, minlength=n))
            cum_t = np.cumsum(np.bincount(step, weights=tot_w, minlength=n))
            v = np.divide(cum_c, cum_t, out=np.zeros(n), where=cum_t > 0)
            phi[perm] += np.diff(v, prepend=0.0)
        phi /= samples
    total = phi.sum()
    out: FloatArray = phi / total if total else phi
    return out

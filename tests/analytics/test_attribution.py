"""Attribution models against hand computations and independent brute-force implementations."""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from pathlib import Path

import pytest

from accord.analytics.attribution import MODELS, attribute, markov, shapley
from accord.analytics.errors import InvalidInput
from accord.analytics.paths import from_lists, paths_from_file

SMALL = from_lists([["A", "B"], ["A"], ["B"]], conversions=[1, 0, 1], nulls=[0, 1, 0], values=[10, 0, 30])


def credits(result: object) -> dict[str, float]:
    return {c.channel: c.conversions for c in result.channels}  # type: ignore[attr-defined]


def test_markov_small_example_by_hand() -> None:
    # start->A 2/3, start->B 1/3, A->B 1/2, A->null 1/2, B->conv 1: P(conv) = 2/3.
    # without A: 1/3 (removal effect 1/2); without B: 0 (removal effect 1). Shares 1/3 and 2/3 of 2 conversions.
    result = markov(SMALL)
    assert result.details["conversion_probability"] == pytest.approx(2 / 3)
    effects = {c.channel: c.removal_effect for c in result.channels}
    assert effects == pytest.approx({"A": 0.5, "B": 1.0})
    assert credits(result) == pytest.approx({"A": 2 / 3, "B": 4 / 3})
    values = {c.channel: c.value for c in result.channels}
    assert values == pytest.approx({"A": 40 / 3, "B": 80 / 3})


def test_shapley_small_example_by_hand() -> None:
    # channel sets {A,B}: 1 conversion, {B}: 1. v({A}) = 0, v({B}) = 1, v({A,B}) = 2.
    # phi_A = 1/2 (0 - 0) + 1/2 (2 - 1) = 1/2; phi_B = 1/2 (1 - 0) + 1/2 (2 - 0) = 3/2.
    result = shapley(SMALL)
    assert credits(result) == pytest.approx({"A": 0.5, "B": 1.5})
    assert {c.channel: c.value for c in result.channels} == pytest.approx({"A": 5.0, "B": 35.0})


def test_rule_based_models_by_hand() -> None:
    paths = from_lists([["a", "b", "c", "d"], ["b"]], conversions=[1, 2], values=[100, 50])
    expect = {
        "first": {"a": 1, "b": 2, "c": 0, "d": 0},
        "last": {"a": 0, "b": 2, "c": 0, "d": 1},
        "linear": {"a": 0.25, "b": 2.25, "c": 0.25, "d": 0.25},
        "position": {"a": 0.4, "b": 2.1, "c": 0.1, "d": 0.4},
        # half-life of one touch: weights 1/8, 1/4, 1/2, 1 over 15/8
        "time_decay": {"a": 1 / 15, "b": 2 + 2 / 15, "c": 4 / 15, "d": 8 / 15},
    }
    for model, want in expect.items():
        result = attribute(paths, model, half_life=1.0)
        assert credits(result) == pytest.approx(want), model
        assert sum(c.value for c in result.channels) == pytest.approx(150)


def test_time_decay_uses_touch_ages_in_days() -> None:
    paths = from_lists([["email", "web"]], conversions=[1], ages=[[14.0, 0.0]])
    result = attribute(paths, "time_decay", half_life=7.0)  # weights 1/4 and 1
    assert credits(result) == pytest.approx({"email": 0.2, "web": 0.8})


def _brute_markov(paths: list[list[str]], conv: list[float], nulls: list[float], order: int) -> dict[str, float]:
    """Independent: dict-of-dicts chain, absorption by value iteration, removal by dropping states."""
    trans: dict[tuple[str, ...], dict[object, float]] = defaultdict(lambda: defaultdict(float))
    for path, c, n in zip(paths, conv, nulls, strict=True):
        collapsed = [ch for i, ch in enumerate(path) if i == 0 or path[i - 1] != ch]
        states = [tuple(collapsed[max(0, i - order + 1) : i + 1]) for i in range(len(collapsed))]
        prev: tuple[str, ...] = ("<start>",)
        for s in states:
            trans[prev][s] += c + n
            prev = s
        trans[prev]["<conv>"] += c
        trans[prev]["<null>"] += n

    def p_conv(removed: str | None) -> float:
        x: dict[object, float] = defaultdict(float)
        for _ in range(400):
            new: dict[object, float] = defaultdict(float)
            for s, outs in trans.items():
                if removed is not None and removed in s:
                    continue
                total = sum(outs.values())
                if total == 0:
                    continue  # only reached by paths without any count
                acc = 0.0
                for t, w in outs.items():
                    if t == "<conv>":
                        acc += w / total
                    elif t != "<null>" and not (removed is not None and removed in t):
                        acc += w / total * x[t]
                new[s] = acc
            x = new
        return x[("<start>",)]

    base = p_conv(None)
    channels = sorted({c for p in paths for c in p})
    return {ch: 1 - p_conv(ch) / base for ch in channels}


@pytest.mark.parametrize("order", [1, 2, 3])
def test_markov_matches_an_independent_chain(order: int) -> None:
    rng = random.Random(order)
    names = ["email", "sms", "web", "ads", "store"]
    paths, conv, nulls = [], [], []
    for _ in range(60):
        paths.append([rng.choice(names) for _ in range(rng.randint(1, 5))])
        conv.append(float(rng.randint(0, 3)))
        nulls.append(float(rng.randint(0, 3)))
    result = markov(from_lists(paths, conv, nulls), order=order)
    want = _brute_markov(paths, conv, nulls, order)
    got = {c.channel: c.removal_effect for c in result.channels}
    assert got == pytest.approx(want, abs=1e-9)
    assert sum(c.conversions for c in result.channels) == pytest.approx(sum(conv))


def test_markov_collapses_repeats_by_default() -> None:
    paths = from_lists([["A", "A", "B"], ["A", "B"]], conversions=[1, 1])
    collapsed = markov(paths)
    kept = markov(paths, collapse_repeats=False)
    assert collapsed.details["states"] == 3  # start, A, B
    # with the loop A->A kept the chain is different but both channels are still indispensable here
    assert {c.channel: c.removal_effect for c in kept.channels} == pytest.approx({"A": 1.0, "B": 1.0})


def _brute_shapley(sets: list[frozenset[str]], weights: list[float], game: str = "conversions") -> dict[str, float]:
    """Independent: average marginal contribution over every ordering of the channels."""
    channels = sorted(set().union(*sets))

    def v(coalition: set[str]) -> float:
        c = sum(w for s, w in zip(sets, weights, strict=True) if s <= coalition)
        return c

    phi = dict.fromkeys(channels, 0.0)
    orders = list(itertools.permutations(channels))
    for order in orders:
        current: set[str] = set()
        for ch in order:
            before = v(current)
            current.add(ch)
            phi[ch] += v(current) - before
    return {ch: x / len(orders) for ch, x in phi.items()}


def test_shapley_exact_matches_all_orderings() -> None:
    rng = random.Random(7)
    names = ["a", "b", "c", "d", "e"]
    paths, conv = [], []
    for _ in range(40):
        paths.append([rng.choice(names) for _ in range(rng.randint(1, 4))])
        conv.append(float(rng.randint(0, 4)))
    result = shapley(from_lists(paths, conv))
    want = _brute_shapley([frozenset(p) for p in paths], conv)
    assert credits(result) == pytest.approx(want)
    assert result.details["method"] == "exact"


def test_shapley_rate_game_exact_and_sampled_agree() -> None:
    rng = random.Random(3)
    names = [f"c{i}" for i in range(6)]
    paths, conv, nulls = [], [], []
    for _ in range(80):
        paths.append(rng.sample(names, rng.randint(1, 3)))
        conv.append(float(rng.randint(0, 2)))
        nulls.append(float(rng.randint(0, 3)))
    ps = from_lists(paths, conv, nulls)
    exact = shapley(ps, game="rate")
    import accord.analytics.attribution as attribution_module

    limit = attribution_module.SHAPLEY_EXACT_MAX
    attribution_module.SHAPLEY_EXACT_MAX = 2  # force the Monte Carlo path on the same data
    try:
        sampled = shapley(ps, game="rate", samples=4000, seed=1)
    finally:
        attribution_module.SHAPLEY_EXACT_MAX = limit
    assert sampled.details["method"].startswith("sampled")
    total = ps.total_conversions
    for ch in names:
        assert sampled.credit(ch).conversions == pytest.approx(exact.credit(ch).conversions, abs=0.05 * total)


def test_shapley_beyond_exact_limit_uses_the_closed_form() -> None:
    rng = random.Random(11)
    names = [f"ch{i:02d}" for i in range(24)]
    paths = [rng.sample(names, rng.randint(1, 4)) for _ in range(300)]
    conv = [float(rng.randint(0, 2)) for _ in paths]
    result = shapley(from_lists(paths, conv))
    assert result.details["method"] == "closed_form"
    want: dict[str, float] = defaultdict(float)
    for p, c in zip(paths, conv, strict=True):
        for ch in set(p):
            want[ch] += c / len(set(p))
    assert credits(result) == pytest.approx({ch: want.get(ch, 0.0) for ch in names})


def test_every_model_conserves_conversions_and_value() -> None:
    ps = from_lists(
        [["web", "email", "store"], ["ads", "web"], ["store"], ["email"]],
        conversions=[2, 1, 1, 0],
        nulls=[1, 3, 0, 5],
        values=[200, 80, 40, 0],
    )
    for model in MODELS:
        result = attribute(ps, model)
        assert sum(c.conversions for c in result.channels) == pytest.approx(4), model
        assert sum(c.value for c in result.channels) == pytest.approx(320), model
        doc = result.as_dict()
        assert set(doc) == {"model", "total_conversions", "channels"}
        assert set(doc["channels"][0]) == {"channel", "conversions", "value", "removal_effect"}


def test_paths_from_csv_file(tmp_path: Path) -> None:
    f = tmp_path / "paths.csv"
    f.write_text("path,conv,null,value\nA > B,1,0,10\nA,0,1,0\nB >  B,1,0,30\n")
    ps = paths_from_file(f, "path", ">", "conv", "null", "value")
    assert ps.channels == ["A", "B"]
    assert ps.path(2) == ["B", "B"]
    result = markov(ps)
    assert credits(result) == pytest.approx({"A": 2 / 3, "B": 4 / 3})


def test_bad_files_give_precise_errors(tmp_path: Path) -> None:
    f = tmp_path / "paths.csv"
    f.write_text("path,conv\nA > B,1\n > ,2\n")
    with pytest.raises(InvalidInput, match="no channel in data row 2"):
        paths_from_file(f, "path", ">", "conv")
    with pytest.raises(InvalidInput, match="no column 'nope'"):
        paths_from_file(f, "nope", ">", "conv")
    g = tmp_path / "neg.csv"
    g.write_text("path,conv\nA,-1\n")
    with pytest.raises(InvalidInput, match="data row 1"):
        paths_from_file(g, "path", ">", "conv")
    with pytest.raises(InvalidInput, match="unknown model"):
        attribute(from_lists([["A"]], [1]), "magic")


def test_markov_scales_to_many_states_with_sparse_solves() -> None:
    rng = random.Random(5)
    names = [f"c{i}" for i in range(12)]
    paths = [[rng.choice(names) for _ in range(rng.randint(1, 6))] for _ in range(3000)]
    conv = [float(rng.random() < 0.3) for _ in paths]
    nulls = [1.0 - c for c in conv]
    result = markov(from_lists(paths, conv, nulls), order=3)
    assert result.details["states"] > 400  # the sparse solver path
    assert math.isclose(sum(c.conversions for c in result.channels), sum(conv))

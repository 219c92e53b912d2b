"""Analytics benchmarks in one run: Markov attribution vs ChannelAttribution, exact Shapley, BG/NBD + GG vs lifetimes.

    .venv/bin/python bench/analytics_bench.py [--runs 3] [--paths 1000000] [--customers 100000] [--json FILE]

The comparison packages are optional (`pip install -e '.[bench]'` for channelattribution; lifetimes is a dev
dependency); a missing one is reported, not faked. Every figure is the median of --runs runs on the same input.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from accord.analytics.attribution import markov, shapley
from accord.analytics.clv import fit_bgnbd, fit_gamma_gamma
from accord.analytics.paths import paths_from_table

CPU: dict[str, float] = {}


def timed(fn: Callable[[], Any], runs: int, label: str = "") -> tuple[float, Any]:
    """Median wall seconds of RUNS calls, and the last result; the median CPU seconds go to CPU[label]."""
    times, cpu = [], []
    result = None
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    if label:
        CPU[label] = statistics.median(cpu)
    return statistics.median(times), result


def make_paths(n: int, n_channels: int, seed: int = 1) -> pa.Table:
    """N journeys over N_CHANNELS channels with channel-dependent conversion odds (one row per journey)."""
    rng = np.random.default_rng(seed)
    names = np.array([f"ch{i:02d}" for i in range(n_channels)], dtype=object)
    popularity = rng.dirichlet(np.full(n_channels, 0.8))
    effect = rng.uniform(0.0, 0.08, n_channels)
    lengths = np.minimum(rng.geometric(0.35, n), 12)
    flat = rng.choice(n_channels, size=int(lengths.sum()), p=popularity)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    lift = np.add.reduceat(effect[flat], starts)
    converted = rng.random(n) < np.minimum(0.01 + lift, 0.9)
    words = names[flat]
    joined = [" > ".join(words[s : s + k]) for s, k in zip(starts.tolist(), lengths.tolist(), strict=True)]
    value = np.where(converted, rng.gamma(2.0, 40.0, n).round(2), 0.0)
    return pa.table(
        {
            "path": pa.array(joined, pa.string()),
            "conv": converted.astype(np.int64),
            "null": (~converted).astype(np.int64),
            "value": value,
        }
    )


def bench_markov(table: pa.Table, runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {"paths": table.num_rows}

    def ours() -> Any:
        return markov(paths_from_table(table, "path", ">", "conv", "null", "value"))

    out["accord_s"], result = timed(ours, runs, "markov_accord")
    parsed = paths_from_table(table, "path", ">", "conv", "null", "value")
    out["accord_model_only_s"], _ = timed(lambda: markov(parsed), runs, "markov_accord_model_only")
    out["channels"] = len(parsed.channels)
    out["touches"] = len(parsed.flat)
    ours_re = {c.channel: c.removal_effect for c in result.channels}
    try:
        import ChannelAttribution as ca  # type: ignore[import-not-found]
    except ImportError as exc:
        out["channelattribution"] = f"not installed ({exc}); pip install -e '.[bench]'"
        return out
    df = table.to_pandas()

    def theirs() -> Any:
        return ca.markov_model(df, "path", "conv", var_value="value", var_null="null", order=1, out_more=True,
                               verbose=False, flg_pro=False)  # fmt: skip

    out["channelattribution_s"], res = timed(theirs, runs, "markov_channelattribution")
    out["ratio_channelattribution_over_accord"] = out["channelattribution_s"] / out["accord_s"]
    removal = res["removal_effects"]
    theirs_re = dict(zip(removal["channel_name"], removal["removal_effects_conversion"], strict=True))
    diffs = [abs(ours_re[k] - float(theirs_re[k])) for k in ours_re if k in theirs_re]
    out["max_abs_removal_effect_difference"] = max(diffs) if diffs else None
    total = res["result"]
    theirs_conv = dict(zip(total["channel_name"], total["total_conversions"], strict=True))
    ours_conv = {c.channel: c.conversions for c in result.channels}
    out["max_abs_conversion_share_difference"] = max(
        abs(ours_conv[k] - float(theirs_conv[k])) / result.total_conversions for k in ours_conv if k in theirs_conv
    )
    return out


def bench_shapley(n_channels: int, n_paths: int, runs: int) -> dict[str, Any]:
    table = make_paths(n_paths, n_channels, seed=2)
    parsed = paths_from_table(table, "path", ">", "conv", "null", "value")
    seconds, result = timed(lambda: shapley(parsed), runs, f"shapley_{n_channels}")
    rate_s, _ = timed(lambda: shapley(parsed, game="rate"), runs, f"shapley_rate_{n_channels}")
    return {
        "channels": n_channels,
        "paths": n_paths,
        "coalitions": 2**n_channels,
        "method": result.details["method"],
        "conversions_game_s": seconds,
        "rate_game_s": rate_s,
    }


def simulate_bgnbd(n: int, seed: int = 3) -> dict[str, np.ndarray]:
    """Customers drawn from BG/NBD (r=0.25, alpha=4, a=0.8, b=2.5) and Gamma-Gamma (p=6, q=4, gamma=15) spend."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(0.25, 1 / 4.0, n)
    drop = rng.beta(0.8, 2.5, n)
    T = rng.uniform(20.0, 52.0, n).round(2)
    x = np.zeros(n)
    t_x = np.zeros(n)
    now = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        now[idx] += rng.exponential(1.0 / np.maximum(lam[idx], 1e-12))
        ok = now[idx] <= T[idx]
        bought = idx[ok]
        x[bought] += 1
        t_x[bought] = now[bought]
        alive[idx[~ok]] = False
        alive[bought[rng.random(len(bought)) < drop[bought]]] = False
    t_x = np.minimum(t_x.round(2), T)
    nu = rng.gamma(4.0, 1 / 15.0, n)
    spend = np.where(x > 0, rng.gamma(6.0 * np.maximum(x, 1), 1 / nu) / np.maximum(x, 1), 0.0)
    return {"x": x, "t_x": t_x, "T": T, "m": spend}


def bench_clv(n: int, runs: int) -> dict[str, Any]:
    data = simulate_bgnbd(n)
    x, t_x, T, m = data["x"], data["t_x"], data["T"], data["m"]

    def ours() -> Any:
        return fit_bgnbd(x, t_x, T), fit_gamma_gamma(x, m)

    out: dict[str, Any] = {"customers": n, "repeat_buyers": int((x > 0).sum())}
    out["accord_s"], (bg, gg) = timed(ours, runs, "clv_accord")
    out["accord_params"] = {**bg.as_dict(), **{f"gg_{k}": v for k, v in gg.as_dict().items()}}
    try:
        import warnings

        from lifetimes import BetaGeoFitter, GammaGammaFitter  # type: ignore[import-not-found]
    except ImportError as exc:
        out["lifetimes"] = f"not installed ({exc})"
        return out

    def theirs() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b = BetaGeoFitter().fit(x, t_x, T)
            g = GammaGammaFitter().fit(x[x > 0], m[x > 0])
        return b, g

    try:
        out["lifetimes_s"], (b, g) = timed(theirs, runs, "clv_lifetimes")
    except Exception as exc:  # report why the reference could not run on this stack
        out["lifetimes"] = f"failed: {type(exc).__name__}: {exc}"
        return out
    out["ratio_lifetimes_over_accord"] = out["lifetimes_s"] / out["accord_s"]
    out["lifetimes_params"] = {**{k: float(v) for k, v in b.params_.items()},
                               **{f"gg_{k}": float(v) for k, v in g.params_.items()}}  # fmt: skip
    # their optimum scored by our likelihood (one formula for both, so the two optima compare directly)
    from accord.analytics.clv import _bgnbd_negll, _compress

    cols, w = _compress(x, t_x, T)
    theta = np.log([b.params_["r"], b.params_["alpha"], b.params_["a"], b.params_["b"]])
    out["lifetimes_log_likelihood"] = -_bgnbd_negll(*cols, w)(theta)[0]
    return out


def bench_forecast(n_series: int, runs: int) -> dict[str, Any]:
    """Weekly forecasts (Croston, ADIDA, IMAPA, seasonal naive, naive + hold-out + refit) for N_SERIES series."""
    from datetime import date, timedelta

    from accord.analytics.forecast import forecast, weekly_sales

    rng = np.random.default_rng(4)
    weeks = 52
    rate = rng.gamma(0.6, 2.0, n_series) + 0.3  # every series sells something in a year
    qty = rng.poisson(np.repeat(rate, weeks)).astype(float)
    series = np.repeat(np.arange(n_series), weeks)
    days = [date(2025, 11, 3) + timedelta(days=7 * int(w)) for w in np.tile(np.arange(weeks), n_series)]
    keep = qty > 0
    frame = weekly_sales([f"s{i % 50}" for i in series[keep]], [f"sku{i}" for i in series[keep]],
                         [d for d, k in zip(days, keep, strict=True) if k], qty[keep].tolist())  # fmt: skip
    seconds, doc = timed(lambda: forecast(frame, 4), runs, "forecast")
    return {"series": doc["series"], "weeks": weeks, "seconds": seconds, "model": doc["model"],
            "accuracy": doc["accuracy"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--paths", type=int, default=1_000_000)
    parser.add_argument("--channels", type=int, default=30)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--only", default="markov,shapley,clv,forecast", help="comma-separated parts to run")
    parser.add_argument("--json", type=Path, default=Path("bench/results/analytics.json"))
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_start": os.getloadavg(),
            "numpy": np.__version__,
        },
        "runs": args.runs,
    }
    parts = set(args.only.split(","))
    if "markov" in parts:
        print(f"generating {args.paths:,} paths over {args.channels} channels ...", flush=True)
        table = make_paths(args.paths, args.channels)
        print("markov ...", flush=True)
        report["markov"] = bench_markov(table, args.runs)
        print(json.dumps(report["markov"], indent=1), flush=True)
    if "shapley" in parts:
        print("shapley ...", flush=True)
        report["shapley"] = [bench_shapley(15, 100_000, args.runs), bench_shapley(20, 100_000, args.runs)]
        print(json.dumps(report["shapley"], indent=1), flush=True)
    if "clv" in parts:
        print("bg/nbd + gamma-gamma ...", flush=True)
        report["clv"] = bench_clv(args.customers, args.runs)
        print(json.dumps(report["clv"], indent=1), flush=True)
    if "forecast" in parts:
        print("forecasts ...", flush=True)
        report["forecast"] = bench_forecast(args.series, max(1, args.runs // 2))
        print(json.dumps(report["forecast"], indent=1), flush=True)
    report["cpu_seconds_median"] = CPU
    print(json.dumps(CPU, indent=1))
    report["machine"]["load_average_end"] = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
